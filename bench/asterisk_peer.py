"""The Asterisk benchmark peer: Asterisk built from Debian's source package (bench/asterisk/build.sh), run
with the configs in bench/asterisk/ rendered into a temp dir for one scenario.

Scenarios: "ivr" (the IVR loop of bench/flows/bench_ivr.yaml) and "queue" (IVR -> queue of all agents, as
bench/flows/bench_lang_queue.yaml). Callers from 127.0.0.1 are accepted without auth; the agents are endpoints
3000... whose contact is the one sipp UAS on agents_port, as in the worker bench. A call the dialplan
judges failed (digits missed, no agent reached) writes one NOTICE line to log/bench.log.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "asterisk"
REPO = HERE.parent
FILES = ["asterisk.conf", "modules.conf", "logger.conf", "rtp.conf", "cdr.conf", "musiconhold.conf",
         "pjsip.conf", "extensions.conf", "queues.conf"]
# Present but empty: Asterisk's defaults, without an error line per file at start.
EMPTY = ["cel.conf", "features.conf", "acl.conf", "udptl.conf", "ccss.conf", "pjproject.conf", "indications.conf"]
CONTEXTS = {"ivr": "ivr", "queue": "queue"}


def build() -> Path:
    """The install prefix; builds Asterisk the first time (tens of minutes on 2 cores), then only checks."""
    out = subprocess.run(["bash", str(TEMPLATES / "build.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass
class AsteriskPeer:
    prefix: Path
    run: Path              # a fresh directory: configs, logs, astdb, control socket
    scenario: str          # "ivr" or "queue"
    sip_port: int
    agents_port: int
    agents: int = 400
    digits: int = 0        # ivr: digits every caller presses
    proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    @property
    def conf(self) -> Path:
        return self.run / "etc" / "asterisk.conf"

    def render(self) -> None:
        values = {"run": str(self.run), "prefix": str(self.prefix), "sip_port": str(self.sip_port),
                  "context": CONTEXTS[self.scenario], "digits": str(self.digits),
                  "agents": str(self.agents), "agents_port": str(self.agents_port)}
        for d in ("etc", "lib", "data", "spool", "run", "log", "moh"):
            (self.run / d).mkdir(parents=True, exist_ok=True)
        # The worker's own prompts (8 kHz 16-bit mono WAV, which format_wav plays as they are) and hold music.
        (self.run / "data" / "sounds").symlink_to(REPO / "sounds")
        (self.run / "moh" / "moh.wav").symlink_to(REPO / "sounds" / "moh.wav")
        # The XML docs: without them Asterisk refuses to register its config options (stasis fails).
        (self.run / "data" / "documentation").symlink_to(self.prefix / "var/lib/asterisk/documentation")
        for name in FILES:
            text = (TEMPLATES / name).read_text()
            for k, v in values.items():
                text = text.replace(f"@{k}@", v)
            (self.run / "etc" / name).write_text(text + self._tail(name))
        for name in EMPTY:
            (self.run / "etc" / name).write_text("")

    def _tail(self, name: str) -> str:
        ids = [str(3000 + i) for i in range(self.agents)]
        if name == "pjsip.conf":
            return "".join(f"\n[{a}](agent)\naors = {a}\n\n[{a}]\ntype = aor\n"
                           f"contact = sip:{a}@127.0.0.1:{self.agents_port}\n" for a in ids)
        if name == "queues.conf":
            return "".join(f"member => PJSIP/{a}\n" for a in ids)
        return ""

    def start(self, timeout: float = 60) -> AsteriskPeer:
        self.render()
        exe = str(self.prefix / "sbin" / "asterisk")
        out = open(self.run / "log" / "console.out", "wb")  # noqa: SIM115 - owned by the process
        # -f: foreground, no console; as the bench's own user. The bench raised RLIMIT_NOFILE for us.
        self.proc = subprocess.Popen([exe, "-f", "-n", "-C", str(self.conf)], stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"asterisk exited with {self.proc.returncode}: {self.tail()}")
            r = subprocess.run([exe, "-C", str(self.conf), "-rx", "core waitfullybooted"],
                               capture_output=True, text=True, timeout=timeout)
            if r.returncode == 0 and "fully booted" in r.stdout:
                return self
            time.sleep(0.5)
        raise RuntimeError(f"asterisk not fully booted in {timeout}s: {self.tail()}")

    def cli(self, command: str) -> str:
        r = subprocess.run([str(self.prefix / "sbin" / "asterisk"), "-C", str(self.conf), "-rx", command],
                           capture_output=True, text=True, timeout=30)
        return r.stdout

    def failed_calls(self) -> int:
        """Calls the dialplan logged as failed (digits missed, or no agent reached)."""
        log = self.run / "log" / "bench.log"
        if not log.exists():
            return 0
        return sum(1 for line in log.read_text(errors="replace").splitlines() if "BENCH " in line)

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, n: int = 40) -> str:
        lines: list[str] = []
        for name in ("console.out", "messages.log"):
            f = self.run / "log" / name
            if f.exists():
                lines += f.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(lines)


def free_udp_port(start: int) -> int:
    """The first port from start with UDP port and port+1 free on 127.0.0.1."""
    import socket

    port = start
    while True:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                 socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            port += 2


def main() -> None:
    """Start a peer by hand: python bench/asterisk_peer.py ivr|queue (Ctrl-C stops it)."""
    import sys
    import tempfile

    scenario = sys.argv[1] if len(sys.argv) > 1 else "ivr"
    port = free_udp_port(int(os.environ.get("ASTERISK_BASE_PORT", "7560")))
    peer = AsteriskPeer(build(), Path(tempfile.mkdtemp(prefix="ast-peer-")), scenario, port, port + 1, digits=1)
    peer.start()
    print(f"asterisk ({scenario}) on {peer.target}, agents on {peer.agents_port}, dir {peer.run}")
    try:
        peer.proc.wait()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        peer.stop()


if __name__ == "__main__":
    main()
