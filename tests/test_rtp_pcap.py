"""tests/rtp_pcap.py's DTMF files: keys pressed one after another in one file keep their order (one sipp thread
sends them; with a thread each, a stalled sipp sent the second first and pjmedia dropped the first as out of
order: bench/RESULTS.md "Durable writes", session 6)."""

from __future__ import annotations

import struct
from pathlib import Path

from rtp_pcap import EVENTS, KEY_GAP_US, write_dtmf_pcaps


def _frames(path: Path) -> list[tuple[int, int, int, int]]:
    """(capture time us, RTP sequence, RTP timestamp, event) of each packet, in file order."""
    data, out, at = path.read_bytes(), [], 24
    while at < len(data):
        sec, usec, incl, _ = struct.unpack("<IIII", data[at:at + 16])
        rtp = data[at + 16 + 14 + 20 + 8:at + 16 + incl]        # past ethernet, IP and UDP headers
        _, _, seq, ts, _ = struct.unpack("!BBHII", rtp[:12])
        out.append((sec * 1_000_000 + usec, seq, ts, rtp[12]))
        at += 16 + incl
    return out


def test_keys_in_one_file_go_in_order_a_press_apart(tmp_path: Path) -> None:
    two, one = write_dtmf_pcaps(tmp_path, ["11", "2"])
    frames = _frames(two)
    assert len(frames) == 18 and [f[3] for f in frames] == [EVENTS["1"]] * 18
    assert [f[1] for f in frames] == list(range(1000, 1018))          # sequence numbers in send order
    assert [f[0] for f in frames] == sorted(f[0] for f in frames)     # and capture times
    assert frames[9][0] - frames[0][0] == KEY_GAP_US                  # the second press a gap later
    assert len({f[2] for f in frames[:9]}) == len({f[2] for f in frames[9:]}) == 1
    assert frames[9][2] != frames[0][2]                               # with an event timestamp of its own
    nxt = _frames(one)
    assert nxt[0][1] == 1018 and nxt[0][3] == EVENTS["2"] and nxt[0][0] == 0   # the next file goes on
