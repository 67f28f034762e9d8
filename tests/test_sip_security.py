"""Worker-side SIP hardening on a real worker with real sipp callers: callers cannot transfer or take
over calls (REFER, Replaces), only trusted sources may call or assert an identity, one source cannot
take every line, a stranger spraying RTP cannot take a call's audio, dead and endless calls are hung up,
and TCP connections are capped. Several loopback addresses (all of 127/8 is this host) play the edge,
a trunk and strangers."""

from __future__ import annotations

import os
import random
import socket
import struct
import time
from collections import Counter

import pytest
import sipp
import tones
from repo import REPO
from worker_proc import WorkerProc, flush, new_worker

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

EDGE = "127.0.0.1"           # trusted, PAI believed, max_calls_per_source 2
NO_PAI = "127.0.0.3"         # trusted, its PAI is not believed
SMALL = "127.0.0.4"          # trusted, one call at a time
STRANGER = "127.0.0.9"       # not trusted

SIP_EXTRA = (f"trusted: [{EDGE}/32, {{net: {NO_PAI}, pai: false}}, {{net: {SMALL}, max_calls: 1}}], "
             "max_calls_per_source: 2, rtp_timeout: 4, max_call_seconds: 9, max_tcp_connections: 3")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> WorkerProc:
    tmp = tmp_path_factory.mktemp("sipsec")
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url)
    w.write_config(sip_extra=SIP_EXTRA)
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


def refused(w: WorkerProc, reason: str) -> list[dict]:
    return [e for e in w.logs() if e.get("event") == "sip request refused" and e.get("reason") == reason]


def _listen_udp(ip: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    s.settimeout(0.2)
    return s


def _received(s: socket.socket) -> int:
    n = 0
    while True:
        try:
            s.recv(65535)
            n += 1
        except (TimeoutError, BlockingIOError):
            return n


# -- transfers are ours only ------------------------------------------------------------------------

def test_refer_from_a_caller_is_declined_and_nothing_is_dialed(worker: WorkerProc) -> None:
    target = _listen_udp()      # where the Refer-To points: a toll number on someone's trunk
    uri = f"sip:0019005551234@127.0.0.1:{target.getsockname()[1]}"
    c = sipp.caller(worker.target, [("pause", 1500), ("refer", uri, 603), ("pause", 1500), ("hangup",)],
                    number="0901000101")
    assert c.wait(30) == 0, c.errors()
    time.sleep(1.0)
    assert _received(target) == 0, "the worker sent something to the Refer-To target"
    row = worker.call_from("0901000101")
    assert row.hangup_side == "caller"        # the call went on after the refused REFER
    assert refused(worker, "refer")
    assert "0019005551234" not in worker.log.read_text()   # logged masked


def test_invite_with_replaces_is_refused(worker: WorkerProc) -> None:
    c = sipp.caller(worker.target, [("pause", 1000), ("replaces", 403), ("pause", 1000), ("hangup",)],
                    number="0901000102")
    assert c.wait(30) == 0, c.errors()
    assert worker.call_from("0901000102").hangup_side == "caller"
    assert refused(worker, "replaces")


def test_refer_and_replaces_are_not_advertised(worker: WorkerProc) -> None:
    s = _listen_udp()
    port = s.getsockname()[1]
    s.sendto((f"OPTIONS sip:hotline@{worker.target} SIP/2.0\r\n"
              f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-opt{os.getpid()}\r\n"
              f"From: <sip:probe@127.0.0.1:{port}>;tag=p1\r\nTo: <sip:hotline@{worker.target}>\r\n"
              f"Call-ID: opt-{os.getpid()}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
              "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", worker.sip_port))
    s.settimeout(5)
    reply = s.recv(65535).decode()
    allow = [line for line in reply.split("\r\n") if line.lower().startswith("allow:")]
    supported = [line for line in reply.split("\r\n") if line.lower().startswith("supported:")]
    assert reply.startswith("SIP/2.0 200") and allow, reply
    assert "INVITE" in allow[0] and "REFER" not in allow[0].upper(), allow
    assert all("replaces" not in line.lower() for line in supported), supported


# -- trusted sources and asserted identity ------------------------------------------------------------

def test_invite_from_an_untrusted_address_gets_403(worker: WorkerProc) -> None:
    c = sipp.caller(worker.target, [], number="0901000103", expect_code=403, local_ip=STRANGER)
    assert c.wait(30) == 0, c.errors()
    assert refused(worker, "untrusted_source")
    time.sleep(0.5)
    assert not [r for r in worker.calls(0) if r.caller == "0901000103"], "an untrusted call reached the IVR"


def test_asserted_identity_only_from_sources_trusted_with_it(worker: WorkerProc) -> None:
    pai = ["P-Asserted-Identity: <sip:0281110001@trunk.example;user=phone>"]
    believed = sipp.caller(worker.target, [("pause", 500), ("hangup",)], number="0901000104", headers=pai)
    ignored = sipp.caller(worker.target, [("pause", 500), ("hangup",)], number="0901000105",
                          headers=["P-Asserted-Identity: <sip:0281110002@evil.example>"], local_ip=NO_PAI)
    assert sipp.wait_all(believed, ignored) == [0, 0], believed.errors() + ignored.errors()
    assert worker.call_from("0281110001")                 # the trusted PAI is the caller's number
    assert worker.call_from("0901000105")                 # the other source's PAI was not believed
    numbers = {r.caller for r in worker.calls(0)}
    assert "0901000104" not in numbers and "0281110002" not in numbers


def test_one_source_cannot_take_every_line(worker: WorkerProc) -> None:
    held = sipp.caller(worker.target, [("audio",), ("pause", 5000), ("hangup",)], number="0901000106",
                       local_ip=SMALL)
    time.sleep(1.5)
    second = sipp.caller(worker.target, [], number="0901000107", expect_code=486, local_ip=SMALL)
    other = sipp.caller(worker.target, [("pause", 500), ("hangup",)], number="0901000108")  # another source
    assert sipp.wait_all(held, second, other) == [0, 0, 0], held.errors() + second.errors() + other.errors()
    assert refused(worker, "source_cap")
    # The slot is given back when the call ends.
    again = sipp.caller(worker.target, [("pause", 500), ("hangup",)], number="0901000109", local_ip=SMALL)
    assert again.wait(30) == 0, again.errors()


# -- media -------------------------------------------------------------------------------------------

class _Sniffer:
    """Counts UDP packets on the loopback interface by (source port, destination address and port)."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[int, str, int]] = Counter()
        try:
            self.capture = tones.loopback_udp(self._udp)
        except PermissionError:
            pytest.skip("watching the loopback interface needs root (CAP_NET_RAW)")

    def _udp(self, sport: int, dst: str, dport: int, data: bytes) -> None:
        self.seen[(sport, dst, dport)] += 1

    def to(self, ip: str, port: int, from_port: int | None = None) -> int:
        return sum(n for (sp, dip, dp), n in list(self.seen.items())
                   if dip == ip and dp == port and (from_port is None or sp == from_port))

    def close(self) -> None:
        self.capture.close()


def _rtp(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 8, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc) + b"\xd5" * 160


def test_rtp_sprayed_by_a_stranger_does_not_take_the_call_audio(worker: WorkerProc) -> None:
    sniff = _Sniffer()
    stranger = _listen_udp(STRANGER)
    try:
        # The caller talks (RTP flowing both ways) while the IVR greets it.
        c = sipp.caller(worker.target, [("audio",), ("pause", 6000), ("hangup",)], number="0901000110")
        deadline = time.monotonic() + 5
        worker_port = None
        while worker_port is None and time.monotonic() < deadline:
            ports = [sp for (sp, dip, dp) in list(sniff.seen) if dip == "127.0.0.1" and dp == c.media_port]
            worker_port = ports[0] if ports else None
            time.sleep(0.05)
        assert worker_port, "the worker sent no RTP to the caller"
        before = sniff.to("127.0.0.1", c.media_port, worker_port)
        # 2 s of RTP from another address and port, ten times the caller's packet rate.
        ssrc, seq, end = random.getrandbits(32), 0, time.monotonic() + 2
        while time.monotonic() < end:
            for _ in range(10):
                stranger.sendto(_rtp(seq, ssrc), ("127.0.0.1", worker_port))
                seq += 1
            time.sleep(0.02)
        time.sleep(1.0)
        to_caller = sniff.to("127.0.0.1", c.media_port, worker_port) - before
        to_stranger = sniff.to(STRANGER, stranger.getsockname()[1])
        assert c.wait(30) == 0, c.errors()
    finally:
        sniff.close()
        stranger.close()
    assert to_stranger == 0, f"the stranger received {to_stranger} packets of the call's audio"
    assert to_caller >= 100, f"the caller received only {to_caller} packets in 3 s"   # 50 per second


# -- calls that would hold a line forever ----------------------------------------------------------------

def test_silent_call_is_hung_up_after_rtp_timeout(worker: WorkerProc) -> None:
    started = time.monotonic()
    c = sipp.caller(worker.target, [("wait_bye", 15000)], number="0901000111")   # sends no RTP at all
    assert c.wait(30) == 0, c.errors()
    assert time.monotonic() - started < 10
    row = worker.call_from("0901000111")
    assert row.hangup_side == "system" and "rtp_timeout" in (row.hangup_cause or ""), row


def test_call_is_hung_up_at_max_duration(worker: WorkerProc) -> None:
    # Talking until 9.3 s (two 4.7 s takes), so the RTP timeout (4 s) cannot end it before 13 s.
    started = time.monotonic()
    c = sipp.caller(worker.target, [("audio",), ("pause", 4600), ("audio",), ("wait_bye", 15000)],
                    number="0901000112")
    assert c.wait(40) == 0, c.errors()
    assert 8 < time.monotonic() - started < 16
    row = worker.call_from("0901000112")
    assert row.hangup_side == "system" and "max_call_seconds" in (row.hangup_cause or ""), row


# -- TCP ------------------------------------------------------------------------------------------------

def test_tcp_connections_beyond_the_cap_are_closed(worker: WorkerProc) -> None:
    conns = [socket.create_connection(("127.0.0.1", worker.sip_port), timeout=2) for _ in range(6)]
    time.sleep(1.0)
    closed = 0
    for s in conns:
        s.settimeout(0.3)
        try:
            closed += s.recv(1) == b""
        except ConnectionResetError:
            closed += 1
        except TimeoutError:
            pass          # still open
        s.close()
    assert closed == 3, f"{closed} of 6 connections closed with a cap of 3"
    assert refused(worker, "tcp_cap")


def test_shipped_config_documents_the_safe_defaults() -> None:
    """callcenter.yaml spells out every SIP limit, with the values the code uses when a key is left out."""
    from callcenter.config import load_config
    from callcenter.telephony.settings import SipSettings

    text = (REPO / "callcenter.yaml").read_text()
    shipped, default = load_config(REPO / "callcenter.yaml").sip, SipSettings()
    for key in ("trusted", "max_calls_per_source", "rtp_timeout", "max_call_seconds", "max_tcp_connections"):
        assert f"  {key}:" in text, key
        assert getattr(shipped, key) == getattr(default, key), key
