"""bench/chaos.py's reading of what sipp saw: the callers' -trace_shortmsg lines (each call's INVITE time, the
worker's 200, the far end's BYE) and the customers' -trace_msg log (each new dial once, its retransmissions not,
with the time it came). Pure parsing on sipp's own formats; the harness itself is run by hand (bench/RESULTS.md)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from repo import REPO
from sipp import Sipp

sys.path.insert(0, str(REPO / "bench"))
import chaos  # bench/ module

SHORT = """\
2026-11-30\t13:00:00.000000\t{t0}\tS\t1-99@127.0.0.2\tCSeq:1 INVITE\tINVITE sip:hotline@127.0.0.1:5060 SIP/2.0
2026-11-30\t13:00:00.010000\t{t1}\tR\t1-99@127.0.0.2\tCSeq:1 INVITE\tSIP/2.0 100 trying -- your call is important to us
2026-11-30\t13:00:00.020000\t{t2}\tR\t1-99@127.0.0.2\tCSeq:1 INVITE\tSIP/2.0 200 OK
2026-11-30\t13:00:00.030000\t{t2}\tS\t1-99@127.0.0.2\tCSeq:1 ACK\tACK sip:callcenter@127.0.0.1:5070 SIP/2.0
2026-11-30\t13:00:04.000000\t{t3}\tR\t1-99@127.0.0.2\tCSeq:2 BYE\tBYE sip:0980001@127.0.0.2:6000 SIP/2.0
2026-11-30\t13:00:00.200000\t{t0}\tS\t2-99@127.0.0.2\tCSeq:1 INVITE\tINVITE sip:hotline@127.0.0.1:5060 SIP/2.0
2026-11-30\t13:00:00.300000\t{t1}\tR\t2-99@127.0.0.2\tCSeq:1 INVITE\tSIP/2.0 503 Service Unavailable
"""

MESSAGE = """----------------------------------------------- {when}
UDP message received [1241] bytes :

INVITE sip:{number}@127.0.0.1:27939 SIP/2.0\r
Call-ID: {call_id}\r
Content-Length: 0\r
\r

"""


def _sipp(workdir: Path) -> Sipp:
    return Sipp("test", None, workdir, 0)   # parsing only: no process


def test_each_caller_is_read_from_its_short_messages(tmp_path: Path) -> None:
    (tmp_path / "scenario_99_shortmessages.log").write_text(SHORT.format(t0=100.0, t1=100.01, t2=100.02, t3=104.0))
    calls = chaos.caller_calls(_sipp(tmp_path))
    one, two = calls["1"], calls["2"]
    assert (one.number, one.start, one.taken, one.status, one.answered_at, one.far_bye, one.last) == (
        "09801", 100.0, True, 200, 100.02, True, 104.0)
    assert (two.number, two.taken, two.status, two.far_bye) == ("09802", False, 503, False)


def test_each_dial_counts_once_with_its_time(tmp_path: Path) -> None:
    at = dt.datetime(2026, 11, 30, 13, 6, 57, 684474)
    log = "".join(MESSAGE.format(when=w, number=n, call_id=c) for w, n, c in [
        (at, "0907000001", "a@1"), (at + dt.timedelta(seconds=0.5), "0907000001", "a@1"),   # a retransmission
        (at + dt.timedelta(seconds=1), "0907000002", "b@1"), (at + dt.timedelta(seconds=9), "0907000002", "c@1")])
    (tmp_path / "scenario_7_messages.log").write_text(log)
    dials = chaos.customer_invites(_sipp(tmp_path))
    assert dials == {"0907000001": [(at.timestamp(), "a@1")],
                     "0907000002": [((at + dt.timedelta(seconds=1)).timestamp(), "b@1"),
                                    ((at + dt.timedelta(seconds=9)).timestamp(), "c@1")]}
