"""Where an agent's time between two calls goes, from the wire and the queue log (bench/RESULTS.md, "Session 7").

With N agents who each talk T seconds, a queue carries at most N / (T + the agent's cycle overhead) calls a second:
the overhead is what the worker adds between the agent's BYE and the next INVITE to the same phone, and how long
it takes to ACK the phone's 200 OK. This reads a pcap of the agents' sipp port (``tcpdump -i lo -s 0 -w agents.pcap
udp port <agents port>`` for a few seconds of a `sip_bench.py --keep` calls/s level) and that level's CDR store
(its ``cdr_events``: OFFER, CONNECT, COMPLETEAGENT lines), matched by the ``X-Callcenter-Call-Id`` header of the
agent's INVITE, and prints percentiles of each step:

    BYE -> COMPLETEAGENT      the phone's BYE until the router freed the agent (call_finished returned)
    COMPLETEAGENT -> OFFER    until the worker took the agent's next offer
    OFFER -> INVITE           until that phone's INVITE was on the wire
    200 OK -> ACK             the worker's reaction to the phone's answer (pjsip's, on the loop thread)
    BYE -> next INVITE        the whole gap (all of the above, and idle time when no caller waits)

Run: .venv/bin/python bench/agent_cycle.py agents.pcap <agents port> /tmp/sip-bench-XXXX/<flow>/cdr.db
"""

from __future__ import annotations

import argparse
import collections
import re
import sqlite3
import struct
from collections.abc import Iterator

CALL_ID = re.compile(r"\r\nCall-ID:\s*(\S+)", re.I)
QUEUE_CALL = re.compile(r"\r\nX-Callcenter-Call-Id:\s*(\S+)", re.I)
CSEQ = re.compile(r"\r\nCSeq:\s*\d+\s+(\w+)", re.I)


def packets(path: str) -> Iterator[tuple[float, int, int, str]]:
    """(time, source port, destination port, UDP payload) of each IPv4 UDP packet of a pcap (loopback or
    Linux cooked capture, as tcpdump writes them on lo)."""
    with open(path, "rb") as f:
        header = f.read(24)
        link = struct.unpack("<I", header[20:24])[0]
        skip = {0: 4, 1: 14, 113: 16}.get(link, 0)
        while len(rec := f.read(16)) == 16:
            sec, usec, size, _ = struct.unpack("<IIII", rec)
            ip = f.read(size)[skip:]
            udp = ip[(ip[0] & 15) * 4:]
            sport, dport = struct.unpack(">HH", udp[:4])
            yield sec + usec / 1e6, sport, dport, udp[8:].decode("latin-1")


def wire(path: str, port: int) -> dict[str, dict[str, float]]:
    """Per queued call (the caller's call id): when its agent INVITE arrived at the phones, the phone's 200 OK
    and BYE left, and the worker's ACK arrived."""
    leg_of: dict[str, str] = {}
    seen: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for ts, _, dport, text in packets(path):
        first = text.split("\r\n", 1)[0]
        m = CALL_ID.search(text)
        if m is None:
            continue
        to_phone = dport == port
        if to_phone and first.startswith("INVITE"):
            q = QUEUE_CALL.search(text)
            if q is not None:
                leg_of[m.group(1)] = q.group(1)
                seen[q.group(1)].setdefault("invite", ts)
            continue
        call = leg_of.get(m.group(1))
        if call is None:
            continue
        cseq = CSEQ.search(text)
        if to_phone and first.startswith("ACK"):
            seen[call].setdefault("ack", ts)
        elif not to_phone and first.startswith("BYE"):
            seen[call].setdefault("bye", ts)
        elif not to_phone and first.startswith("SIP/2.0 200") and cseq is not None and cseq.group(1) == "INVITE":
            seen[call].setdefault("ok", ts)
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pcap")
    ap.add_argument("port", type=int, help="the agents' sipp UAS port")
    ap.add_argument("cdr_db", help="the level's SQLite CDR store")
    args = ap.parse_args()
    seen = wire(args.pcap, args.port)
    lines: dict[str, dict[str, tuple[float, str]]] = collections.defaultdict(dict)
    with sqlite3.connect(args.cdr_db) as db:
        for ts, call, agent, event in db.execute("SELECT ts, call_id, agent_id, event FROM cdr_events"):
            lines[call][event] = (ts, agent)
    steps: dict[str, list[float]] = collections.defaultdict(list)
    by_agent: dict[str, list[str]] = collections.defaultdict(list)
    for call, ev in lines.items():
        if "OFFER" in ev:
            by_agent[ev["OFFER"][1]].append(call)
    for calls in by_agent.values():
        calls.sort(key=lambda c: lines[c]["OFFER"][0])
        for done, nxt in zip(calls, calls[1:], strict=False):
            bye, invite = seen.get(done, {}).get("bye"), seen.get(nxt, {}).get("invite")
            freed = lines[done].get("COMPLETEAGENT")
            if bye is None or invite is None or freed is None or not 0 < invite - bye < 10:
                continue
            offer = lines[nxt]["OFFER"][0]
            steps["BYE -> COMPLETEAGENT"].append(freed[0] - bye)
            steps["COMPLETEAGENT -> OFFER"].append(offer - freed[0])
            steps["OFFER -> INVITE"].append(invite - offer)
            steps["BYE -> next INVITE"].append(invite - bye)
        for call in calls:
            w = seen.get(call, {})
            if "ok" in w and "ack" in w:
                steps["200 OK -> ACK"].append(w["ack"] - w["ok"])
    for name, values in steps.items():
        values.sort()
        n = len(values)
        p = [values[min(n - 1, int(n * q))] * 1000 for q in (0.1, 0.5, 0.9, 0.99)]
        print(f"{name:24} n={n:5d}  p10 {p[0]:6.0f}  p50 {p[1]:6.0f}  p90 {p[2]:6.0f}  p99 {p[3]:6.0f} ms")


if __name__ == "__main__":
    main()
