"""Every port a test binds, from one allocator that is safe when several pytest sessions run at once.

Workers' SIP (UDP and TCP) and HTTP ports, agent phones, sipp, Kamailio, baresip, an Asterisk peer: `port()`
or `block(n)`. A worker's RTP range, sipp's and baresip's media ports: `block(n, media=True)`.

All sessions on this machine take their blocks in turn from one counter per pool, kept in a file under
/tmp and guarded by an fcntl lock: two sessions never get the same block until the pool has gone round
(the counter wraps), and each port of a block is also bound once (UDP and TCP) before it is handed out, so a
port that a process still holds, or that something outside the tests took, is skipped.

Pools, below the kernel's ephemeral range (32768-60999, which it hands to outgoing sockets) for signalling:
- signalling: 12000-19999, shared by every session; with WORKER_BASE_PORT=<base> set, the session takes
  its signalling ports from its own 2000 from that base instead (give sessions bases 2000 apart and outside
  the shared pools, e.g. 21000, 23000, ...: they stay out of each other's way; bench/sip_bench.py uses 7160);
- media: 33000-47999, shared, below the RTP range of bench/sip_bench.py's worker (48000-63999). pjsua
  retries the next port of its range when one is taken, so a worker's RTP range only has to be mostly
  free; sipp's media ports are bind-checked like the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

STATE_DIR = Path("/tmp/callcenter-test-ports")
SIGNALLING = (12000, 20000)
PRIVATE_SPAN = 2000
MEDIA = (33000, 48000)


def _pool(media: bool) -> tuple[int, int]:
    if media:
        return MEDIA
    base = os.environ.get("WORKER_BASE_PORT")
    if base:
        return int(base), int(base) + PRIVATE_SPAN
    return SIGNALLING


def bindable(port: int, ip: str = "127.0.0.1", tcp: bool = True) -> bool:
    """Whether ip:port can be bound right now over UDP (and TCP)."""
    kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM) if tcp else (socket.SOCK_DGRAM,)
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((ip, port))
            except OSError:
                return False
    return True


@contextlib.contextmanager
def _counter(low: int, high: int) -> Iterator[list[int]]:
    """The pool's next free port, read and written under an exclusive lock on its file."""
    STATE_DIR.mkdir(mode=0o777, exist_ok=True)
    fd = os.open(STATE_DIR / f"{low}-{high}", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 32, 0).decode().strip()
        state = [int(raw) if raw.isdigit() and low <= int(raw) < high else low]
        yield state
        data = str(state[0]).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)        # drops the lock


def _usable(first: int, n: int, media: bool, ip: str) -> bool:
    """Whether the block is free enough: every port of it, but for a worker's RTP range (a media block of 100
    or more), where 1 port in 50 may be taken: pjsua moves on to the next port of its range, and the
    kernel hands ports of this range to other programs' unbound UDP sockets (browsers' ICE, SIP peers)."""
    spare = n // 50 if media and n >= 100 else 0
    taken = 0
    for p in range(first, first + n):
        if not bindable(p, ip, tcp=not media):
            taken += 1
            if taken > spare:
                return False
    return True


def block(n: int = 1, *, media: bool = False, ip: str = "127.0.0.1") -> int:
    """The first of n consecutive ports (even for media) that no other test session has been given since
    the pool last wrapped and that are free on ip right now (UDP and TCP; UDP only for media; a worker's
    RTP range only mostly: ``_usable``)."""
    low, high = _pool(media)
    if n > (high - low) // 4:
        raise ValueError(f"{n} ports is more than a quarter of the pool {low}-{high}")
    with _counter(low, high) as state:
        start = state[0]
        tried = 0
        while tried < high - low:
            first = start + (start & 1 if media else 0)   # RTP ports come in even/odd pairs
            if first + n > high:
                first = low
            start = first + n
            tried += n
            if _usable(first, n, media, ip):
                state[0] = start if start < high else low
                return first
    raise AssertionError(f"no {n} free ports in {low}-{high} on {ip}")


def port(ip: str = "127.0.0.1") -> int:
    """One signalling port, free over UDP and TCP on ip."""
    return block(1, ip=ip)
