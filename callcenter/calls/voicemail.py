"""The voicemail inbox: an index in Redis of the voice messages callers leave.

A message is left by an IVR ``record`` node (``ivr.runner``), reached from a flow's own menu or from a
queue node's fallback (on_timeout / on_full / on_no_agents -> the flow's ``voicemail`` node). The node
writes ``<data>/recordings/<call id>-<flow>-<node>.wav`` and emits a ``recording`` event; the worker's
:class:`~callcenter.calls.services.FlowServices` hands it to :meth:`VoicemailIndex.saved`.

One entry per message (:data:`KEYS`): its id is derived from the file path, so writing it again (a retry
after a Redis outage) changes nothing. If Redis is unreachable the entry waits in a bounded in-memory
backlog and is re-sent with the next message or by :meth:`VoicemailIndex.flush` (the worker runs it every
few seconds), as the CDR buffer does; only a worker crash during the outage loses it (the WAV stays).

States: ``new`` -> ``handled`` (by whom, when). The caller's number is kept as the CDR keeps it and is
never logged.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from callcenter import logs, metrics
from callcenter.backlog import Backlog
from callcenter.calls.records import queue_event
from callcenter.cdr.buffer import CdrBuffer
from callcenter.dialer.policy import DialPolicy
from callcenter.keyspace import KeySpace, key0, key1, key2
from callcenter.routing.router import QueuedCall, QueueFull, Router, RoutingError

log = logs.get("calls.voicemail")

# name -> (template relative to the deployment prefix, Redis type, what it holds)
class VoicemailKeys(KeySpace):
    """The voicemail inbox: one hash a message, one sorted set a box and state."""

    # id, call_id, queue, caller, time, seconds, path, state, handled_by, handled_at; and a callback made
    # of it: callback_id, callback_queue, callback_by, callback_at
    entry = key1("vm:m:{id}", "hash", "one voicemail")
    box = key2("vm:q:{q}:{state}", "zset", "a queue's (box's) voicemails in one state; score = time saved")
    boxes = key0("vm:queues", "set", "queues (boxes) that have voicemails")


STATES = ("new", "handled")
MAX_PAGE = 200
MAX_WINDOW = 10_000     # offset + limit: a list pages through the newest 10 000 of its boxes at most

# KEYS: entry, its box, boxes. ARGV: id, score, queue, then field, value, ... -> 1 added, 0 already there
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""

# KEYS: entry, new box, handled box. ARGV: id, who, at. -> 'ok' | 'already' | 'missing'
_HANDLED = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'handled' then return 'already' end
redis.call('HSET', KEYS[1], 'state', 'handled', 'handled_by', ARGV[2], 'handled_at', ARGV[3])
local score = redis.call('ZSCORE', KEYS[2], ARGV[1]) or ARGV[3]
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], score, ARGV[1])
return 'ok'
"""


def voicemail_id(path: str) -> str:
    """The message's id: stable for its file, so a re-sent entry is the same entry."""
    return hashlib.sha256(path.encode()).hexdigest()[:20]


@dataclass
class Voicemail:
    id: str
    call_id: str
    queue: str             # the queue the caller waited in, or the flow's name (its "box")
    caller: str            # as the CDR keeps it
    time: float            # when it was saved (epoch s)
    seconds: float
    path: str
    state: str = "new"
    handled_by: str = ""
    handled_at: float | None = None
    callback_id: str = ""      # the callback task's call id (routing), once one was made of it
    callback_queue: str = ""
    callback_by: str = ""

    def fields(self) -> dict[str, str]:
        return {k: "" if v is None else str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_fields(cls, d: dict[str, str]) -> Voicemail:
        return cls(d["id"], d.get("call_id", ""), d.get("queue", ""), d.get("caller", ""),
                   float(d.get("time") or 0), float(d.get("seconds") or 0), d.get("path", ""),
                   d.get("state", "new"), d.get("handled_by", ""),
                   float(d["handled_at"]) if d.get("handled_at") else None, d.get("callback_id", ""),
                   d.get("callback_queue", ""), d.get("callback_by", ""))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_newest(pages: list[list[tuple[str, float]]], offset: int, limit: int) -> list[str]:
    """Ids of one page, newest first, of several boxes each listed newest first."""
    merged = heapq.merge(*pages, key=lambda p: -p[1])
    return [i for n, (i, _) in enumerate(merged) if offset <= n < offset + limit]


class VoicemailIndex:
    def __init__(self, redis: aioredis.Redis, prefix: str = "cc:", backlog_limit: int = 10_000) -> None:
        self.redis = redis
        self.prefix = prefix
        self.keys = VoicemailKeys(prefix)
        self.pending: Backlog[Voicemail] = Backlog("voicemail index", self._write, backlog_limit,
                                                   dropped_note="its WAV")
        self._add = redis.register_script(_ADD)
        self._handled = redis.register_script(_HANDLED)

    async def _write(self, vm: Voicemail) -> bool:
        flat = [x for kv in vm.fields().items() for x in kv]
        keys = [self.keys.entry(vm.id), self.keys.box(vm.queue, vm.state), self.keys.boxes()]
        return bool(await self._add(keys=keys, args=[vm.id, repr(vm.time), vm.queue, *flat]))

    async def saved(self, call_id: str, queue: str, caller: str, path: str, seconds: float,
                    at: float | None = None) -> Voicemail:
        """A message was written to ``path``: index it (idempotent; kept for later if Redis is down)."""
        vm = Voicemail(voicemail_id(path), call_id, queue, caller, at if at is not None else time.time(),
                       round(seconds, 1), path)
        await self.pending.write(vm)
        metrics.VOICEMAILS_TOTAL.labels(queue=queue).inc()
        log.info("voicemail saved", call_id=call_id, queue=queue, voicemail_id=vm.id, seconds=vm.seconds)
        return vm

    async def flush(self) -> int:
        """Send what waits in the backlog; returns how many are still waiting."""
        return await self.pending.flush()

    @property
    def waiting(self) -> int:
        return len(self.pending)

    async def get(self, vm_id: str) -> Voicemail | None:
        d = cast(dict[str, str], await self.redis.hgetall(self.keys.entry(vm_id)))
        return Voicemail.from_fields(d) if d else None

    async def queues(self) -> set[str]:
        return set(cast(set[str], await self.redis.smembers(self.keys.boxes())))

    async def list(self, queues: list[str], states: list[str], offset: int = 0, limit: int = 50) -> list[Voicemail]:
        """One page, newest first, of the voicemails of ``queues`` in ``states``."""
        if offset + limit > MAX_WINDOW:
            raise ValueError(f"offset + limit may not pass {MAX_WINDOW}")
        pages: list[list[tuple[str, float]]] = []
        for q in sorted(queues):
            for s in states:
                got = cast(list[tuple[str, float]], await self.redis.zrevrange(
                    self.keys.box(q, s), 0, offset + limit - 1, withscores=True))
                pages.append([(str(i), float(sc)) for i, sc in got])
        out: list[Voicemail] = []
        for vm_id in merge_newest(pages, offset, limit):
            vm = await self.get(vm_id)
            if vm is not None:
                out.append(vm)
        return out

    async def handled(self, vm: Voicemail, who: str) -> str:
        """Mark handled by ``who``: 'ok', 'already' (handled before: kept as it was) or 'missing'."""
        res = await self._handled(keys=[self.keys.entry(vm.id), self.keys.box(vm.queue, "new"),
                                        self.keys.box(vm.queue, "handled")],
                                  args=[vm.id, who, repr(time.time())])
        return str(res)



class CallbackRefused(Exception):
    """A voicemail cannot become a callback: ``status`` (HTTP) and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# KEYS: entry. ARGV: callback call id -> 'ok' | 'taken' (a callback was made before) | 'missing'
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local cur = redis.call('HGET', KEYS[1], 'callback_id')
if cur and cur ~= '' then return 'taken' end
redis.call('HSET', KEYS[1], 'callback_id', ARGV[1])
return 'ok'
"""


class VoicemailCallbacks:
    """Turns a voicemail into a callback task for a queue, the way a waiting caller's callback is kept
    (``routing``'s callback: a queued call of kind callback holding the number; when it reaches the
    front, ``Queueing._ring_callback`` rings an agent, then dials the number). The number passes the
    dial policy now and again at dial time; one callback per voicemail, one pending per number."""

    def __init__(self, index: VoicemailIndex, router: Router, policy: DialPolicy, cdr: CdrBuffer) -> None:
        self.index = index
        self.router = router
        self.policy = policy
        self.cdr = cdr
        self._claim = index.redis.register_script(_CLAIM)

    async def call_back(self, vm: Voicemail, queue: str, who: str) -> Voicemail:
        """The callback task's call id is ``vmcb-<voicemail id>``; the message is then handled by ``who``.
        Raises CallbackRefused (404 unknown queue, 409 already called back / a callback pending for the
        number / queue full, 422 the dial policy refuses the number)."""
        cb_id = f"vmcb-{vm.id}"
        decision = await self.policy.check(vm.caller, "callback", call_id=cb_id, queue=queue)
        if not decision.ok or decision.e164 is None:
            await queue_event(self.cdr, "CALLBACK_REFUSED", cb_id, queue, reason=decision.reason,
                              kind=decision.kind, at="voicemail", voicemail=vm.id)
            raise CallbackRefused(422, f"the dial policy refuses the number ({decision.reason})")
        entry = self.index.keys.entry(vm.id)
        claimed = str(await self._claim(keys=[entry], args=[cb_id]))
        if claimed == "missing":
            raise CallbackRefused(404, "no such voicemail")
        if claimed == "taken":
            raise CallbackRefused(409, "this voicemail was already called back")
        try:
            try:
                await self.router.enqueue(QueuedCall(cb_id, queue, caller=decision.e164,
                                                     attributes={"voicemail": vm.id}))
            except QueueFull:
                raise CallbackRefused(409, f"queue {queue} is full") from None
            except RoutingError as exc:
                raise CallbackRefused(404 if "unknown queue" in str(exc) else 409, str(exc)) from None
            if not await self.router.request_callback(cb_id, decision.e164):
                await self.router.cancel_callback(cb_id)
                raise CallbackRefused(409, "a callback to this number is already pending")
        except CallbackRefused:
            await self.index.redis.hdel(entry, "callback_id")
            raise
        await self.index.redis.hset(entry, mapping={"callback_queue": queue, "callback_by": who,
                                                    "callback_at": repr(time.time())})
        await self.index.handled(vm, who)
        await queue_event(self.cdr, "CALLBACK", cb_id, queue, voicemail=vm.id, by=who, kind=decision.kind)
        log.info("voicemail callback queued", call_id=cb_id, voicemail_id=vm.id, queue=queue, by=who)
        got = await self.index.get(vm.id)
        return got if got is not None else vm
