"""RFC 2833 / 4733 DTMF as pcap files for sipp's play_pcap_audio.

sipp's shipped dtmf_2833_N.pcap files replay the same RTP timestamps every time, so pressing the
same key twice looks like one event to the receiver (a repeated event timestamp is a duplicate).
These files carry a continuous sequence number and a fresh event timestamp per key press, as a
real phone sends them.

Keys pressed one after another go best in ONE file (``write_dtmf_pcaps(d, ["11"])``, the step ``("dtmf",
"11")``): sipp plays each file from a thread of its own, and when sipp stalls (its "minor watchdog timer
tripped" on a loaded box) the second press's thread can send before the first's; pjmedia then ignores the
first press's packets as out of order (stream.c ``on_rx_rtp``: lower sequence numbers) and hears one key.
One file keeps the presses in order whatever the scheduling.
"""

from __future__ import annotations

import struct
from pathlib import Path

KEY_GAP_US = 250_000      # between two presses in one file: as sipp.py's pause after a ("dtmf", key) step
EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}


def _packet(seq: int, ts: int, ssrc: int, payload: bytes, marker: bool, pt: int = 101) -> bytes:
    header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    rtp = header + payload
    udp = struct.pack("!HHHH", 49176, 10000, 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([192, 168, 0, 3]), bytes([192, 168, 0, 1])) + udp
    return b"\x00" * 12 + b"\x08\x00" + ip


def write_rtp_pcap(path: Path, payloads: list[bytes], pt: int, ssrc: int = 0x1234ABCD, seq: int = 1000,
                   ts: int = 160_000, ts_step: int = 160, interval_us: int = 20_000) -> Path:
    """One RTP packet per payload, `interval_us` apart in capture time (sipp paces its sending by it)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for k, payload in enumerate(payloads):
        frame = _packet(seq + k, ts + k * ts_step, ssrc, payload, marker=(k == 0), pt=pt)
        usec = k * interval_us
        out.append(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
    return path


def write_dtmf_pcaps(directory: Path, digits: list[str], ssrc: int = 0x1234ABCD, seq: int = 1000,
                     pt: int = 101) -> list[Path]:
    """One pcap per entry of ``digits``, numbered in order: its keys (one or more), each pressed KEY_GAP_US
    after the one before; sequence and timestamps continue across files. ``seq``: the first sequence number (away from a tone pcap's 1000 when keys follow a tone: pjmedia drops DTMF
    packets it takes for duplicates or out of order); ``pt``: telephone-event's payload type."""
    directory.mkdir(parents=True, exist_ok=True)
    ts = 160_000
    files = []
    for i, keys in enumerate(digits):
        frames: list[tuple[int, bytes]] = []     # (capture time in us, frame)
        for j, key in enumerate(keys):
            event = EVENTS[key]
            # 6 packets with growing duration, then the end bit sent 3 times (RFC 4733 2.5.1.4).
            for n in range(1, 10):
                end = n >= 7
                duration = 160 * min(n, 7)
                payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
                frames.append((j * KEY_GAP_US + (n - 1) * 20_000,
                               _packet(seq, ts, ssrc, payload, marker=(n == 1), pt=pt)))
                seq += 1
            ts += 8000  # the next key press starts 1 s of media clock later
        path = directory / f"dtmf_{i:02d}.pcap"
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
        for usec, frame in frames:
            out.append(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)) + frame)
        path.write_bytes(b"".join(out))
        files.append(path)
    return files

