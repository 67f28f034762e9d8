"""What sipp's pcap playback costs whoever sends RTP to it: the kernel's walk over raw sockets.

sipp 3.6 plays each caller's `g711a.pcap` (`play_pcap_audio`) through its own raw IPPROTO_UDP socket, so
1000 callers hold ~1000 raw sockets. Linux hands every UDP packet delivered on the host to
`raw_local_deliver()`, which walks all raw sockets of that protocol (one hash bucket) to find a match.
The walk is charged to the sender: on loopback the receive path runs in the sending thread. At 1000
concurrent IVR calls `perf` put `raw_local_deliver` at a third of the worker's samples (bench/RESULTS.md,
"Session 8"), and Asterisk pays the same per packet it sends.

This bench measures that cost without any telephony: one process opens K idle raw UDP sockets (as sipp's
players do), another sends UDP datagrams of an RTP packet's size (172 bytes: 12 header + 160 G.711) to a
bound socket on 127.0.0.1 as fast as it can, and the sender's CPU time (user + system) per packet is
printed for each K, with the ratio against K = 0 in the same run. Needs root (raw sockets).

Run: .venv/bin/python bench/raw_socket_cost.py [--raw 0,250,500,1000,1500] [--packets 200000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import socket
import statistics
import sys
import time

PAYLOAD = bytes(172)


def hold_raw_sockets(k: int, ready: mp.synchronize.Event, done: mp.synchronize.Event) -> None:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP) for _ in range(k)]
    ready.set()
    done.wait()
    for s in socks:
        s.close()


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def send_cost(packets: int) -> float:
    """Microseconds of this process's CPU per datagram sent to a local socket nobody reads."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    dest = sink.getsockname()
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send = out.sendto
    for _ in range(1000):   # warm up
        send(PAYLOAD, dest)
    t0 = cpu_seconds()
    for _ in range(packets):
        send(PAYLOAD, dest)
    used = cpu_seconds() - t0
    out.close()
    sink.close()
    return used / packets * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", default="0,250,500,1000,1500", help="idle raw UDP sockets held by another process")
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("raw sockets need root", file=sys.stderr)
        return 2
    levels = [int(x) for x in args.raw.split(",")]
    print(f"{'raw sockets':>12} {'us/packet':>10} {'min':>7} {'max':>7} {'x K=0':>7} {'cores at 50,000 pkt/s':>22}")
    base: float | None = None
    for k in levels:
        ready, done = mp.Event(), mp.Event()
        holder = mp.Process(target=hold_raw_sockets, args=(k, ready, done), daemon=True)
        holder.start()
        ready.wait(30)
        time.sleep(0.2)
        runs = [send_cost(args.packets) for _ in range(args.repeat)]
        done.set()
        holder.join(10)
        med = statistics.median(runs)
        if base is None:
            base = med
        print(f"{k:>12} {med:>10.2f} {min(runs):>7.2f} {max(runs):>7.2f} {med / base:>7.2f} {med * 50_000 / 1e6:>22.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
