"""Real peers for the SIP edge tests: Kamailio with deploy/kamailio/kamailio.cfg, and baresip as an
agent's softphone that registers there with digest auth and answers by itself."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from worker_proc import REPO

from callcenter import edge

KAMAILIO_CFG = REPO / "deploy" / "kamailio" / "kamailio.cfg"
BARESIP_MODULES = Path("/usr/lib/baresip/modules")


def sip_options(port: int, timeout: float = 1.0) -> str | None:
    """Status line of the answer to an OPTIONS sent to 127.0.0.1:port (None: no answer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(timeout)
    lport = s.getsockname()[1]
    msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
           f"From: <sip:probe@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
           f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    try:
        s.sendto(msg.encode(), ("127.0.0.1", port))
        data, _ = s.recvfrom(65535)
        return data.decode(errors="replace").split("\r\n", 1)[0]
    except OSError:
        return None
    finally:
        s.close()


class Edge:
    """kamailio -DD -E on 127.0.0.1:port, its tables written by callcenter.edge from the credentials."""

    def __init__(self, tmp: Path, port: int, credentials: dict[str, str], workers: list[str]) -> None:
        self.dir = tmp / "edge"
        self.port = port
        edge.write_tables(self.dir, credentials, workers)
        self.log = self.dir / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> Edge:
        exe = shutil.which("kamailio") or "/usr/sbin/kamailio"
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [exe, "-DD", "-E", "-f", str(KAMAILIO_CFG), "-l", f"udp:127.0.0.1:{self.port}", "-w", str(self.dir),
             "-A", f'DBURL="text://{self.dir}"', "-A", f'DSLIST="{self.dir / "dispatcher.list"}"',
             "-A", f'CTLSOCK="unix:{self.dir / "ctl.sock"}"',
             "-P", str(self.dir / "kamailio.pid"), "-m", "32", "-M", "4"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kamailio exited with {self.proc.returncode}:\n{self.tail()}")
            if (sip_options(self.port, 0.3) or "").endswith("200 OK"):
                return self
        raise AssertionError(f"kamailio not answering in {timeout}s:\n{self.tail()}")

    def kamcmd(self, *args: str) -> str:
        return subprocess.run(["kamcmd", "-s", f"unix:{self.dir / 'ctl.sock'}", *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout

    def stop(self) -> None:
        """Kamailio forks its workers into its own process group (start_new_session): the group goes whole."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            if self._group_gone(wait):
                return

    def _group_gone(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()            # reap the leader, or its zombie keeps the group alive
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""


class Softphone:
    """baresip registered as `user` at the edge (digest auth), answering every call by itself."""

    def __init__(self, tmp: Path, user: str, password: str, edge: Edge, port: int, rtp_base: int) -> None:
        self.dir = tmp / f"baresip-{user}-{port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        (self.dir / "config").write_text(
            f"poll_method\tepoll\nsip_listen\t127.0.0.1:{port}\nsip_transports\tudp\n"
            f"audio_player\taufile,{self.dir / 'heard.wav'}\naudio_source\tausine,440\n"
            # ausine makes 48 kHz stereo only: baresip resamples to and from the 8 kHz G.711 stream
            "ausrc_srate\t48000\nauplay_srate\t48000\nausrc_channels\t2\nauplay_channels\t2\n"
            f"audio_alert\taufile,/dev/null\nrtp_ports\t{rtp_base}-{rtp_base + 20}\n"
            f"module_path\t{BARESIP_MODULES}\nmodule\tg711.so\nmodule\tausine.so\nmodule\taufile.so\n"
            "module_app\taccount.so\nmodule_app\tmenu.so\n")
        (self.dir / "accounts").write_text(
            f"<sip:{user}@{edge.address}>;auth_pass={password};answermode=auto;regint=60;"
            f'outbound="sip:{edge.address}";audio_codecs=PCMU,PCMA\n')
        self.log = self.dir / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Softphone:
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(["baresip", "-f", str(self.dir)], stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        return self

    def text(self) -> str:
        # baresip colours its errors: strip the escapes
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace")) if self.log.exists() else ""

    def wait_for(self, pattern: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m.group(0)
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"baresip {self.user}: no {pattern!r} in {timeout}s:\n{self.text()[-3000:]}")

    def registered(self, timeout: float = 15.0) -> None:
        self.wait_for(r"\{0/UDP/v4\} 200 OK", timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
