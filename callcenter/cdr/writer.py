"""Moves records from the Redis stream into the store: at least once, idempotently.

Delivery: the writer reads through a consumer group, writes a batch in one store transaction,
and only then XACKs (and XDELs) the entries. A store outage leaves them pending for this consumer;
the writer re-reads its own pending entries first on the next round, so nothing is lost. If a
writer dies with entries pending, another writer takes them over with XAUTOCLAIM once they have
been idle for ``claim_idle`` seconds. Since the store upserts by id and merges by version, the
same entry written twice changes nothing: no duplicates.

An entry the store refuses on its own merit (malformed JSON, a value the schema rejects) goes to
a dead-letter stream so one bad record never blocks the pipeline.

Cost: a round (reads, one store transaction, XACK) took ~0.9 ms of CPU, as much as writing ~20 records,
so the writer batches: after a round that found fewer than ``batch`` entries it waits ``linger``
seconds for more (entries come a few at a time at any call rate). It reads its own pending list only
when it may hold something (at start, after a round that failed, until that list is empty), and asks
for a stalled writer's entries every ``claim_idle / 2`` seconds at most, not every round.
Rollups: a refresh re-sums every dirty 15-minute bucket, and the current one grows with the call
rate (at 150 calls/s it ends with 135,000 calls, ~0.5 s a refresh on SQLite), so the next refresh
comes ``rollup_every`` seconds later or, when one took long, late enough that refreshes take at most
``rollup_share`` of the writer's time; reports refresh before they read, so they stay exact
(bench/cdr_writer_cost.py; RESULTS "Session 7: the CDR writer's CPU per call").
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from callcenter import logs, metrics
from callcenter.cdr import keys
from callcenter.cdr.buffer import decode
from callcenter.cdr.store import SqlStore, StoreUnavailable

log = logs.get("cdr.writer")

Store = SqlStore
# A stream's entries as the (decoding) client reads them: (id, fields); an entry deleted while it was
# pending comes back without fields.
Entries = list[tuple[str, dict[str, str] | None]]
Records = list[tuple[str, dict[str, Any]]]   # an entry's (kind, payload) records (cdr.buffer.decode)


def open_store(url: str) -> SqlStore:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``sqlite://:memory:`` or ``postgresql://...``."""
    if url.startswith("sqlite://"):
        from callcenter.cdr.sqlite_store import SqliteStore

        path = url[len("sqlite://"):]
        if path.startswith("/"):
            path = path[1:] or ":memory:"
        return SqliteStore(path or ":memory:")
    if url.startswith(("postgresql://", "postgres://")):
        from callcenter.cdr.pg_store import PgStore

        return PgStore(url)
    raise ValueError(f"unsupported CDR store URL {url.split(':', 1)[0]!r}: use sqlite:///path.db or postgresql://...")


class CdrWriter:
    def __init__(self, redis_async: aioredis.Redis, store: SqlStore, prefix: str = "cc:",
                 consumer: str = "writer-1", batch: int = 500, block_ms: int = 1000,
                 claim_idle: float = 30.0, retry_delay: float = 1.0, rollup_every: float = 5.0,
                 linger: float = 0.2, rollup_share: float = 0.02) -> None:
        self.redis = redis_async
        self.store = store
        self.prefix = prefix
        self.stream = keys.stream(prefix)
        self.dead = keys.dead_letters(prefix)
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle = claim_idle
        self.retry_delay = retry_delay
        self._group_ready = False
        self._claim_cursor = "0-0"
        self._claim_due = 0.0         # next XAUTOCLAIM (monotonic); a scan under way goes on each round
        self._own_pending = True      # our pending list may hold entries: at start, after a failed round
        self.linger = linger
        self.written = 0
        self.rollup_every = rollup_every
        self.rollup_share = rollup_share
        self._rollup_due = 0.0

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, keys.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _read(self, block: int | None) -> list[tuple[str, dict[str, str]]]:
        # 1. our own pending entries (a store outage left them unacknowledged)
        if self._own_pending:
            resp = cast(list[tuple[str, Entries]], await self.redis.xreadgroup(
                keys.GROUP, self.consumer, {self.stream: "0"}, count=self.batch))
            entries = resp[0][1] if resp else []
            gone = [i for i, f in entries if not f]
            if gone:
                # Entries deleted while pending come back without fields; nothing left to write.
                await self.redis.xack(self.stream, keys.GROUP, *gone)
            live = [(i, f) for i, f in entries if f]
            if live:
                return live
            self._own_pending = False
        # 2. entries of a writer that died holding them
        if self._claim_cursor != "0-0" or time.monotonic() >= self._claim_due:
            claimed = cast(tuple[str, Entries, list[str]], await self.redis.xautoclaim(
                self.stream, keys.GROUP, self.consumer, int(self.claim_idle * 1000), self._claim_cursor,
                count=self.batch))
            self._claim_cursor = claimed[0]
            if self._claim_cursor == "0-0":
                self._claim_due = time.monotonic() + self.claim_idle / 2
            live = [(i, f) for i, f in claimed[1] if f]
            if live:
                log.info("claimed entries of a stalled writer", count=len(live))
                return live
        # 3. new entries
        resp = cast(list[tuple[str, Entries]], await self.redis.xreadgroup(
            keys.GROUP, self.consumer, {self.stream: ">"}, count=self.batch, block=block))
        return [(i, f) for i, f in resp[0][1] if f] if resp else []

    async def drain_once(self, block: int | None = None) -> int:
        """Move one batch. Returns how many entries were committed (0: nothing to do).

        Raises StoreUnavailable if the store is down (entries stay pending and are retried)."""
        await self.ensure_group()
        entries = await self._read(block)
        if not entries:
            return 0
        # Until they are acknowledged below, these entries are in our pending list: a failure on the way
        # leaves them there for the next round to read first. Entries from that list keep it being read
        # until it is empty.
        from_own, self._own_pending = self._own_pending, True
        good: list[Records] = []          # each entry's records, one store transaction for all
        good_ids: list[str] = []
        bad: list[tuple[str, dict[str, str], str]] = []
        for entry_id, fields in entries:
            try:
                good.append(decode(fields))
                good_ids.append(entry_id)
            except (ValueError, KeyError) as exc:
                bad.append((entry_id, fields, f"undecodable entry: {exc}"))
        if good:
            try:
                await asyncio.to_thread(self.store.apply, [r for recs in good for r in recs])
            except StoreUnavailable:
                metrics.CDR_WRITE_ERRORS_TOTAL.labels(reason="store_unavailable").inc()
                raise
            except Exception as exc:  # noqa: BLE001 - a bad record must not stop the pipeline
                log.warning("batch refused by the store; writing entries one by one", error=str(exc))
                good, good_ids, refused = await self._one_by_one(good, good_ids, dict(entries))
                bad.extend(refused)
        for entry_id, fields, reason in bad:
            metrics.CDR_WRITE_ERRORS_TOTAL.labels(reason="rejected").inc()
            log.error("CDR entry rejected; moved to dead letters", entry=entry_id, reason=reason)
            letter: dict[FieldT, EncodableT] = {k: v for k, v in fields.items()}   # redis-py's key type
            letter["reason"], letter["entry"] = reason, entry_id
            await self.redis.xadd(self.dead, letter)
        ids = good_ids + [b[0] for b in bad]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, keys.GROUP, *ids)
            pipe.xdel(self.stream, *ids)
            await pipe.execute()
        self._own_pending = from_own
        kinds = Counter(kind for recs in good for kind, _ in recs)
        for kind, count in kinds.items():
            metrics.CDR_WRITTEN_TOTAL.labels(kind=kind).inc(count)
        self.written += kinds.total()
        return len(ids)

    async def _one_by_one(self, good: list[Records], ids: list[str], fields: dict[str, dict[str, str] | None]
                          ) -> tuple[list[Records], list[str], list[tuple[str, dict[str, str], str]]]:
        """Each entry in a transaction of its own: the one the store refuses goes whole to dead letters."""
        ok: list[Records] = []
        ok_ids: list[str] = []
        refused: list[tuple[str, dict[str, str], str]] = []
        for recs, entry_id in zip(good, ids, strict=True):
            try:
                await asyncio.to_thread(self.store.apply, recs)
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001
                refused.append((entry_id, fields[entry_id] or {}, str(exc)))
                continue
            ok.append(recs)
            ok_ids.append(entry_id)
        return ok, ok_ids, refused

    async def run(self, stop_event: asyncio.Event) -> None:
        """Drain until ``stop_event`` is set; survives store and Redis outages with a retry delay."""
        log.info("cdr writer started", consumer=self.consumer)
        last_lag_log = 0.0
        while not stop_event.is_set():
            try:
                n = await self.drain_once(block=self.block_ms)
            except StoreUnavailable as exc:
                now = time.monotonic()
                if now - last_lag_log > 30:
                    log.warning("CDR store unavailable; records wait in the Redis stream", error=str(exc))
                    last_lag_log = now
                await self._sleep(stop_event, self.retry_delay)
                continue
            except (RedisError, OSError) as exc:
                self._group_ready = False
                log.warning("cdr writer cannot reach redis", error=str(exc))
                await self._sleep(stop_event, self.retry_delay)
                continue
            except Exception:  # the writer is a long-lived task; it logs and goes on
                log.exception("cdr writer round failed")
                await self._sleep(stop_event, self.retry_delay)
                continue
            if time.monotonic() >= self._rollup_due:
                began = time.monotonic()
                try:
                    await asyncio.to_thread(self.store.refresh_rollups)
                except Exception as exc:  # noqa: BLE001 - reports refresh too; retry next round
                    log.warning("rollup refresh failed", error=str(exc))
                took = time.monotonic() - began
                self._rollup_due = time.monotonic() + max(self.rollup_every, took / self.rollup_share)
            if n == 0 and self.block_ms == 0:
                await self._sleep(stop_event, 0.05)
            elif 0 < n < self.batch and self.linger > 0:
                await self._sleep(stop_event, self.linger)   # let more entries come: one round for them all
        log.info("cdr writer stopped", consumer=self.consumer, written=self.written)

    @staticmethod
    async def _sleep(stop_event: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(stop_event.wait(), seconds)
        except TimeoutError:
            pass

    async def backlog(self) -> int:
        """Entries not yet in the store (new plus pending)."""
        return int(await self.redis.xlen(self.stream))


async def run_cdr_writer(redis_async: aioredis.Redis, store_url: str, stop_event: asyncio.Event,
                         prefix: str = "cc:", consumer: str = "writer-1", thresholds: Any = None) -> None:
    """The worker's background task: open the store (retrying while it is down, so a database
    outage never stops a worker from taking calls), then move records until ``stop_event``.

    ``consumer`` should be stable across restarts (the worker id): a restarted writer then
    finishes its own pending entries at once instead of waiting for XAUTOCLAIM."""
    store: SqlStore | None = None
    delay = 1.0
    while store is None and not stop_event.is_set():
        try:
            store = await asyncio.to_thread(open_store, store_url)
            if thresholds is not None:
                await asyncio.to_thread(store.set_rollup_params, thresholds)
        except StoreUnavailable as exc:
            store = None
            log.warning("CDR store unavailable at start; records wait in Redis", error=str(exc))
            await CdrWriter._sleep(stop_event, delay)
            delay = min(delay * 2, 30.0)
        except Exception:   # whatever opening fails on, the writer must not die: records wait in Redis
            store = None
            log.exception("CDR store could not be opened; retrying")
            await CdrWriter._sleep(stop_event, delay)
            delay = min(delay * 2, 30.0)
    if store is None:
        return
    try:
        await CdrWriter(redis_async, store, prefix=prefix, consumer=consumer).run(stop_event)
    finally:
        await asyncio.to_thread(store.close)
