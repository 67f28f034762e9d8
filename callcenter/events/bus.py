"""Publishing call events, reading the stream once per process for every open push, queue.stats.

    await publish(redis, prefix, {"type": "call.answered", "call_id": ..., ...})

The call layer publishes through :func:`calls.records.queue_event` (one queue-log line, one event);
agent states and queue joins come from routing's Lua. :class:`Hub` is the one XREAD of a worker's
open ``GET /events`` streams: each new entry is decoded once and handed to every subscriber, which
filters it for its user. :func:`publish_queue_stats` puts each queue's figures on the bus when they
change, from one worker per period (a Redis guard).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import redis.asyncio as aredis
from redis.exceptions import RedisError

from callcenter import logs, metrics
from callcenter.events import keys
from callcenter.events.keys import EventKeys
from callcenter.events.schema import Event, decode

log = logs.get("events")

StreamId = tuple[int, int]
Entries = list[tuple[str, dict[str, str]]]          # a stream read: (id, fields) pairs (decode_responses)


def parse_id(eid: str) -> StreamId | None:
    """A stream id ("1700000000000-3") as a comparable pair; None if it is not one."""
    ms, _, seq = eid.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return None


def encode(ev: Event) -> dict[str, str]:
    return {"type": ev["type"], "data": json.dumps(ev, ensure_ascii=False, separators=(",", ":"), default=str)}


async def publish(redis: aredis.Redis, prefix: str, ev: Event) -> str | None:
    """Add one event to the bus; its stream id, or None when Redis could not take it (logged, counted:
    a push or webhook missed, never a call disturbed)."""
    ev.setdefault("ts", time.time())
    try:
        eid = await redis.xadd(EventKeys(prefix).stream(), encode(ev),  # type: ignore[arg-type]  # redis-py's FieldT
                               maxlen=keys.STREAM_MAX, approximate=True)
    except RedisError as exc:
        metrics.EVENTS_PUBLISHED_TOTAL.labels(result="failed").inc()
        log.warning("event not published", event_type=ev["type"], call_id=ev.get("call_id"), error=str(exc))
        return None
    metrics.EVENTS_PUBLISHED_TOTAL.labels(result="ok").inc()
    return str(eid)


async def read_after(redis: aredis.Redis, prefix: str, after: str, count: int) -> list[tuple[str, Event]]:
    """Up to ``count`` events stored after stream id ``after`` (oldest first)."""
    rows = cast(Entries, await redis.xrange(EventKeys(prefix).stream(), min=f"({after}", max="+", count=count))
    out = []
    for eid, fields in rows:
        ev = decode(fields)
        if ev is not None:
            out.append((str(eid), ev))
    return out


async def tip(redis: aredis.Redis, prefix: str) -> str:
    """The id of the newest event ("0-0" for an empty stream)."""
    rows = await redis.xrevrange(EventKeys(prefix).stream(), count=1)
    return str(rows[0][0]) if rows else "0-0"


class Subscriber(Protocol):
    def deliver(self, eid: str, ev: Event) -> None: ...

    def ping(self) -> None: ...


class Hub:
    """One blocking XREAD per process for all of its open streams; runs while anyone subscribes. Every
    ``heartbeat`` seconds each subscriber is pinged (an SSE comment keeps proxies from closing it)."""

    def __init__(self, redis: aredis.Redis, prefix: str, heartbeat: float = 15.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.subscribers: set[Subscriber] = set()
        self.task: asyncio.Task[None] | None = None
        self._encoded: tuple[str, bytes] = ("", b"")   # the last event as sent whole, shared by its streams

    def encoded(self, eid: str, ev: Event, encode: Callable[[str, Event], bytes]) -> bytes:
        """``encode(eid, ev)``, made once for all the streams that send the event unchanged."""
        if self._encoded[0] != eid:
            self._encoded = (eid, encode(eid, ev))
        return self._encoded[1]

    def subscribe(self, sub: Subscriber) -> None:
        self.subscribers.add(sub)
        metrics.EVENT_STREAMS_OPEN.set(len(self.subscribers))
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        metrics.EVENT_STREAMS_OPEN.set(len(self.subscribers))

    async def close(self) -> None:
        self.subscribers.clear()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        last: str | None = None
        beat = time.monotonic() + self.heartbeat
        block_ms = max(10, int(min(self.heartbeat, 5.0) * 1000))
        while self.subscribers:
            try:
                if last is None:
                    last = await tip(self.redis, self.prefix)
                reply = cast(list[tuple[str, Entries]],
                             await self.redis.xread({EventKeys(self.prefix).stream(): last}, count=500, block=block_ms))
            except RedisError as exc:
                log.warning("event stream read failed", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            for _, entries in reply or []:
                for eid, fields in entries:
                    last = str(eid)
                    ev = decode(fields)
                    if ev is not None:
                        self._fan_out(last, ev)
            if time.monotonic() >= beat:
                beat = time.monotonic() + self.heartbeat
                for sub in list(self.subscribers):
                    sub.ping()

    def _fan_out(self, eid: str, ev: Event) -> None:
        for sub in list(self.subscribers):
            try:
                sub.deliver(eid, ev)
            except Exception:  # one broken connection must not starve the others
                log.exception("event delivery to a stream failed")
                self.unsubscribe(sub)


async def publish_queue_stats(redis: aredis.Redis, prefix: str, read: Callable[[float], Sequence[metrics.QueueFigures]],
                              period: float) -> int:
    """One period of queue.stats: the worker that takes the guard reads every queue's figures (``read``,
    the wallboard's at a given time, in a thread) and publishes those that changed since the last ones published.
    Returns how many it published (0 when another worker holds the guard)."""
    if not await redis.set(EventKeys(prefix).stats_guard(), "1", nx=True, px=max(100, int(period * 900))):
        return 0
    now = time.time()
    figures = await asyncio.to_thread(read, now)
    last = cast(dict[str, str], await redis.hgetall(EventKeys(prefix).stats_last()))
    n = 0
    for f in figures:
        fig: dict[str, Any] = {
            "waiting": f.waiting, "agents": dict(f.agents_by_state), "answered_today": f.answered_today,
            "abandoned_today": f.abandoned_today, "service_level": f.service_level,
            # the page counts the longest wait up itself from the oldest caller's arrival
            "oldest_since": round(now - f.oldest_wait_seconds, 1) if f.waiting and f.oldest_wait_seconds else None}
        text = json.dumps(fig, sort_keys=True)
        if last.get(f.queue) == text:
            continue
        await redis.hset(EventKeys(prefix).stats_last(), f.queue, text)
        await publish(redis, prefix, {"type": "queue.stats", "ts": now, "queue": f.queue,
                                      "longest_wait_s": round(f.oldest_wait_seconds or 0.0, 1), **fig})
        n += 1
    return n
