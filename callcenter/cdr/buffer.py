"""The write side a worker uses: append records to a Redis stream and return.

A call never waits on the database. XADD to a local Redis takes well under a millisecond and
Redis persists it (AOF). If Redis itself is briefly unreachable, records wait in a bounded
in-memory backlog and are re-sent with the next record or by ``flush()``; only a worker crash
during a Redis outage can lose them, and the backlog size is logged when it drops anything.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from callcenter import logs
from callcenter.backlog import Backlog
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
        self.pending: Backlog[Entry] = Backlog("cdr", self._send, backlog_limit)

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
        return len(self.pending)

    @property
    def dropped(self) -> int:
        return self.pending.dropped

    async def flush(self) -> int:
        """Re-send the in-memory backlog. Returns how many entries are still waiting."""
        return await self.pending.flush()

    async def _send(self, fields: Entry) -> None:
        await self.redis.xadd(self.stream, fields)

    async def _add(self, fields: Entry) -> None:
        await self.pending.write(fields)
