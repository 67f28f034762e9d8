"""rtpengine's cost per call on the encrypted edge: SRTP (SDES) on the agent's side, plain RTP/AVP G.711 on the
worker's side, as deploy/kamailio/kamailio.cfg asks for a TLS desk phone (the same rtpengine flags).

No SIP here: the bench drives rtpengine's ng control protocol itself. Each call is two rtpengine sessions
back to back, so that the agent's side needs no SRTP stack in Python:

    source (the worker's G.711)  <->  [session A: RTP/AVP | RTP/SAVP]  <->  [session B: RTP/SAVP | RTP/AVP]  <->  sink

A encrypts what the worker sends and decrypts what the agent sends, as for a real call; B does the same once
more for the other end, so one bench call costs rtpengine about two real calls (every packet is forwarded, and
encrypted or decrypted, twice). Each end sends 20 ms G.711 packets (50/s) for the whole run; the bench reads
rtpengine's CPU time from /proc over a window after a warm-up and counts the packets that came through.

    .venv/bin/python bench/edge_bench.py --calls 10,50,100 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import random
import re
import select
import socket
import struct
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # tests/ helpers

from edge_proc import Rtpengine

TICK = os.sysconf("SC_CLK_TCK")
# kamailio.cfg's flags for a TLS desk phone's leg, as the rtpengine module sends them
AGENT = {"replace": ["origin", "session-connection"], "ICE": "remove", "DTLS": "off",
         "SDES": ["no-NULL_HMAC_SHA1_80", "no-NULL_HMAC_SHA1_32", "no-AEAD_AES_256_GCM", "no-AEAD_AES_128_GCM"]}
# ... and a browser's (kamailio.cfg's ws/wss profile): DTLS-SRTP with ICE and RTCP mux; towards the worker the
# answer's flags (ICE removed, RTCP demuxed, plain RTP/AVP)
WEBRTC = {"replace": ["origin", "session-connection"], "ICE": "force", "DTLS": "passive",
          "rtcp-mux": ["offer"], "SDES": ["off"], "flags": ["generate-mid"]}
PLAIN = {"replace": ["origin", "session-connection"], "ICE": "remove", "rtcp-mux": ["demux"]}
BROWSER = {"replace": ["origin", "session-connection"], "ICE": "force", "rtcp-mux": ["accept"]}   # B's answer
# per profile: A's transport towards the agent, A's offer flags, the flags of B's offer and of the answers
# to each (B answers as the agent's phone or browser would)
PROFILES = {"srtp": ("RTP/SAVP", AGENT, AGENT, AGENT, AGENT),
            "webrtc": ("UDP/TLS/RTP/SAVPF", WEBRTC, PLAIN, BROWSER, PLAIN)}
SUITES: set[str] = set()


# -- bencode, rtpengine's ng protocol ---------------------------------------------------------------------

def bencode(v: object) -> bytes:
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(type(v))


def bdecode(data: bytes, i: int = 0) -> tuple[object, int]:
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c in (b"l", b"d"):
        i += 1
        items: list[object] = []
        while data[i:i + 1] != b"e":
            item, i = bdecode(data, i)
            items.append(item)
        if c == b"l":
            return items, i + 1
        return {items[k]: items[k + 1] for k in range(0, len(items), 2)}, i + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    return data[colon + 1:colon + 1 + n].decode(errors="replace"), colon + 1 + n


class Ng:
    def __init__(self, port: int) -> None:
        self.addr = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)

    def __call__(self, **command: object) -> dict[object, object]:
        cookie = uuid.uuid4().hex[:12].encode()
        self.sock.sendto(cookie + b" " + bencode(command), self.addr)
        while True:
            data = self.sock.recv(65535)
            if data.startswith(cookie + b" "):
                reply, _ = bdecode(data, len(cookie) + 1)
                assert isinstance(reply, dict) and reply.get("result") == "ok", reply
                return reply


def sdp(port: int, proto: str = "RTP/AVP") -> str:
    return (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


def media_port(text: str) -> int:
    m = re.search(r"^m=audio (\d+) (\S+)", text, re.M)
    assert m, text
    return int(m.group(1))


# -- calls ------------------------------------------------------------------------------------------------

@dataclass
class End:
    sock: socket.socket
    to: tuple[str, int]
    ssrc: int
    seq: int = 0
    sent: int = 0
    got: int = 0

    def send(self, payload: bytes) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        header = struct.pack("!BBHII", 0x80, 0, self.seq, (self.seq * 160) & 0xFFFFFFFF, self.ssrc)
        self.sock.sendto(header + payload, self.to)
        self.sent += 1


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def setup_call(ng: Ng, n: int, profile: str) -> tuple[End, End, str]:
    """Session A (worker side plain, agent side SRTP or WebRTC) and session B back to back (the agent's side
    of B answers A's offer as a phone or a browser would); the two plain ends."""
    proto, offer_flags, b_flags, b_answer_flags, answer_flags = PROFILES[profile]
    src, sink = udp(), udp()
    ca, cb = f"bench-a-{n}-{uuid.uuid4().hex[:6]}", f"bench-b-{n}-{uuid.uuid4().hex[:6]}"
    a_offer = ng(command="offer", **{"call-id": ca, "from-tag": "w", "sdp": sdp(src.getsockname()[1]),
                                     "transport-protocol": proto, **offer_flags})
    enc = str(a_offer["sdp"])
    if profile == "srtp":
        assert "RTP/SAVP" in enc and "a=crypto:" in enc and "NULL_" not in enc and "fingerprint" not in enc, enc
    else:
        assert proto in enc and "a=fingerprint:" in enc and "a=ice-ufrag:" in enc and "a=crypto" not in enc, enc
    b_offer = ng(command="offer", **{"call-id": cb, "from-tag": "p", "sdp": enc,
                                     "transport-protocol": "RTP/AVP", **b_flags})
    b_answer = ng(command="answer", **{"call-id": cb, "from-tag": "p", "to-tag": "s",
                                       "sdp": sdp(sink.getsockname()[1]), **b_answer_flags})
    a_answer = ng(command="answer", **{"call-id": ca, "from-tag": "w", "to-tag": "a", "sdp": str(b_answer["sdp"]),
                                       **answer_flags})
    SUITES.update(re.findall(r"a=crypto:\d+ (\S+)", str(b_answer["sdp"])))
    SUITES.update("DTLS-SRTP, ICE" for _ in re.findall(r"a=fingerprint:", str(b_answer["sdp"]))[:1])
    return (End(src, ("127.0.0.1", media_port(str(a_answer["sdp"]))), random.getrandbits(32)),
            End(sink, ("127.0.0.1", media_port(str(b_offer["sdp"]))), random.getrandbits(32)), ca + " " + cb)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run(ng: Ng, pid: int, calls: int, seconds: float, profile: str, warmup: float = 3.0) -> dict[str, float]:
    ends: list[End] = []
    ids: list[str] = []
    for n in range(calls):
        src, sink, call_ids = setup_call(ng, n, profile)
        ends += [src, sink]
        ids.append(call_ids)
    by_fd = {e.sock.fileno(): e for e in ends}
    payload = bytes(random.getrandbits(8) for _ in range(160))
    start = time.monotonic()
    measured_from = start + warmup
    cpu0 = me0 = 0.0
    got0 = sent0 = 0
    tick, due = 0, start
    while (now := time.monotonic()) < measured_from + seconds:
        if cpu0 == 0.0 and now >= measured_from:
            cpu0, me0 = cpu_seconds(pid), time.process_time()
            got0, sent0 = sum(e.got for e in ends), sum(e.sent for e in ends)
        if now >= due:
            for e in ends:
                e.send(payload)
            tick += 1
            due = start + tick * 0.020
        ready, _, _ = select.select(list(by_fd), [], [], max(0.0, min(0.005, due - time.monotonic())))
        for fd in ready:
            e = by_fd[fd]
            while True:
                try:
                    e.sock.recv(2048)
                except BlockingIOError:
                    break
                e.got += 1
    cpu = cpu_seconds(pid) - cpu0
    me = time.process_time() - me0
    got, sent = sum(e.got for e in ends) - got0, sum(e.sent for e in ends) - sent0
    for call_ids in ids:
        for cid in call_ids.split():
            ng(command="delete", **{"call-id": cid, "from-tag": "w" if "-a-" in cid else "p"})
    for e in ends:
        e.sock.close()
    return {"calls": calls, "cpu_pct": 100 * cpu / seconds, "per_real_call_pct": 100 * cpu / seconds / (2 * calls),
            "delivered_pct": 100 * got / max(1, sent), "bench_cpu_pct": 100 * me / seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", default="10,50", help="concurrent calls per step, comma-separated")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="srtp",
                    help="the agent's side: a TLS desk phone (SRTP, SDES keys) or a browser (DTLS-SRTP, ICE)")
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds per step (after 3 s warm-up)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgebench-") as tmp:
        # a deleted session's ports are free again at once (--delete-delay=0): each step needs only its own
        engine = Rtpengine(Path(tmp), media_ports=8 * max(int(c) for c in args.calls.split(",")) + 8,
                           options=("--delete-delay=0",)).start()
        assert engine.proc is not None
        try:
            ng = Ng(engine.ng)
            print(f"rtpengine {engine.proc.pid}: {args.profile} <-> RTP/AVP PCMU, 50 pps each way, {args.seconds:.0f} s "
                  f"measured per step, {os.cpu_count()} CPUs")
            print(" calls  rtpengine CPU  per real call  delivered  bench CPU")
            for calls in (int(c) for c in args.calls.split(",")):
                r = run(ng, engine.proc.pid, calls, args.seconds, args.profile)
                print(f"{r['calls']:6.0f}  {r['cpu_pct']:12.1f}%  {r['per_real_call_pct']:12.3f}%  "
                      f"{r['delivered_pct']:8.2f}%  {r['bench_cpu_pct']:8.1f}%", flush=True)
            print(f"the agent side answered with: {', '.join(sorted(SUITES))}")
        finally:
            engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
