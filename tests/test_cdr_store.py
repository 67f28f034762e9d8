"""Store semantics: merging upserts, version order, dispositions, idempotent events and legs."""

from __future__ import annotations

import pytest

from callcenter.cdr.record import CallRecord, LegRecord, QueueEvent
from callcenter.cdr.sqlite_store import SqliteStore
from callcenter.cdr.writer import open_store


@pytest.fixture
def store(tmp_path) -> SqliteStore:
    s = open_store(f"sqlite:///{tmp_path}/cdr.db")
    assert isinstance(s, SqliteStore)
    return s


def snapshots() -> tuple[CallRecord, CallRecord]:
    at_answer = CallRecord("k1", "inbound", "0901234567", "19001234", start=100.0, answer=101.0,
                           queue="billing", enqueue=110.0, wait_seconds=12.0, agent_id="ag1", agent_answer=122.0,
                           outcome="answered", version=1)
    at_end = CallRecord("k1", "inbound", "0901234567", "19001234", start=100.0, answer=101.0, end=300.0,
                        queue="billing", enqueue=110.0, wait_seconds=12.0, agent_id="ag1", agent_answer=122.0,
                        talk_seconds=150.0, hold_seconds=20.0, wrapup_seconds=30.0, hangup_side="caller",
                        hangup_cause="200 BYE", outcome="answered", survey={"csat": 4}, version=2)
    return at_answer, at_end


@pytest.mark.parametrize("order", ["in_order", "reversed"])
def test_call_snapshots_merge_and_older_never_wins(store: SqliteStore, order: str) -> None:
    a, b = snapshots()
    for rec in ([a, b] if order == "in_order" else [b, a]):
        store.put_call(rec)
    got = store.get_call("k1")
    assert got is not None
    assert (got.end, got.talk_seconds, got.hold_seconds, got.hangup_cause, got.version) == (300.0, 150.0, 20.0,
                                                                                          "200 BYE", 2)
    assert got.survey == {"csat": 4}
    assert store.counts()["cdr_calls"] == 1


def test_older_snapshot_fills_holes_only(store: SqliteStore) -> None:
    newer = CallRecord("k2", "inbound", "0901", "1900", start=1.0, end=9.0, outcome="abandoned", version=5)
    older = CallRecord("k2", "inbound", "0901", "1900", start=1.0, queue="sales", outcome="queued", version=3)
    store.put_call(newer)
    store.put_call(older)
    got = store.get_call("k2")
    assert got is not None and got.outcome == "abandoned" and got.queue == "sales" and got.end == 9.0


def test_replay_is_a_no_op(store: SqliteStore) -> None:
    a, b = snapshots()
    ev = QueueEvent.make("ENTERQUEUE", call_id="k1", queue="billing", ts=110.0, position=1)
    leg = LegRecord("l1", "k1", "agent_offer", "sip:ag1@10.0.0.5", "ag1", 115.0, 122.0, 300.0, 200, "answered", 1)
    batch = [("call", a.to_dict()), ("call", b.to_dict()), ("event", ev.to_dict()), ("leg", leg.to_dict())]
    store.apply(batch)
    before = store.get_call("k1")
    store.apply(batch)
    store.apply(list(reversed(batch)))
    assert store.counts() == {"cdr_calls": 1, "cdr_legs": 1, "cdr_events": 1}
    assert store.get_call("k1") == before
    assert store.events("k1")[0].data == {"position": 1}
    assert store.legs("k1")[0].result == "answered"


def test_disposition_wins_and_may_arrive_first(store: SqliteStore) -> None:
    store.apply([("disp", {"call_id": "k1", "code": "paid", "resolved": True, "ts": 400.0, "agent_id": "ag1"})])
    a, b = snapshots()
    b.disposition = "worker_default"
    store.put_call(a)
    store.put_call(b)
    got = store.get_call("k1")
    assert got is not None and (got.disposition, got.resolved, got.end) == ("paid", True, 300.0)
    # an older disposition (re-delivered late) does not replace the newer one
    store.apply([("disp", {"call_id": "k1", "code": "callback_later", "resolved": False, "ts": 350.0})])
    assert store.get_call("k1").disposition == "paid"
    store.apply([("disp", {"call_id": "k1", "code": "escalated", "resolved": False, "ts": 500.0})])
    got = store.get_call("k1")
    assert (got.disposition, got.resolved) == ("escalated", False)
    # each disposition is in the queue log once, replays included
    store.apply([("disp", {"call_id": "k1", "code": "escalated", "resolved": False, "ts": 500.0})])
    assert [(e.event, e.data["code"]) for e in store.events("k1")] == [
        ("DISPOSITION", "callback_later"), ("DISPOSITION", "paid"), ("DISPOSITION", "escalated")]


def test_leg_merge(store: SqliteStore) -> None:
    store.put_leg(LegRecord("l2", "k1", "outbound", "sip:0901234567@gw", None, 10.0, version=1))
    store.put_leg(LegRecord("l2", "k1", "outbound", "sip:0901234567@gw", None, 10.0, None, 40.0, 486, "busy", 2))
    store.put_leg(LegRecord("l2", "k1", "outbound", "sip:0901234567@gw", None, 10.0, version=1))
    (leg,) = store.legs("k1")
    assert (leg.sip_code, leg.result, leg.end) == (486, "busy", 40.0)


def test_calls_query(store: SqliteStore) -> None:
    for i in range(5):
        store.put_call(CallRecord(f"q{i}", "inbound", "0901", "1900", start=100.0 + i,
                                  queue="a" if i % 2 else "b", agent_id=f"ag{i % 2}"))
    assert [c.call_id for c in store.calls(queue="a")] == ["q1", "q3"]
    assert [c.call_id for c in store.calls(since=102, until=104)] == ["q2", "q3"]
    assert [c.call_id for c in store.calls(agent_id="ag0", limit=2)] == ["q0", "q2"]


def test_open_store_rejects_unknown_url() -> None:
    with pytest.raises(ValueError, match="unsupported CDR store URL 'mysql'"):
        open_store("mysql://x")


def test_postgresql_gets_numbered_placeholders() -> None:
    """PgStore sends the shared SQL through a raw cursor: its ``?`` as PostgreSQL's ``$1``, ``$2``, ..."""
    from callcenter.cdr.pg_store import numbered

    assert numbered("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
    assert numbered("SELECT 1") == "SELECT 1"
