"""The write side a worker uses: append records to a Redis stream and return.

A call never waits on the database. XADD to a local Redis takes well under a millisecond and
Redis persists it (AOF). If Redis itself is briefly unreachable, records wait in a bounded
in-memory backlog and are re-sent with the next record or by ``flush()``; only a worker crash
during a Redis outage can lose them, and the backlog size is logged when it drops anything.

Records a call has ready at the same moment travel in one entry (:meth:`CdrBuffer.write`: a call's
final snapshot and its leg; a queue-log line and the agent's leg), and a call's open mark
(routing's ``rt:w:{w}:open``, :class:`OpenMark`) goes in the same round trip as the snapshot it
belongs to: fewer appends and round trips a call (bench/RESULTS.md, "Session 6").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from callcenter import logs
from callcenter.backlog import Backlog
from callcenter.cdr import keys
from callcenter.cdr.record import CallRecord, Disposition, LegRecord, QueueEvent, Record, version_now
from callcenter.redisconn import LoopRedis

log = logs.get("cdr.buffer")

Entry = dict[FieldT, EncodableT]    # a stream entry's fields, as redis-py's xadd takes them
MANY = "many"                       # an entry of several records: d is a JSON list of [kind, payload]
KINDS: dict[type[Record], str] = {CallRecord: "call", LegRecord: "leg", QueueEvent: "event", Disposition: "disp"}


def encode(kind: str, payload: dict[str, Any]) -> Entry:
    return {"t": kind, "d": json.dumps(payload, ensure_ascii=False, separators=(",", ":"))}


def encode_all(records: list[tuple[str, dict[str, Any]]]) -> Entry:
    """One entry for the records: as :func:`encode` for one, a ``many`` entry for more."""
    if len(records) == 1:
        return encode(*records[0])
    return {"t": MANY, "d": json.dumps(records, ensure_ascii=False, separators=(",", ":"))}


def decode(fields: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """The (kind, payload) records of a stream entry; ValueError/KeyError when it is not one of ours."""
    kind = fields.get("t", "")
    payload = json.loads(fields["d"])
    if kind != MANY:
        payload = [[kind, payload]]
    if not isinstance(payload, list) or not payload:
        raise ValueError("a many entry's records are not a list")
    out = []
    for rec in payload:
        if not (isinstance(rec, list) and len(rec) == 2 and isinstance(rec[0], str) and isinstance(rec[1], dict)):
            raise ValueError("payload is not an object")
        out.append((rec[0], rec[1]))
    return out


@dataclass(frozen=True)
class OpenMark:
    """Routing's open-call record of a worker (``Keys.worker_open``: call id -> direction), written with a
    call's snapshot: set (``direction``) before it, removed (None) after its final one, one round trip."""

    key: str
    call_id: str
    direction: str | None


@dataclass(frozen=True)
class Write:
    """One append: the entry, and the open mark that travels with it."""

    fields: Entry
    mark: OpenMark | None = None


class CdrBuffer:
    def __init__(self, redis: aioredis.Redis, prefix: str = "cc:", backlog_limit: int = 100_000) -> None:
        self.redis = redis
        self.prefix = prefix
        self.stream = keys.stream(prefix)
        self.pending: Backlog[Write] = Backlog("cdr", self._send, backlog_limit)

    async def write(self, *records: Record, mark: OpenMark | None = None) -> None:
        """Append the records in one entry, with ``mark`` in the same round trip. Snapshots (call, leg)
        without a version are stamped now; send a call's as often as it changes: the store merges."""
        out = []
        for rec in records:
            payload = rec.to_dict()
            if "version" in payload and not payload["version"]:
                payload["version"] = version_now()
            out.append((KINDS[type(rec)], payload))
        await self.pending.write(Write(encode_all(out), mark))

    async def call(self, rec: CallRecord) -> None:
        """Send a snapshot of the call. Call it as often as the call changes; the store merges."""
        await self.write(rec)

    async def leg(self, rec: LegRecord) -> None:
        await self.write(rec)

    async def event(self, ev: QueueEvent) -> None:
        await self.write(ev)

    async def disposition(self, call_id: str, code: str, resolved: bool | None,
                          agent_id: str | None = None, ts: float | None = None) -> None:
        """The agent's after-call disposition; it wins over whatever the call record carried."""
        await self.write(Disposition(call_id, code, resolved, ts if ts is not None else version_now() / 1e9, agent_id))

    @property
    def backlog(self) -> int:
        return len(self.pending)

    @property
    def dropped(self) -> int:
        return self.pending.dropped

    async def flush(self) -> int:
        """Re-send the in-memory backlog. Returns how many entries are still waiting."""
        return await self.pending.flush()

    async def _send(self, w: Write) -> None:
        if w.mark is None:
            await self.redis.xadd(self.stream, w.fields)
            return
        # open before the snapshot, closed after the final one; one write (LoopRedis: with the appends)
        mark = (("HSET", w.mark.key, w.mark.call_id, w.mark.direction) if w.mark.direction is not None
                else ("HDEL", w.mark.key, w.mark.call_id))
        append: tuple[EncodableT, ...] = ("XADD", self.stream, "*", *(x for kv in w.fields.items() for x in kv))
        commands = (mark, append) if w.mark.direction is not None else (append, mark)
        if isinstance(self.redis, LoopRedis):
            await self.redis.send_together(*commands)
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for args in commands:
                pipe.execute_command(*args)
            await pipe.execute()
