"""Real peers for the SIP edge tests: Kamailio with deploy/kamailio/kamailio.cfg, and baresip as an
agent's softphone that registers there with digest auth and answers by itself."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import ports
import sipp
from repo import REPO

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

    def __init__(self, tmp: Path, port: int, credentials: dict[str, str], workers: list[str],
                 trunks: list[str] | None = None, defines: dict[str, int] | None = None,
                 limits: edge.Limits | None = None) -> None:
        # laid out as in production: kamailio.cfg, and beside it callcenter/ (tables, limits.cfg it imports)
        self.root = tmp / f"edge-{port}"
        self.dir = self.root / "callcenter"
        self.port = port
        edge.write_tables(self.dir, credentials, workers, trunks=trunks, limits=limits)
        self.defines = defines or {}      # kamailio.cfg's limits (BAN_SECONDS, INVITE_RATE, ...)
        self.log = self.dir / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> Edge:
        exe = shutil.which("kamailio") or "/usr/sbin/kamailio"
        cfg = self.root / "kamailio.cfg"
        shutil.copyfile(KAMAILIO_CFG, cfg)
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [exe, "-DD", "-E", "-f", str(cfg), "-l", f"udp:127.0.0.1:{self.port}", "-w", str(self.dir),
             "-A", f'DBURL="text://{self.dir}"', "-A", f'DSLIST="{self.dir / "dispatcher.list"}"',
             "-A", f'CTLSOCK="unix:{self.dir / "ctl.sock"}"',
             *[a for name, value in self.defines.items() for a in ("-A", f"{name}={int(value)}")],
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

    def __init__(self, tmp: Path, user: str, password: str, edge: Edge, ip: str = "127.0.0.1") -> None:
        port = ports.port(ip)
        rtp_base = ports.block(22, media=True, ip=ip)
        self.dir = tmp / f"baresip-{user}-{ip}-{port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        (self.dir / "config").write_text(
            f"poll_method\tepoll\nsip_listen\t{ip}:{port}\nsip_transports\tudp\n"
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


def callers(ip: str, target: str, rate: int, calls: int, talk_ms: int = 1000) -> sipp.Sipp:
    """Legitimate callers from ip: INVITE, 200, ACK, talk, BYE."""
    return sipp.caller(target, [("pause", talk_ms), ("hangup",)], number="0903111222", calls=calls, rate=rate,
                       local_ip=ip)


def successful_calls(run: sipp.Sipp) -> int:
    """sipp's cumulative 'Successful call' count from its final screen."""
    found = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", (run.workdir / "sipp.out").read_text(errors="replace"))
    return int(found[-1]) if found else 0


def sip_exchange(ip: str, port: int, message: str, timeout: float = 1.0) -> list[str]:
    """Send one request from ip (any free port) to 127.0.0.1:port; every answer that came within timeout."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    lport = s.getsockname()[1]
    s.settimeout(0.2)
    answers: list[str] = []
    try:
        s.sendto(message.replace("{ip}", ip).replace("{lport}", str(lport)).encode(), ("127.0.0.1", port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(min(0.2, left))
            try:
                answers.append(s.recvfrom(65535)[0].decode(errors="replace"))
            except TimeoutError:
                continue
        return answers
    finally:
        s.close()


def sip_burst(ip: str, port: int, messages: list[str]) -> None:
    """Send requests from ip to 127.0.0.1:port as fast as possible, reading no answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        lport = s.getsockname()[1]
        for m in messages:
            s.sendto(m.replace("{ip}", ip).replace("{lport}", str(lport)).encode(), ("127.0.0.1", port))


def options_from(ip: str, port: int, timeout: float = 1.0) -> str | None:
    """Status line of the edge's answer to an OPTIONS sent from ip (None: silence)."""
    answers = sip_exchange(ip, port, (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {{ip}}:{{lport}};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
        f"From: <sip:probe@{{ip}}>;tag={uuid.uuid4().hex[:8]}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"), timeout)
    return answers[0].split("\r\n", 1)[0] if answers else None


def sipvicious(tool: str, source: str, args: list[str], user_agent: str | None = None, timeout: float = 60) -> str:
    """Run svwar/svcrack (PyPI sipvicious) from the address source; user_agent replaces its hard-wired
    'friendly-scanner' (an attacker who hides the tool's name). Returns stdout + stderr.
    (sipvicious 0.3.8 does not hand its -b option to the scanner: the binding address is set here.)"""
    cls = {"svwar": "TakeASip", "svcrack": "ASipOfRedWine"}[tool]
    code = (
        "import sys\n"
        "from sipvicious.libs import svhelper\n"
        f"from sipvicious import {tool} as tool\n"
        f"ua = {user_agent!r}\n"
        "if ua:\n"
        "    d = list(svhelper.makeRequest.__defaults__)\n"
        "    d[d.index('friendly-scanner')] = ua\n"
        "    svhelper.makeRequest.__defaults__ = tuple(d)\n"
        f"init = tool.{cls}.__init__\n"
        f"def bound(self, *a, **kw):\n"
        f"    kw['bindingip'] = {source!r}\n"
        "    init(self, *a, **kw)\n"
        f"tool.{cls}.__init__ = bound\n"
        f"sys.argv = [{tool!r}, *{args!r}]\n"
        "tool.main()\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    return run.stdout + run.stderr


def register(edge_port: int, user: str, password: str, contact: str, realm: str = edge.REALM,
             ip: str = "127.0.0.1", replays: int = 0) -> list[str]:
    """REGISTER user's contact at the edge, answering its qop=auth challenge, then send the same answer
    `replays` times more (a replay attack): the status line of the answer to each."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    s.settimeout(2.0)
    lport = s.getsockname()[1]
    uri, call_id, tag = f"sip:127.0.0.1:{edge_port}", uuid.uuid4().hex, uuid.uuid4().hex[:8]

    def send(cseq: int, auth: str = "") -> str:
        s.sendto((f"REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{lport};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                  f"From: <sip:{user}@127.0.0.1>;tag={tag}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
                  f"CSeq: {cseq} REGISTER\r\nContact: <{contact}>\r\nExpires: 60\r\nMax-Forwards: 70\r\n{auth}"
                  "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", edge_port))
        return s.recvfrom(65535)[0].decode(errors="replace")

    try:
        challenge = send(1)
        nonce = re.search(r'nonce="([^"]+)"', challenge)
        if not nonce:
            return [challenge.split("\r\n", 1)[0]]
        cnonce, nc = uuid.uuid4().hex[:16], "00000001"
        ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()  # noqa: S324 - SIP digest is MD5
        response = hashlib.md5(  # noqa: S324
            f"{edge.ha1(user, password, realm)}:{nonce.group(1)}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        auth = (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce.group(1)}", uri="{uri}", '
                f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"\r\n')
        return [send(2 + n, auth).split("\r\n", 1)[0] for n in range(1 + replays)]
    finally:
        s.close()
