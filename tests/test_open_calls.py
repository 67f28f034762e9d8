"""No CDR left open when a worker dies: every call a worker writes a record for is held open for it
(routing ``worker_open``, by ``calls.records.call_record``) until its final snapshot, and whoever reaps the
worker closes the record out with the call's own direction (real redis-server; no SIP: see
test_worker_lifecycle.py for the same with a real worker and sipp)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import ports
import pytest
import sipp
from routing_helpers import rules_text
from worker_proc import new_worker

from callcenter.calls.inbound import close_out, closing_record
from callcenter.calls.records import call_record
from callcenter.cdr import keys as cdr_keys
from callcenter.cdr.buffer import CdrBuffer, decode
from callcenter.cdr.record import CallRecord
from callcenter.cdr.writer import open_store
from callcenter.redisconn import connect, connect_sync
from callcenter.routing import rules as R
from callcenter.routing.keys import Keys
from callcenter.routing.router import QueuedCall, Router


async def _calls_of(w: str, url: str) -> CdrBuffer:
    """Worker ``w`` writes: a caller in the IVR, a caller it queued, an answered dial (all still up) and an
    unanswered dial (ended at once); only the ended one is not open."""
    cdr = CdrBuffer(connect(url))
    rt = Router(connect(url), w, dead_after=0.5)
    await rt.apply_rules(R.loads(rules_text()))
    await rt.heartbeat()
    t = time.time()
    await call_record(cdr, CallRecord(f"{w}-ivr", "inbound", "0901", "100", t, answer=t, worker_id=w))
    await call_record(cdr, CallRecord(f"{w}-q", "inbound", "0902", "100", t, answer=t, worker_id=w))
    await rt.enqueue(QueuedCall(f"{w}-q", "sales", {}, 0, "0902", {}))
    await call_record(cdr, CallRecord(f"{w}-dial", "outbound", "cc", "0903", t, answer=t, worker_id=w))
    await call_record(cdr, CallRecord(f"{w}-busy", "outbound", "cc", "0904", t, end=t, outcome="busy",
                                      worker_id=w))
    return cdr


def _closing(url: str) -> dict[str, dict[str, object]]:
    """The last call snapshot per call id on the CDR stream."""
    last = {}
    for _, f in connect_sync(url).xrange(cdr_keys.stream("cc:")):
        for kind, d in decode(f):
            if kind == "call":
                last[d["call_id"]] = d
    return last


def test_a_dead_workers_open_calls_are_closed_out_with_their_direction(redis_url: str) -> None:
    expected = {"dead-ivr": "inbound", "dead-q": "inbound", "dead-dial": "outbound"}

    async def main() -> dict[str, str]:
        await _calls_of("dead", redis_url)
        assert await connect(redis_url).hgetall(Keys("cc:").worker_open("dead")) == expected
        survivor = Router(connect(redis_url), "survivor", dead_after=0.5)
        await survivor.heartbeat()
        closed: dict[str, str] = {}
        while not closed:   # "dead" stops heartbeating: deemed dead after dead_after
            await asyncio.sleep(0.3)
            await survivor.heartbeat()
            closed = await survivor.reap()
        await close_out(CdrBuffer(connect(redis_url)), closed)
        return closed

    assert asyncio.run(main()) == expected
    assert not connect_sync(redis_url).exists(Keys("cc:").worker_open("dead"))
    last = _closing(redis_url)
    for call_id, direction in expected.items():
        rec = last[call_id]
        assert (rec["direction"], rec["outcome"], rec["hangup_cause"]) == (direction, "failed", "worker_crash")
        assert rec["end"] is not None and rec["caller"] is None   # partial: the store keeps the earlier fields
    assert last["dead-busy"]["outcome"] == "busy"


def test_a_restart_under_the_same_id_closes_out_what_its_previous_run_held_open(redis_url: str) -> None:
    async def main() -> dict[str, str]:
        await _calls_of("again", redis_url)
        return await Router(connect(redis_url), "again", dead_after=0.5).claim()

    assert asyncio.run(main()) == {"again-ivr": "inbound", "again-q": "inbound", "again-dial": "outbound"}
    assert not connect_sync(redis_url).exists(Keys("cc:").worker_open("again"))


@pytest.mark.sip
@pytest.mark.timeout(180)
def test_sigkilled_worker_with_a_caller_in_the_ivr_and_a_dial_up_leaves_no_cdr_open(tmp_path: Path,
                                                                                    redis_url: str) -> None:
    """w1 is SIGKILLed with a caller still in the IVR (never queued) and an answered click-to-call dial: w2
    reaps it and both CDR rows are closed (worker_crash, failed), each with its own direction."""
    customer_port = ports.port()
    w1, w2 = new_worker(tmp_path, redis_url, "w1"), new_worker(tmp_path, redis_url, "w2")
    w1.write_config(trunk=f"127.0.0.1:{customer_port}", extra=(
        "click_to_call: {caller_ids: ['02873001234'], calling_hours: ['00:00-24:00'], agent_ring_timeout: 5s,"
        " ring_timeout: 10s, max_calls_per_number: 5, cap_window: 1h, cap_group: vn_advertising}\n"))
    w2.write_config()
    procs = []
    try:
        for w in (w1, w2):
            w.start()
        client = connect_sync(redis_url)
        open_key = Keys("cc:").worker_open("w1")

        def open_calls(direction: str) -> list[str]:
            deadline = time.monotonic() + 20
            while not (ids := [c for c, d in client.hgetall(open_key).items() if d == direction]):
                assert time.monotonic() < deadline, w1.tail()
                time.sleep(0.2)
            return ids

        procs.append(sipp.caller(w1.target, [("pause", 60000), ("hangup",)], number="0902000011", timeout_s=90))
        [in_ivr] = open_calls("inbound")
        w1.login("1001")
        procs.append(sipp.agent(w1.agents_port, "answer", ring_ms=200))
        procs.append(sipp.agent(customer_port, "answer", ring_ms=200))
        st, body = w1.http("POST", "/agents/1001/dial", {"number": "0901110021", "caller_id": "02873001234"})
        assert st == 202, body
        [dial] = open_calls("outbound")
        assert client.zcard(Keys("cc:").waiting("support")) == 0 and not client.smembers(
            Keys("cc:").worker_calls("w1"))   # neither is known to routing: only the open-call record has them
        w1.stop(signal.SIGKILL)

        rows = {r.call_id: r for r in w2.calls(2, timeout=30, where=lambda r: r.hangup_cause == "worker_crash")}
        assert (rows[in_ivr].direction, rows[in_ivr].outcome) == ("inbound", "failed"), rows
        assert (rows[dial].direction, rows[dial].outcome) == ("outbound", "failed"), rows
        assert rows[in_ivr].end is not None and rows[dial].end is not None
        assert not client.exists(open_key)
    finally:
        for p in procs:
            p.stop()
        w1.stop(signal.SIGKILL)
        w2.stop()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_closing_snapshot_only_fills_what_the_calls_own_snapshots_never_said(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    store = open_store(f"sqlite:///{tmp_path}/cdr.db" if kind == "sqlite" else request.getfixturevalue("pg_dsn"))
    try:
        store.migrate()
        t = 1_700_000_000.0
        # open when the worker died: closed out, the rest kept
        store.put_call(CallRecord("a", "inbound", "0901", "100", t, answer=t + 1, version=10))
        store.put_call(closing_record("a", "inbound", t + 9))
        # its final snapshot went out just before the crash: it keeps its real ending
        store.put_call(CallRecord("b", "outbound", "cc", "0903", t, answer=t + 1, end=t + 3, outcome="answered",
                                  hangup_side="caller", hangup_cause="normal", version=20))
        store.put_call(closing_record("b", "outbound", t + 9))
        # the close-out reached the store before the call's own snapshot (another writer claimed it later)
        store.put_call(closing_record("c", "outbound", t + 9))
        store.put_call(CallRecord("c", "outbound", "cc", "0904", t, answer=t + 1, version=10))
        a, b, c = (store.get_call(i) for i in "abc")
        assert a is not None and b is not None and c is not None
        assert (a.direction, a.caller, a.answer, a.end, a.outcome, a.hangup_cause) == (
            "inbound", "0901", t + 1, t + 9, "failed", "worker_crash")
        assert (b.end, b.outcome, b.hangup_side, b.hangup_cause) == (t + 3, "answered", "caller", "normal")
        assert (c.direction, c.called, c.answer, c.end, c.outcome, c.hangup_cause) == (
            "outbound", "0904", t + 1, t + 9, "failed", "worker_crash")
    finally:
        store.close()
