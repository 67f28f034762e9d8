"""Real peers for the SIP edge tests: Kamailio with deploy/kamailio/kamailio.cfg, and baresip as an
agent's softphone that registers there with digest auth and answers by itself."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import ports
import pytest
import sipp
from repo import REPO
from worker_proc import WorkerProc, flush, new_worker

from callcenter import edge

KAMAILIO_CFG = REPO / "deploy" / "kamailio" / "kamailio.cfg"
BARESIP_MODULES = Path("/usr/lib/baresip/modules")
AGENT_PASSWORDS = {"1001": "s3cret-1001", "1002": "s3cret-1002"}   # the test agents' SIP passwords at the edge
NEEDS_EDGE = pytest.mark.skipif(shutil.which("kamailio") is None and not Path("/usr/sbin/kamailio").exists()
                                or shutil.which("baresip") is None,
                                reason="kamailio and baresip come with ./scripts/setup.sh --test")
NEEDS_ENCRYPTED_EDGE = pytest.mark.skipif(
    not (shutil.which("kamailio") or Path("/usr/sbin/kamailio").exists()) or shutil.which("baresip") is None
    or shutil.which("rtpengine") is None or not (BARESIP_MODULES / "srtp.so").exists()
    or not Path("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so").exists(),
    reason="kamailio with its tls and websocket modules, rtpengine-daemon and baresip come with "
           "./scripts/setup.sh --test")


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


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def edge_rules(tmp: Path, edge_port: int) -> Path:
    """The shipped routing rules with agents 1001 and 1002 reached through the edge (by their address of
    record there), a 4 s ring and no wrap-up."""
    rules = (REPO / "routing_rules.yaml").read_text()
    for agent in ("1001", "1002"):
        rules = rules.replace(f"sip:{agent}@127.0.0.1:5070", f"sip:{agent}@127.0.0.1:{edge_port}")
    rules = rules.replace("ring_timeout: 15", "ring_timeout: 4").replace("wrapup: 10", "wrapup: 0")
    (tmp / "rules.yaml").write_text(rules)
    return tmp / "rules.yaml"


@contextlib.contextmanager
def edge_stack(tmp: Path, redis_url: str, worker_id: str, rpc: bool = False, extra: str = "",
               rtpengine: Rtpengine | None = None, defines: dict[str, int] | None = None
               ) -> Iterator[tuple[WorkerProc, Edge]]:
    """A worker behind an edge (agents 1001 and 1002 with AGENT_PASSWORDS) on a flushed Redis; rpc: the
    edge's JSON-RPC port, which the worker polls for the registrations (`extra` config may name it:
    {rpc_url}); rtpengine (started): the encrypted edge."""
    flush(redis_url)
    w = new_worker(tmp, redis_url, worker_id=worker_id)
    edge_port = ports.port()
    e = Edge(tmp, edge_port, AGENT_PASSWORDS, [w.target], rpc=rpc, rtpengine=rtpengine, defines=defines)
    w.write_config(rules=edge_rules(tmp, edge_port), extra=extra.replace("{rpc_url}", e.rpc_url))
    e.start()
    w.start()
    try:
        yield w, e
    finally:
        e.stop()
    assert w.stop() == 0, w.tail()


@contextlib.contextmanager
def encrypted_edge_stack(tmp: Path, redis_url: str, worker_id: str, defines: dict[str, int] | None = None
                         ) -> Iterator[tuple[WorkerProc, Edge]]:
    """edge_stack on the encrypted edge (its own rtpengine), the worker reading the registrations every 0.3 s."""
    rtp = Rtpengine(tmp).start()
    try:
        with edge_stack(tmp, redis_url, worker_id, rpc=True, rtpengine=rtp, defines=defines,
                        extra='edge: {registrations: ["{rpc_url}"], poll_every: 0.3s}\n') as both:
            yield both
    finally:
        rtp.stop()


def kamailio_cli(tmp: Path) -> tuple[list[str], Path]:
    """`callcenter kamailio` arguments writing into tmp/edge (agent 1001's credentials, one worker), and that
    directory."""
    creds = tmp / "agents.secrets.yaml"
    creds.write_text('"1001": correct-horse\n')
    out = tmp / "edge"
    return ["kamailio", "--rules", str(REPO / "routing_rules.yaml"), "--credentials", str(creds),
            "--worker", "10.0.0.5:5060", "--out", str(out)], out


def digest(user: str, password: str, challenge: str, uri: str, realm: str = edge.REALM) -> str:
    """The Authorization header (qop=auth, nc 1) answering a REGISTER's 401 challenge."""
    nonce = re.search(r'nonce="([^"]+)"', challenge)
    assert nonce, challenge
    cnonce, nc = uuid.uuid4().hex[:16], "00000001"
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()  # noqa: S324 - SIP digest is MD5
    response = hashlib.md5(  # noqa: S324
        f"{edge.ha1(user, password, realm)}:{nonce.group(1)}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce.group(1)}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"\r\n')


class Rtpengine:
    """rtpengine (userspace forwarding, no kernel table) on 127.0.0.1, its ng control socket on `ng`."""

    def __init__(self, tmp: Path, media_ports: int = 40, options: tuple[str, ...] = ()) -> None:
        self.options = options
        self.ng = ports.port()
        self.count = media_ports + media_ports % 2
        self.low = ports.block(self.count, media=True)
        self.dir = tmp / f"rtpengine-{self.ng}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "rtpengine.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return f"udp:127.0.0.1:{self.ng}"

    @property
    def media_ports(self) -> range:
        return range(self.low, self.low + self.count)

    def start(self) -> Rtpengine:
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            ["rtpengine", "--config-file=none", "--foreground", "--log-stderr", "--log-level=6", "--table=-1",
             "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{self.ng}", f"--port-min={self.low}",
             f"--port-max={self.low + self.count - 1}", f"--pidfile={self.dir / 'rtpengine.pid'}", *self.options],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"rtpengine exited with {self.proc.returncode}:\n{self.tail()}")
            if self.ping():
                return self
            time.sleep(0.2)
        raise AssertionError(f"rtpengine not answering on its ng socket:\n{self.tail()}")

    def ping(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            try:
                s.sendto(b"c0ffee d7:command4:pinge", ("127.0.0.1", self.ng))
                return b"pong" in s.recvfrom(4096)[0]
            except OSError:
                return False

    def stop(self) -> None:
        terminate(self.proc)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""


class Edge:
    """kamailio -DD -E on 127.0.0.1:port, its tables written by callcenter.edge from the credentials.
    With `rtpengine`, the encrypted edge: TLS on tls_port, WSS on wss_port, plain WS on ws_port, a
    self-signed certificate for 127.0.0.1 (`cert`)."""

    def __init__(self, tmp: Path, port: int, credentials: dict[str, str], workers: list[str],
                 trunks: list[str] | None = None, defines: dict[str, int] | None = None,
                 limits: edge.Limits | None = None, rtpengine: Rtpengine | None = None, rpc: bool = False,
                 shm_mb: int = 32) -> None:
        # laid out as in production: kamailio.cfg, and beside it callcenter/ (tables, limits.cfg it imports)
        self.root = tmp / f"edge-{port}"
        self.dir = self.root / "callcenter"
        self.port = port
        self.listen = [f"udp:127.0.0.1:{port}"]
        encryption = None
        if rtpengine is not None:
            self.tls_port, self.wss_port, self.ws_port = ports.port(), ports.port(), ports.port()
            self.cert, key = edge.self_signed(self.root / "certs", ["127.0.0.1"])
            encryption = edge.Encryption(rtpengine=rtpengine.socket, certificate=str(self.cert),
                                         private_key=str(key), wss_port=self.wss_port, ws_port=self.ws_port)
            self.listen += [f"tls:127.0.0.1:{self.tls_port}", f"tls:127.0.0.1:{self.wss_port}",
                            f"tcp:127.0.0.1:{self.ws_port}"]
        # rpc: the JSON-RPC port where workers read the registrations (rpc_url)
        self.rpc_port = ports.port() if rpc else 0
        edge.write_tables(self.dir, credentials, workers, trunks=trunks, limits=limits, encryption=encryption,
                          rpc=f"127.0.0.1:{self.rpc_port}" if rpc else "")
        self.defines = defines or {}      # kamailio.cfg's limits (BAN_SECONDS, INVITE_RATE, ...)
        self.shm_mb = shm_mb              # kamailio -m: its shared memory (a TLS/WSS connection takes ~100 KB)
        self.log = self.dir / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}/RPC"

    def start(self, timeout: float = 15.0) -> Edge:
        exe = shutil.which("kamailio") or "/usr/sbin/kamailio"
        cfg = self.root / "kamailio.cfg"
        shutil.copyfile(KAMAILIO_CFG, cfg)
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [exe, "-DD", "-E", "-f", str(cfg), *[a for sock in self.listen for a in ("-l", sock)], "-w", str(self.dir),
             "-A", f'DBURL="text://{self.dir}"', "-A", f'DSLIST="{self.dir / "dispatcher.list"}"',
             "-A", f'CTLSOCK="unix:{self.dir / "ctl.sock"}"',
             *[a for name, value in self.defines.items() for a in ("-A", f"{name}={int(value)}")],
             "-P", str(self.dir / "kamailio.pid"), "-m", str(self.shm_mb), "-M", "4"],
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
    """baresip registered as `user` at the edge (digest auth), answering every call by itself and sending a
    440 Hz tone (ausine); what it hears goes to heard.wav. tls=True: a desk phone on the encrypted edge,
    SIP over TLS (the edge's certificate as its CA) and SRTP only (mediaenc=srtp-mand), what it hears in
    `heard()`. control=True: its keys are `command()`s over baresip's ctrl_tcp (hold, resume, ...)."""

    def __init__(self, tmp: Path, user: str, password: str, edge: Edge, ip: str = "127.0.0.1",
                 tls: bool = False, control: bool = False) -> None:
        port = ports.block(2 if tls else 1, ip=ip)        # baresip listens for TLS on the SIP port + 1
        rtp_base = ports.block(22, media=True, ip=ip)
        self.rtp_ports = range(rtp_base, rtp_base + 21)
        self.dir = tmp / f"baresip-{user}-{ip}-{port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.transport = "TLS" if tls else "UDP"
        # sndfile: what the phone sends and hears, as dump-<peer>-enc.wav / -dec.wav (baresip 1.0's aufile
        # plays files, it does not write them); the decoder runs for a player: ALSA's null device
        secure = (f"sip_cafile\t{edge.cert}\nmodule\tsrtp.so\nmodule\tsndfile.so\nsnd_path\t{self.dir}\n"
                  "module\talsa.so\n") if tls else ""
        player = "alsa,null" if tls else f"aufile,{self.dir / 'heard.wav'}"
        self.control_port = ports.port() if control else 0
        ctrl = f"ctrl_tcp_listen\t127.0.0.1:{self.control_port}\nmodule_app\tctrl_tcp.so\n" if control else ""
        (self.dir / "config").write_text(
            f"poll_method\tepoll\nsip_listen\t{ip}:{port}\nsip_transports\t{'udp,tls' if tls else 'udp'}\n"
            f"audio_player\t{player}\naudio_source\tausine,440\n"
            # ausine makes 48 kHz stereo only: baresip resamples to and from the 8 kHz G.711 stream
            "ausrc_srate\t48000\nauplay_srate\t48000\nausrc_channels\t2\nauplay_channels\t2\n"
            f"audio_alert\taufile,/dev/null\nrtp_ports\t{rtp_base}-{rtp_base + 20}\n"
            f"module_path\t{BARESIP_MODULES}\nmodule\tg711.so\nmodule\tausine.so\nmodule\taufile.so\n"
            f"{secure}module_app\taccount.so\nmodule_app\tmenu.so\n{ctrl}")
        where = f"127.0.0.1:{edge.tls_port};transport=tls" if tls else edge.address
        (self.dir / "accounts").write_text(
            f"<sip:{user}@{where}>;auth_pass={password};answermode=auto;regint=60;"
            f'outbound="sip:{where}";audio_codecs=PCMU,PCMA{";mediaenc=srtp-mand" if tls else ""}\n')
        self.log = self.dir / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def heard(self) -> Path:
        """The decoded audio of its (last) call (tls phones: the sndfile module's dump)."""
        return sorted(self.dir.glob("dump-*-dec.wav"), key=lambda f: f.stat().st_mtime)[-1]

    def command(self, command: str, params: str = "") -> str:
        """One of baresip's commands (a menu key's long name: "hold", "resume") over ctrl_tcp, netstrings of
        JSON (events may come before the answer); the answer's text."""
        body = json.dumps({"command": command, "params": params, "token": uuid.uuid4().hex[:8]}).encode()
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=5) as s:
            s.sendall(b"%d:%s," % (len(body), body))
            data = b""
            while True:
                m = re.match(rb"(\d+):", data)
                if m and len(data) > m.end() + int(m.group(1)):
                    message = json.loads(data[m.end():m.end() + int(m.group(1))])
                    data = data[m.end() + int(m.group(1)) + 1:]
                    if message.get("response"):
                        assert message.get("ok"), message
                        return str(message.get("data", ""))
                    continue
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError(f"baresip closed its control connection: {data!r}")
                data += chunk

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
        self.wait_for(r"\{0/" + self.transport + r"/v4\} 200 OK", timeout)

    def stop(self) -> None:
        terminate(self.proc)


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
             ip: str = "127.0.0.1", replays: int = 0, sock: socket.socket | None = None) -> list[str]:
    """REGISTER user's contact at the edge, answering its qop=auth challenge, then send the same answer
    `replays` times more (a replay attack): the status line of the answer to each. sock: send from this
    (bound) socket and leave it open (a phone that then waits for its calls there)."""
    s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if sock is None:
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
        if "nonce=" not in challenge:
            return [challenge.split("\r\n", 1)[0]]
        auth = digest(user, password, challenge, uri, realm)
        return [send(2 + n, auth).split("\r\n", 1)[0] for n in range(1 + replays)]
    finally:
        if sock is None:
            s.close()


def sip_response(request: str, status: str, tag: str = "", sdp: str = "", contact: str = "") -> str:
    """A phone's answer to a request it received (refusing an offer: '486 Busy Here'; with an SDP answer and
    its Contact, '200 OK' to an INVITE). tag: the To tag (the same for every answer of one dialog)."""
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")
    keep = [ln for ln in head if re.match(r"(?i)(via|from|to|call-id|cseq|record-route):", ln)]
    tag = tag or uuid.uuid4().hex[:8]
    keep = [ln + f";tag={tag}" if ln.lower().startswith("to:") and "tag=" not in ln else ln for ln in keep]
    if sdp:
        keep += [f"Contact: <{contact}>", "Content-Type: application/sdp"]
    return f"SIP/2.0 {status}\r\n" + "\r\n".join(keep) + f"\r\nContent-Length: {len(sdp.encode())}\r\n\r\n" + sdp


class WsSip:
    """A browser phone's signalling without the browser: SIP over a WebSocket (RFC 7118, subprotocol "sip")
    to the edge's wss:// port, TLS checked against the edge's certificate; frames by hand (client frames
    masked, as RFC 6455 wants)."""

    def __init__(self, edge: Edge, secure: bool = True) -> None:
        port = edge.wss_port if secure else edge.ws_port
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        if secure:
            ctx = ssl.create_default_context(cafile=str(edge.cert))
            self.sock: socket.socket = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        else:
            self.sock = raw
        self.transport = "WSS" if secure else "WS"
        self.host = f"{uuid.uuid4().hex[:10]}.invalid"      # a browser has no address of its own to give
        self.contact = ""                                   # its Contact, once it registered
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n"
                           "Origin: https://127.0.0.1\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"WebSocket handshake: connection closed after {head!r}")
            head += chunk
        self.handshake = head.decode(errors="replace")
        self._buf = head.split(b"\r\n\r\n", 1)[1]

    def send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self, timeout: float = 5.0) -> str:
        """The next SIP message (text frame); pings are answered, other control frames skipped."""
        self.sock.settimeout(timeout)
        while True:
            opcode, payload = self._frame()
            if opcode == 0x9:
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif opcode in (0x1, 0x2):
                return payload.decode(errors="replace")
            elif opcode == 0x8:
                raise AssertionError("the edge closed the WebSocket")

    def _frame(self) -> tuple[int, bytes]:
        def need(n: int) -> bytes:
            while len(self._buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise AssertionError("WebSocket closed")
                self._buf += chunk
            out, self._buf = self._buf[:n], self._buf[n:]
            return out
        b0, b1 = need(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(need(2), "big")
        elif n == 127:
            n = int.from_bytes(need(8), "big")
        return b0 & 0x0F, need(n)

    REGISTRAR = "sip:127.0.0.1"       # the Request-URI of its REGISTERs (digest's uri)

    def register_request(self, user: str, call_id: str, tag: str, cseq: int, auth: str = "",
                         expires: int = 60) -> str:
        """A REGISTER as a browser phone sends it: Contact sip:<random>@<random>.invalid;transport=ws (made on
        the first, kept by the refreshes); auth: the Authorization line answering a challenge (digest())."""
        if not self.contact:
            self.contact = f"sip:{uuid.uuid4().hex[:8]}@{self.host};transport=ws"
        return (f"REGISTER {self.REGISTRAR} SIP/2.0\r\nVia: SIP/2.0/{self.transport} {self.host};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                f"From: <sip:{user}@127.0.0.1>;tag={tag}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
                f"CSeq: {cseq} REGISTER\r\nContact: <{self.contact}>;expires={expires}\r\nMax-Forwards: 70\r\n{auth}"
                "Content-Length: 0\r\n\r\n")

    def register(self, user: str, password: str, realm: str = edge.REALM, expires: int = 60) -> str:
        """REGISTER (register_request), answering the digest challenge: the final status line."""
        call_id, tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
        self.contact = ""

        def send(cseq: int, auth: str = "") -> str:
            self.send(self.register_request(user, call_id, tag, cseq, auth, expires))
            return self.recv()

        challenge = send(1)
        if "nonce=" not in challenge:
            return challenge.split("\r\n", 1)[0]
        return send(2, digest(user, password, challenge, self.REGISTRAR, realm)).split("\r\n", 1)[0]

    def reply(self, request: str, status: str, tag: str = "", sdp: str = "") -> None:
        """Answer a request received over the WebSocket (see sip_response)."""
        self.send(sip_response(request, status, tag, sdp, self.contact))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
