"""CdrBuffer: records sent by concurrent calls reach the stream once each, every call's in the order it
sent them, and a caller returns only once its record is in Redis; records' fast to_dict is asdict.
Real redis-server."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, replace

import pytest
import redis.asyncio as aioredis

from callcenter.cdr import keys
from callcenter.cdr.buffer import CdrBuffer, OpenMark, decode
from callcenter.cdr.record import CallRecord, Disposition, LegRecord, QueueEvent
from callcenter.redisconn import connect


async def _entries(client: aioredis.Redis) -> list[dict]:
    return [json.loads(f["d"]) for _, f in await client.xrange(keys.stream())]


def test_concurrent_records_in_order_and_in_redis_when_awaited(redis_url: str) -> None:
    async def main() -> None:
        client = connect(redis_url)
        buf = CdrBuffer(client)
        commands0 = (await client.info("commandstats")).get("cmdstat_xadd", {}).get("calls", 0)

        async def call(i: int) -> None:
            await buf.event(QueueEvent.make("ENTERQUEUE", call_id=f"c{i}", queue="q", n=0))
            # awaited: the record is in the stream now, whatever else is in flight
            assert any(e["call_id"] == f"c{i}" for e in await _entries(client))
            await buf.event(QueueEvent.make("CONNECT", call_id=f"c{i}", queue="q", n=1))

        await asyncio.gather(*(call(i) for i in range(50)))
        got = await _entries(client)
        assert len(got) == 100
        for i in range(50):     # each call's records in the order it sent them
            assert [e["data"]["n"] for e in got if e["call_id"] == f"c{i}"] == [0, 1]
        calls = (await client.info("commandstats"))["cmdstat_xadd"]["calls"] - commands0
        assert calls == 100
        await client.aclose()

    asyncio.run(main())


def test_records_are_asdict() -> None:
    """The fast to_dict gives what dataclasses.asdict gives (values copied, nested values too)."""
    recs = [CallRecord("c", "inbound", "0901", "1900", 1.0, survey={"q1": 5}),
            CallRecord("c", "inbound", "0901", "1900", 1.0),
            LegRecord("l", "c", "inbound", sip_code=200),
            QueueEvent.make("OFFER", call_id="x", queue="q", waited=1.5, nested={"a": [1, 2]}),
            QueueEvent.make("ABANDON", call_id="x", waited=1.5, ringing_agent=None),
            Disposition("c", "paid", True, 1.0)]
    for rec in recs:
        fast, slow = rec.to_dict(), asdict(rec)
        assert fast == slow and list(fast) == list(slow)
        for name, value in fast.items():
            assert type(value) is type(slow[name])
            if isinstance(value, dict):
                assert value is not getattr(rec, name)      # a copy: changing it leaves the record alone


def test_records_of_one_moment_share_an_entry_and_the_open_mark_its_round_trip(redis_url: str) -> None:
    """A call's final snapshot and its leg are one entry; the open mark is set with the first snapshot and
    removed with the final one, without an append or a round trip of its own (MONITOR-free: commandstats)."""
    async def main() -> None:
        client = connect(redis_url)
        buf = CdrBuffer(client)
        opened = OpenMark("cc:rt:w:w1:open", "c1", "inbound")
        stats0 = await client.info("commandstats")
        rec = CallRecord("c1", "inbound", "0901", "1900", 1.0, answer=1.5, worker_id="w1")
        await buf.write(rec, mark=opened)
        assert await client.hgetall(opened.key) == {"c1": "inbound"}
        rec.end = 9.0
        await buf.write(rec, LegRecord("c1", "c1", "inbound", "0901", start=1.0, end=9.0), mark=replace(opened, direction=None))
        assert await client.hgetall(opened.key) == {}
        rows = [decode(f) for _, f in await client.xrange(keys.stream())]
        assert [[kind for kind, _ in recs] for recs in rows] == [["call"], ["call", "leg"]]
        assert rows[1][0][1]["end"] == 9.0 and rows[1][1][1]["leg_id"] == "c1"
        assert all(p["version"] for recs in rows for _, p in recs)      # snapshots stamped
        stats1 = await client.info("commandstats")
        sent = {k: stats1[k]["calls"] - stats0.get(k, {}).get("calls", 0)
                for k in ("cmdstat_xadd", "cmdstat_hset", "cmdstat_hdel")}
        assert sent == {"cmdstat_xadd": 2, "cmdstat_hset": 1, "cmdstat_hdel": 1}
        await client.aclose()

    asyncio.run(main())


def test_an_entry_that_is_not_ours_is_refused() -> None:
    for fields in ({"t": "many", "d": "[]"}, {"t": "many", "d": '[["call"]]'}, {"t": "call", "d": "[1]"},
                   {"t": "many", "d": '{"a": 1}'}, {"t": "call"}):
        with pytest.raises((ValueError, KeyError)):
            decode(fields)
