"""The whole encrypted edge under load (issue 15): N browser agents registered over WSS through Kamailio, their
registrations refreshed and read by routing's poll, then C concurrent calls from sipp through the edge and a
worker to those agents, the agents' media through rtpengine (DTLS-SRTP + ICE towards the browsers, plain RTP
towards the worker). The CPU of kamailio (all its processes), of the edge's rtpengine and of the worker, per
registered agent and per call.

The browsers are emulated without browsers, as bench/edge_bench.py does: each agent is SIP over a secure
WebSocket (tests/edge_proc.WsSip, one thread an agent: REGISTER with digest auth, refreshed every --refresh s;
an INVITE answered at once), and its WebRTC media is a second rtpengine (the "browsers' rtpengine", not
measured) that answers the edge's DTLS-SRTP + ICE offer and hands plain RTP to a socket of the bench; that
socket sends 20 ms G.711 packets (50/s) for the whole call and counts what arrives. The callers are sipp,
sending a tone, through the edge's dispatcher to the worker's bench queue (bench/flows/bench_queue.yaml).

Phases, each measured over --window s: idle (nothing registered: the edge, rtpengine and the worker's poll of an
empty table), registered (N agents, refreshes and polls going on: per agent = the CPU above idle / N), calls (C
calls up, every agent's media flowing: per call = the CPU above registered / C). 100% = one core.

    .venv/bin/python bench/edge_calls_bench.py --agents 100 --calls 50 --refresh 30 --window 30
"""

from __future__ import annotations

import argparse
import os
import random
import re
import select
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))            # the package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # tests/ helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))                   # edge_bench, sip_bench
import ports
import sipp
from edge_bench import BROWSER, PLAIN, End, Ng, media_port, sdp, udp
from edge_proc import Edge, Rtpengine, WsSip, digest
from sip_bench import (
    STAT_ARGS,
    cleanup,
    cpu_seconds,
    first_error,
    raise_nofile,
    sipp_counts,
    write_config,
    write_rules,
)
from worker_proc import WorkerProc, flush, new_worker

from callcenter import edge as edge_mod
from callcenter.redis_server import EmbeddedRedis

TONE_HZ = 700.0
PAYLOAD = bytes(random.getrandbits(8) for _ in range(160))


def header(msg: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(.*?)\r?$", msg, re.M | re.I)
    return m.group(1) if m else ""


class Media(threading.Thread):
    """The browsers' side of every call: each socket sends a G.711 packet every 20 ms and counts what came."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.ends: dict[int, End] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.sent = self.got = 0
        self.epoll = select.epoll()         # (select() stops at fd 1024: hundreds of agents' sockets pass it)

    def add(self, end: End) -> None:
        with self.lock:
            self.ends[end.sock.fileno()] = end
            self.epoll.register(end.sock.fileno(), select.EPOLLIN)

    def remove(self, end: End) -> None:
        with self.lock:
            if self.ends.pop(end.sock.fileno(), None) is not None:
                self.epoll.unregister(end.sock.fileno())
            self.sent += end.sent
            self.got += end.got
        end.sock.close()

    def totals(self) -> tuple[int, int]:
        with self.lock:
            return (self.sent + sum(e.sent for e in self.ends.values()),
                    self.got + sum(e.got for e in self.ends.values()))

    def run(self) -> None:
        due = time.monotonic()
        while not self.stopping.is_set():
            with self.lock:
                ends = dict(self.ends)
                if time.monotonic() >= due:
                    for e in ends.values():
                        e.send(PAYLOAD)
                    due = max(due + 0.020, time.monotonic() - 0.1)
            if not ends:
                time.sleep(0.02)
                continue
            ready = self.epoll.poll(max(0.0, min(0.005, due - time.monotonic())))
            with self.lock:
                for fd, _ in ready:
                    e = self.ends.get(fd)
                    while e is not None:
                        try:
                            e.sock.recv(2048)
                        except BlockingIOError:
                            break
                        e.got += 1


class Agent(threading.Thread):
    """One browser agent: registered over WSS and refreshed, every offer answered with the browsers' rtpengine's
    WebRTC answer, its media on the Media thread until the BYE."""

    def __init__(self, edge: Edge, user: str, password: str, browsers_ng: int, refresh: float,
                 media: Media) -> None:
        super().__init__(daemon=True)
        self.user, self.password, self.refresh, self.media = user, password, refresh, media
        self.ws = WsSip(edge)
        self.ng = Ng(browsers_ng)
        self.call_id, self.tag, self.cseq = uuid.uuid4().hex, uuid.uuid4().hex[:8], 0
        self.registered = threading.Event()
        self.stopping = threading.Event()
        self.calls: dict[str, End] = {}
        self.registrations = self.answered = 0
        self.errors: list[str] = []

    def _register(self, auth: str = "") -> None:
        self.cseq += 1
        self.ws.send(self.ws.register_request(self.user, self.call_id, self.tag, self.cseq, auth,
                                              expires=max(30, int(2 * self.refresh))))

    def run(self) -> None:
        next_refresh = 0.0
        while not self.stopping.is_set():
            if time.monotonic() >= next_refresh:
                self._register()
                next_refresh = time.monotonic() + self.refresh
            try:
                msg = self.ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            except (OSError, AssertionError) as exc:
                if not self.stopping.is_set():
                    self.errors.append(f"websocket: {exc}")
                return
            try:
                self._handle(msg)
            except (OSError, AssertionError) as exc:
                self.errors.append(f"{msg.split(chr(13), 1)[0]}: {exc}")

    def _handle(self, msg: str) -> None:
        first = msg.split("\r\n", 1)[0]
        if first.startswith("SIP/2.0 "):
            if header(msg, "CSeq").endswith("REGISTER"):
                code = first.split()[1]
                if code == "401":
                    self._register(digest(self.user, self.password, msg, WsSip.REGISTRAR))
                elif code == "200":
                    self.registrations += 1
                    self.registered.set()
                else:
                    self.errors.append(f"REGISTER: {first}")
            return
        method, cid = first.split(" ", 1)[0], header(msg, "Call-ID")
        if method == "INVITE" and cid not in self.calls:
            self._answer(msg, cid)
        elif method == "BYE":
            self.ws.reply(msg, "200 OK")
            self._hangup(cid)
        elif method == "CANCEL":
            self.ws.reply(msg, "200 OK")
        elif method != "ACK":
            self.ws.reply(msg, "200 OK")

    def _answer(self, invite: str, cid: str) -> None:
        """The browsers' rtpengine turns the edge's WebRTC offer into plain RTP to a socket here, and gives the
        WebRTC answer that goes back in the 200 OK (DTLS and ICE then run between the two rtpengines)."""
        sink = udp()
        plain = self.ng(command="offer", **{"call-id": cid, "from-tag": "edge", "sdp": invite.split("\r\n\r\n", 1)[1],
                                            "transport-protocol": "RTP/AVP", **PLAIN})
        webrtc = self.ng(command="answer", **{"call-id": cid, "from-tag": "edge", "to-tag": "browser",
                                              "sdp": sdp(sink.getsockname()[1]), **BROWSER})
        self.ws.reply(invite, "200 OK", uuid.uuid4().hex[:8], sdp=str(webrtc["sdp"]))
        end = End(sink, ("127.0.0.1", media_port(str(plain["sdp"]))), random.getrandbits(32))
        self.calls[cid] = end
        self.media.add(end)
        self.answered += 1

    def _hangup(self, cid: str) -> None:
        end = self.calls.pop(cid, None)
        if end is not None:
            self.media.remove(end)
            self.ng(command="delete", **{"call-id": cid, "from-tag": "edge"})

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        self.ws.close()


def available(w: WorkerProc) -> int:
    """Agents routing shows available: those whose phone it has seen registered (the rest are paused no_phone)."""
    st, body = w.http("GET", "/agents")
    assert st == 200, body
    return sum(1 for a in body["agents"] if a["state"] == "available")


def group_cpu(pgid: int) -> float:
    """utime+stime of every process of a process group (kamailio and the children it forked)."""
    total = 0.0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


PROCESSES = ("kamailio", "rtpengine", "worker")


@dataclass
class Phase:
    name: str
    agents: int
    calls: int
    cpu: tuple[float, ...]          # % of a core, by PROCESSES
    note: str = ""


def progress(p: Phase) -> None:
    cpu = ", ".join(f"{name} {x:.2f}%" for name, x in zip(PROCESSES, p.cpu, strict=True))
    print(f"{p.name}: {p.agents} agents, {p.calls} calls: {cpu} {p.note}", flush=True)


def measure(name: str, agents: int, calls: int, window: float, edge: Edge, rtp: Rtpengine, w: WorkerProc,
            note: str = "") -> Phase:
    assert edge.proc is not None and rtp.proc is not None and w.proc is not None

    def read() -> tuple[float, float, float]:
        return group_cpu(edge.proc.pid), cpu_seconds(rtp.proc.pid) or 0.0, cpu_seconds(w.proc.pid) or 0.0  # type: ignore[union-attr]
    t0, c0 = time.monotonic(), read()
    time.sleep(window)
    secs, c1 = time.monotonic() - t0, read()
    return Phase(name, agents, calls, tuple(100 * (b - a) / secs for a, b in zip(c0, c1, strict=True)), note)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=20, help="browser agents registered over WSS")
    ap.add_argument("--calls", type=int, default=10, help="concurrent calls (at most --agents)")
    ap.add_argument("--refresh", type=float, default=30.0, help="seconds between an agent's REGISTERs")
    ap.add_argument("--window", type=float, default=30.0, help="measured seconds per phase")
    ap.add_argument("--rate", type=float, default=10.0, help="new calls/s while the calls ramp up")
    ap.add_argument("--poll", default="2s", help="routing's poll of the registrations (edge.poll_every)")
    args = ap.parse_args()
    n, c = args.agents, min(args.calls, args.agents)
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="edge-calls-bench-"))
    redis = EmbeddedRedis(tmp / "redis").start()
    flush(redis.url)
    w = new_worker(tmp, redis.url, worker_id="bench-edge")
    edge_port = ports.port()
    ids = write_rules(tmp / "rules.yaml", edge_port, n)          # agents reached at the edge
    passwords = {a: f"pw-{a}" for a in ids}
    write_config(w, "bench_queue", tmp / "rules.yaml")
    rtp = Rtpengine(tmp / "edge", media_ports=8 * c + 16, options=("--delete-delay=0",))
    browsers = Rtpengine(tmp / "browsers", media_ports=8 * c + 16, options=("--delete-delay=0",))
    edge = Edge(tmp, edge_port, passwords, [w.target], rtpengine=rtp, rpc=True,
                limits=edge_mod.Limits(pike_density=1_000_000, invite_rate=100_000, register_rate=100_000),
                shm_mb=64 + n // 4)      # each agent's TLS connection takes ~100 KB of kamailio's shared memory
    with w.config.open("a") as f:
        f.write(f'edge: {{registrations: ["{edge.rpc_url}"], poll_every: {args.poll}}}\n')
    media = Media()
    agents: list[Agent] = []
    phases: list[Phase] = []
    callers: sipp.Sipp | None = None
    delivered, failed, note, shm = 0.0, 0, "", ""
    try:
        rtp.start()
        browsers.start()
        edge.start()
        w.start(timeout=40)
        w.login(*ids)
        media.start()
        print(f"kamailio {edge.proc.pid if edge.proc else '?'}, rtpengine {rtp.proc.pid if rtp.proc else '?'}, "
              f"worker {w.proc.pid if w.proc else '?'}; {os.cpu_count()} CPUs", flush=True)
        time.sleep(3)
        phases.append(measure("idle", 0, 0, args.window, edge, rtp, w))
        progress(phases[-1])
        for a in ids:
            agents.append(Agent(edge, a, passwords[a], browsers.ng, args.refresh, media))
            agents[-1].start()
            time.sleep(min(0.05, args.refresh / n))          # registrations (and their refreshes) spread out
        deadline = time.monotonic() + 60
        while available(w) < n and time.monotonic() < deadline:
            time.sleep(0.5)
        seen = available(w)
        phases.append(measure("registered", n, 0, args.window, edge, rtp, w,
                              "" if seen == n else f"routing saw {seen} phones of {n}"))
        progress(phases[-1])

        ramp = c / args.rate
        hold_ms = int((ramp + 6 + args.window + 4) * 1000)
        callers = sipp.caller(edge.address, [("tone", TONE_HZ, hold_ms), ("pause", hold_ms), ("hangup",)],
                              number="0907654321", service="bench", calls=c, rate=args.rate, limit=c, codecs="8",
                              timeout_s=int(hold_ms / 1000 + 90), extra=[*STAT_ARGS, "-max_socket", str(c + 100)])
        deadline = time.monotonic() + ramp + 30
        while sum(len(a.calls) for a in agents) < c and time.monotonic() < deadline:
            time.sleep(0.25)
        up = sum(len(a.calls) for a in agents)
        mem = dict(re.findall(r"(\w+): (\d+)", edge.kamcmd("core.shmmem")))     # kamailio -m: its shared memory
        shm = f"kamailio shared memory used {int(mem.get('real_used', 0)) / 2**20:.1f} of {int(mem.get('total', 0)) / 2**20:.0f} MB"
        time.sleep(4)                                             # DTLS and ICE settle, media flowing
        s0, g0 = media.totals()
        phases.append(measure("calls", n, up, args.window, edge, rtp, w,
                              "" if up == c else f"{up} of {c} calls up"))
        s1, g1 = media.totals()
        delivered = 100 * (g1 - g0) / max(1, s1 - s0)
        progress(phases[-1])
        sipp.wait_all(callers, timeout=hold_ms / 1000 + 60)
        ok, failed = sipp_counts(callers)
        if failed or ok < c:
            note = f"sipp: {ok} ok, {failed} failed: {first_error(callers)}"
    finally:
        if callers is not None:
            callers.stop()
            cleanup(callers)
        for a in agents:
            a.stop()
        media.stopping.set()
        edge.stop()
        rtp.stop()
        browsers.stop()
        w.stop(timeout=20)
        redis.stop()
    errors = [e for a in agents for e in a.errors]
    refreshes = sum(a.registrations for a in agents)
    idle, reg, calls = phases[0], phases[1], phases[2]
    print(f"\nthe encrypted edge: {n} WSS agents (REGISTER every {args.refresh:.0f} s, routing's poll every "
          f"{args.poll}), {calls.calls} concurrent calls; {args.window:.0f} s per phase, {os.cpu_count()} CPUs, "
          "CPU 100% = one core")
    print(f"{'phase':>10} {'agents':>6} {'calls':>6} {'kamailio%':>9} {'rtpengine%':>10} {'worker%':>8}  note")
    for p in phases:
        print(f"{p.name:>10} {p.agents:>6} {p.calls:>6} {p.cpu[0]:>9.2f} {p.cpu[1]:>10.2f} {p.cpu[2]:>8.2f}  {p.note}")
    per_agent = [(b - a) / max(1, n) for a, b in zip(idle.cpu, reg.cpu, strict=True)]
    per_call = [(b - a) / max(1, calls.calls) for a, b in zip(reg.cpu, calls.cpu, strict=True)]
    print(f"{'per agent':>24} {per_agent[0]:>9.4f} {per_agent[1]:>10.4f} {per_agent[2]:>8.4f}")
    print(f"{'per call':>24} {per_call[0]:>9.4f} {per_call[1]:>10.4f} {per_call[2]:>8.4f}")
    print(f"media to the browsers' sockets delivered: {delivered:.2f}%; REGISTERs answered 200: {refreshes}; "
          f"calls answered by agents: {sum(a.answered for a in agents)}; agent errors: {len(errors)}"
          f"{' (' + errors[0] + ')' if errors else ''}; {shm}; {note}")
    return 0 if not errors and not failed and not note and all(not p.note for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
