"""No CDR left open when a worker dies: every call a worker writes a record for is held open for it
(routing ``worker_open``, by ``calls.records.call_record``) until its final snapshot, and whoever reaps the
worker closes the record out with the call's own direction (real redis-server; no SIP: see
test_worker_lifecycle.py for the same with a real worker and sipp)."""

from __future__ import annotations

import asyncio
import json
import time

from routing_helpers import rules_text

from callcenter.calls.inbound import close_out
from callcenter.calls.records import call_record
from callcenter.cdr import keys as cdr_keys
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.record import CallRecord
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
        if f["t"] == "call":
            d = json.loads(f["d"])
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
