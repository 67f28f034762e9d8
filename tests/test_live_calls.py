"""The records of the calls up on a worker, and of the last ones that ended there (calls/records.LiveCalls)."""

from __future__ import annotations

from callcenter.calls import records
from callcenter.calls.records import LiveCalls
from callcenter.cdr.record import CallRecord


def _rec(call_id: str) -> CallRecord:
    return CallRecord(call_id, "inbound", "0901234567", "1900", 0.0)


def test_an_ended_call_is_found_until_newer_ones_push_it_out() -> None:
    live = LiveCalls()
    live.records["a"] = _rec("a")
    live.end("a")
    assert "a" not in live.records             # not up any more: call-scoped requests are not local for it
    found = live.find("a")
    assert found is not None and found.call_id == "a"   # its agent's wrap-up still finds whose call it was
    for i in range(records.ENDED_KEPT):
        live.records[str(i)] = _rec(str(i))
        live.end(str(i))
    assert live.find("a") is None              # the oldest goes first: memory stays bounded
    assert live.find(str(records.ENDED_KEPT - 1)) is not None
    assert len(live.ended) == records.ENDED_KEPT


def test_ending_a_call_that_is_not_up_changes_nothing() -> None:
    live = LiveCalls()
    live.end("nope")
    assert live.find("nope") is None and not live.ended
