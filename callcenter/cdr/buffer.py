"""The write side a worker uses: append records to a Redis stream and return.

A call never waits on the database. XADD to a local Redis takes well under a millisecond and
Redis persists it (AOF). If Redis itself is briefly unreachable, records wait in a bounded
in-memory backlog and are re-sent with the next record or by ``flush()``; only a worker crash
during a Redis outage can lose them, and the backlog size is logged when it drops anything.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from callcenter import logs
from callcenter.cdr import keys
from callcenter.cdr.record import CallRecord, Disposition, LegRecord, QueueEvent, version_now

log = logs.get("cdr.buffer")

Entry = dict[FieldT, EncodableT]    # a stream entry's fields, as redis-py's xadd takes them


def encode(kind: str, payload: dict[str, Any]) -> Entry:
    return {"t": kind, "d": json.dumps(payload, ensure_ascii=False, separators=(",", ":"))}


class CdrBuffer:
    def __init__(self, redis: aioredis.Redis, prefix: str = "cc:", backlog_limit: int = 100_000) -> None:
        self.redis = redis
        self.prefix = prefix
        self.stream = keys.stream(prefix)
        self._backlog: deque[Entry] = deque()
        self._backlog_limit = backlog_limit
        self.dropped = 0
        self._lock = asyncio.Lock()

    async def call(self, rec: CallRecord) -> None:
        """Send a snapshot of the call. Call it as often as the call changes; the store merges."""
        payload = rec.to_dict()
        if not payload.get("version"):
            payload["version"] = version_now()
        await self._add(encode("call", payload))

    async def leg(self, rec: LegRecord) -> None:
        payload = rec.to_dict()
        if not payload.get("version"):
            payload["version"] = version_now()
        await self._add(encode("leg", payload))

    async def event(self, ev: QueueEvent) -> None:
        await self._add(encode("event", ev.to_dict()))

    async def disposition(self, call_id: str, code: str, resolved: bool | None,
                          agent_id: str | None = None, ts: float | None = None) -> None:
        """The agent's after-call disposition; it wins over whatever the call record carried."""
        disp = Disposition(call_id, code, resolved, ts if ts is not None else version_now() / 1e9, agent_id)
        await self._add(encode("disp", disp.to_dict()))

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    async def flush(self) -> int:
        """Re-send the in-memory backlog. Returns how many entries are still waiting."""
        async with self._lock:
            while self._backlog:
                try:
                    await self.redis.xadd(self.stream, self._backlog[0])
                except (RedisError, OSError) as exc:
                    log.warning("cdr buffer still cannot reach redis", backlog=len(self._backlog),
                                error=str(exc))
                    break
                self._backlog.popleft()
            return len(self._backlog)

    async def _add(self, fields: Entry) -> None:
        if self._backlog:
            self._keep(fields)
            await self.flush()
            return
        try:
            await self.redis.xadd(self.stream, fields)
        except (RedisError, OSError) as exc:
            log.warning("cdr buffer cannot reach redis; keeping record in memory", error=str(exc))
            self._keep(fields)

    def _keep(self, fields: Entry) -> None:
        if len(self._backlog) >= self._backlog_limit:
            self._backlog.popleft()
            self.dropped += 1
            log.error("cdr backlog full; oldest record dropped", dropped=self.dropped)
        self._backlog.append(fields)
