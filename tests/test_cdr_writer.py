"""The durable write path: Redis stream -> writer -> store, at least once and without duplicates,
through a PostgreSQL outage, a writer crash (XAUTOCLAIM), a Redis outage and a poisoned entry."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from pg import PgServer
from repo import REPO

from callcenter.cdr import keys
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.record import CallRecord, LegRecord, QueueEvent
from callcenter.cdr.sqlite_store import SqliteStore
from callcenter.cdr.store import SqlStore, StoreUnavailable
from callcenter.cdr.writer import CdrWriter, open_store
from callcenter.redisconn import connect, connect_sync


def snapshots(i: int) -> tuple[CallRecord, CallRecord]:
    """Two snapshots of call i: at answer (version 1) and at the end (version 2)."""
    start = 1_700_000_000.0 + i
    first = CallRecord(f"call-{i}", "inbound", f"09{i:08d}", "19001234", start=start, answer=start + 1,
                       queue="billing", enqueue=start + 5, wait_seconds=7.0, agent_id="ag1",
                       agent_answer=start + 12, outcome="answered", version=1)
    last = CallRecord(**{**first.to_dict(), "end": start + 100, "talk_seconds": 80.0, "wrapup_seconds": 10.0,
                         "hangup_side": "caller", "hangup_cause": "200 BYE", "version": 2})
    return first, last


async def produce(buf: CdrBuffer, ids: range, reverse_snapshots: bool = False) -> None:
    for i in ids:
        first, last = snapshots(i)
        for rec in ([last, first] if reverse_snapshots else [first, last]):
            await buf.call(rec)
        await buf.event(QueueEvent(f"ev-{i}", first.start + 5, first.call_id, "billing", None, "ENTERQUEUE"))
        await buf.leg(LegRecord(f"leg-{i}", first.call_id, "inbound", f"sip:09{i:08d}@gw", None, first.start,
                                first.answer, first.start + 100, 200, "answered", version=1))


def assert_exactly_once(store: SqlStore, n: int, dispositions: int = 0) -> None:
    assert store.counts() == {"cdr_calls": n, "cdr_legs": n, "cdr_events": n + dispositions}
    calls = store.calls(limit=None)
    assert sorted(c.call_id for c in calls) == sorted(f"call-{i}" for i in range(n))
    # every call carries its final snapshot, whatever order the copies arrived in
    assert all(c.end is not None and c.talk_seconds == 80.0 and c.version == 2 for c in calls)


async def drain_all(writer: CdrWriter, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = await writer.drain_once()
        pending = await writer.redis.xpending(writer.stream, keys.GROUP)
        if n == 0 and await writer.redis.xlen(writer.stream) == 0 and pending["pending"] == 0:
            return
    raise AssertionError("stream not drained in time")


def test_buffer_to_sqlite_exactly_once_with_replays(redis_url: str, tmp_path) -> None:
    async def main() -> None:
        client = connect(redis_url)
        store = open_store(f"sqlite:///{tmp_path}/cdr.db")
        buf = CdrBuffer(client)
        await produce(buf, range(0, 100))
        await produce(buf, range(100, 200), reverse_snapshots=True)
        # a worker re-sending (say after a reconnect) must not duplicate anything
        await produce(buf, range(0, 50))
        await buf.disposition("call-7", "paid", True, agent_id="ag1")
        writer = CdrWriter(client, store, batch=64)
        await drain_all(writer)
        assert_exactly_once(store, 200, dispositions=1)
        assert store.get_call("call-7").disposition == "paid"
        assert [e.event for e in store.events("call-7")] == ["ENTERQUEUE", "DISPOSITION"]
        assert await client.xlen(keys.stream()) == 0          # acked entries are deleted
        await client.aclose()

    asyncio.run(main())


def test_crashed_writer_entries_are_claimed(redis_url: str, tmp_path) -> None:
    async def main() -> None:
        client = connect(redis_url)
        store = open_store(f"sqlite:///{tmp_path}/cdr.db")
        await produce(CdrBuffer(client), range(30))
        crashed = CdrWriter(client, store, consumer="writer-a", batch=40)
        await crashed.ensure_group()
        # writer-a has read a batch (it sits in its pending list) and dies before committing
        got = await crashed._read(None)
        assert len(got) == 40
        survivor = CdrWriter(client, store, consumer="writer-b", claim_idle=0.2)
        await survivor.drain_once()          # takes the 50 unread entries; writer-a's 40 are not idle yet
        await asyncio.sleep(0.3)
        await drain_all(survivor)
        assert_exactly_once(store, 30)
        info = {c["name"]: c["pending"] for c in await client.xinfo_consumers(keys.stream(), keys.GROUP)}
        assert info == {"writer-a": 0, "writer-b": 0}
        await client.aclose()

    asyncio.run(main())


def test_killed_writer_process_loses_and_duplicates_nothing(redis_url: str, tmp_path) -> None:
    """A real `cdr-writer` process is SIGKILLed mid-stream; another writer finishes the job."""
    n = 1500
    db = tmp_path / "cdr.db"

    async def fill() -> None:
        client = connect(redis_url)
        await produce(CdrBuffer(client), range(n))
        await client.aclose()

    asyncio.run(fill())
    proc = subprocess.Popen([sys.executable, "-m", "callcenter", "cdr-writer", "--redis", redis_url,
                             "--store", f"sqlite:///{db}", "--consumer", "doomed", "--batch", "50"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        sync = connect_sync(redis_url)
        deadline = time.monotonic() + 60
        # kill it mid-way, while it holds a batch it has read but not acknowledged: freeze it, look,
        # and let it run on until the freeze catches it holding one
        while time.monotonic() < deadline:
            if sync.xlen(keys.stream()) < 3 * n:
                os.kill(proc.pid, signal.SIGSTOP)
                if sync.xpending(keys.stream(), keys.GROUP)["pending"] > 0:
                    break
                os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        left = sync.xlen(keys.stream())
        assert 0 < left < 4 * n, "the writer should have been killed mid-way"
        assert sync.xpending(keys.stream(), keys.GROUP)["pending"] > 0, "it should have died holding entries"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    async def finish() -> None:
        client = connect(redis_url)
        store = open_store(f"sqlite:///{db}")
        survivor = CdrWriter(client, store, consumer="survivor", claim_idle=0.1)
        await asyncio.sleep(0.2)
        await drain_all(survivor)
        assert_exactly_once(store, n)
        await client.aclose()

    asyncio.run(finish())


def test_postgres_outage_during_writes(redis_url: str, pg_dsn: str, pg_server: PgServer) -> None:
    """Stop PostgreSQL (immediate: a crash) while calls stream in, restart it: every record once."""
    n = 600

    async def main() -> None:
        client = connect(redis_url)
        store = open_store(pg_dsn)
        writer = CdrWriter(client, store, batch=50, block_ms=100, retry_delay=0.1)
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        buf = CdrBuffer(client)

        async def producer() -> None:
            for start in range(0, n, 20):
                await produce(buf, range(start, min(n, start + 20)), reverse_snapshots=bool(start % 40))
                await asyncio.sleep(0.01)

        prod = asyncio.create_task(producer())
        while writer.written < 200:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(pg_server.stop, "immediate")
        written_at_stop = writer.written
        await asyncio.sleep(1.0)          # calls keep coming; the writer keeps failing and retrying
        assert writer.written == written_at_stop
        assert await client.xlen(keys.stream()) > 0
        await asyncio.to_thread(pg_server.start)
        await prod
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pending = await client.xpending(keys.stream(), keys.GROUP)
            if await client.xlen(keys.stream()) == 0 and pending["pending"] == 0:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task
        assert_exactly_once(store, n)
        store.close()
        await client.aclose()

    asyncio.run(main())


def test_poisoned_entry_goes_to_dead_letters(redis_url: str, tmp_path) -> None:
    async def main() -> None:
        client = connect(redis_url)
        store = open_store(f"sqlite:///{tmp_path}/cdr.db")
        await client.xadd(keys.stream(), {"t": "call", "d": "{not json"})
        await client.xadd(keys.stream(), {"t": "event", "d": '{"event_id": "x"}'})   # no ts: schema refuses
        await client.xadd(keys.stream(), {"t": "mystery", "d": "{}"})
        await produce(CdrBuffer(client), range(3))
        await drain_all(CdrWriter(client, store))
        assert_exactly_once(store, 3)
        dead = await client.xrange(keys.dead_letters())
        assert len(dead) == 3
        assert "undecodable" in dead[0][1]["reason"]
        await client.aclose()

    asyncio.run(main())


def test_an_entry_of_several_records_lands_whole_or_goes_whole_to_dead_letters(redis_url: str, tmp_path) -> None:
    """A call's records of one moment share an entry (CdrBuffer.write): all land together; one the store
    refuses sends its entry, every record of it, to dead letters, and the rest of the batch lands."""
    async def main() -> None:
        client = connect(redis_url)
        store = open_store(f"sqlite:///{tmp_path}/cdr.db")
        buf = CdrBuffer(client)
        first, last = snapshots(0)
        await buf.write(first)
        ev = QueueEvent("ev-0", first.start + 5, first.call_id, "billing", None, "ENTERQUEUE")
        leg = LegRecord("leg-0", first.call_id, "inbound", "sip:0900000000@gw", None, first.start, first.answer,
                        first.start + 100, 200, "answered", version=1)
        await buf.write(last, leg, ev)
        bad = QueueEvent("ev-bad", None, "call-bad", "billing", None, "ENTERQUEUE")  # type: ignore[arg-type]  # no ts
        await buf.write(CallRecord("call-bad", "inbound", "0901", "1900", 1.0), bad)
        await drain_all(CdrWriter(client, store))
        assert_exactly_once(store, 1)
        dead = await client.xrange(keys.dead_letters())
        assert len(dead) == 1 and dead[0][1]["t"] == "many" and "call-bad" in dead[0][1]["d"]
        await client.aclose()

    asyncio.run(main())


def test_buffer_survives_redis_outage(redis_url: str, redis_server, tmp_path) -> None:
    async def main() -> None:
        client = connect(redis_url, ride_out_restarts=False, socket_timeout=1, socket_connect_timeout=1)
        buf = CdrBuffer(client)
        await produce(buf, range(5))
        redis_server.stop()
        t = time.monotonic()
        await produce(buf, range(5, 10))          # must return, not hang the call
        assert time.monotonic() - t < 20
        assert buf.backlog == 20
        redis_server.start()
        assert await buf.flush() == 0
        store = open_store(f"sqlite:///{tmp_path}/cdr.db")
        await drain_all(CdrWriter(client, store))
        assert_exactly_once(store, 10)
        await client.aclose()

    asyncio.run(main())


def test_worker_task_starts_while_postgres_is_down(redis_url: str, pg_dsn: str, pg_server: PgServer) -> None:
    """The worker's writer task must not fail when the store is down at start; it catches up later."""
    from callcenter.cdr.writer import run_cdr_writer

    async def main() -> None:
        client = connect(redis_url)
        await asyncio.to_thread(pg_server.stop, "fast")
        stop = asyncio.Event()
        task = asyncio.create_task(run_cdr_writer(client, pg_dsn, stop, consumer="w1"))
        await produce(CdrBuffer(client), range(40))         # calls go on meanwhile
        await asyncio.sleep(1.5)
        assert not task.done()
        await asyncio.to_thread(pg_server.start)
        deadline = time.monotonic() + 30
        while await client.xlen(keys.stream()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        stop.set()
        await task
        store = open_store(pg_dsn)
        assert_exactly_once(store, 40)
        store.close()
        await client.aclose()

    asyncio.run(main())


def test_a_round_the_store_refused_is_read_again_first(redis_url: str, tmp_path) -> None:
    """The writer reads its own pending list only while it may hold something (at start, after a failed
    round): a round that failed for an outage (SQLite locked by another connection) leaves its entries
    there, and the next round writes exactly those before any new one."""
    async def main() -> None:
        client = connect(redis_url)
        db = tmp_path / "cdr.db"
        store = open_store(f"sqlite:///{db}")
        assert isinstance(store, SqliteStore)
        store._conn.execute("PRAGMA busy_timeout=50")   # the outage shows in 50 ms, not 30 s
        await produce(CdrBuffer(client), range(30))
        writer = CdrWriter(client, store, batch=20)
        assert await writer.drain_once() == 20
        blocker = sqlite3.connect(db)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreUnavailable):
                await writer.drain_once()
        finally:
            blocker.rollback()
            blocker.close()
        refused = [p["message_id"] for p in await client.xpending_range(keys.stream(), keys.GROUP, "-", "+", 100)]
        assert len(refused) == 20
        left = await client.xlen(keys.stream())
        assert await writer.drain_once() == 20
        assert (await client.xpending(keys.stream(), keys.GROUP))["pending"] == 0   # those 20, no new ones
        assert await client.xlen(keys.stream()) == left - 20
        assert not await client.xrange(keys.stream(), refused[0], refused[-1])
        await drain_all(writer)
        assert_exactly_once(store, 30)
        store.close()
        await client.aclose()

    asyncio.run(main())
