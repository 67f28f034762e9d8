"""The ACD as the worker sees it: enqueue callers, receive offers, report what the phones did.

All state is in Redis and every change is one Lua script, so any number of workers (and the HTTP
API process) can share queues and agents. Offers for a call always go to the worker that holds the
caller's media (its Redis list ``worker_offers``), whichever process made the match.

How a worker drives it (every call is a coroutine on the worker's loop)::

    rt = Router(redisconn.connect(redis_url), worker_id)
    await rt.apply_rules(rules.load("routing_rules.yaml"))
    await rt.claim()   # the one live process with worker_id; closes out what a crashed run left
    # tasks: heartbeat() every 2 s; tick() every 1 s (act on its events: fallback -> voicemail /
    # transfer / goodbye, offer_cancelled -> stop ringing that phone); next_offers() in a loop:
    #   ring offer.agent_uri for offer.ring_timeout; answered -> offer_answered() (False: hang the
    #   agent leg up, the call went elsewhere) and bridge; else offer_failed(offer, "no_answer").
    #   kind == "callback": bridge the agent first, then dial offer.callback_number.
    # caller hangs up while queued/ringing -> abandon(); conversation ends -> call_finished().
    # clean stop: release() (a restart under the id need not wait for the claim to lapse).

Lua scripts take ``now`` from the caller (``clock``), so tests drive time; Redis TIME only makes
cache-epoch tokens unique, never a time that is compared.
Clocks of the workers must agree to within a second or two (NTP), as leases and heartbeats compare
times written by different processes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis
import redis.asyncio as aredis

from callcenter import logs
from callcenter.exceptions import CallcenterError
from callcenter.routing import scripts
from callcenter.routing.keys import Keys
from callcenter.routing.rules import MAX_SKILLS, Announce, Fallback, RoutingRules, skill_problem

log = logs.get("routing")

AGENT_STATES = ("available", "reserved", "on_call", "wrap_up", "paused", "logged_out")
# "withdrawn": the worker did not ring the phone (caller already gone, or already ringing another
# agent for a ring_all queue): no miss for the agent.
OFFER_FAILURES = ("no_answer", "busy", "rejected", "failed", "withdrawn", "unregistered")
BUSY_STATES = ("reserved", "on_call", "wrap_up")   # an agent taken by a call (ringing, talking, wrap-up)


class RoutingError(CallcenterError):
    """A routing request cannot be done (unknown queue/agent, duplicate call, conflicting rules)."""


class QueueFull(RoutingError):
    def __init__(self, queue: str, fallback: Fallback) -> None:
        super().__init__(f"queue {queue} is full")
        self.queue = queue
        self.fallback = fallback   # what the queue's on_full says to do with the caller


@dataclass(frozen=True)
class QueuedCall:
    call_id: str
    queue: str
    skills: dict[str, int] = field(default_factory=dict)   # skill -> minimum level
    priority: int = 0                                      # higher is served first
    caller: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    enqueued: float | None = None      # a call transferred back into a queue keeps its first enqueue time


@dataclass(frozen=True)
class Offer:
    offer_id: str
    call_id: str
    agent_id: str
    agent_uri: str
    queue: str
    ring_timeout: float
    kind: str = "call"                 # "call" | "callback"
    callback_number: str | None = None


@dataclass(frozen=True)
class RoutingEvent:
    """kind: fallback | escalated | offer_cancelled | agent_auto_paused | agent_auto_ready (a pause
    reason with auto_ready ran out; call_id None). ``data`` has the rest
    (fallback: action, target, reason, queue, callback_number)."""

    kind: str
    call_id: str | None
    data: dict[str, Any]


class Router:
    """One worker's handle on the shared ACD. ``worker_id`` must be unique per live process: offers
    and events for the callers it enqueues are delivered to it, and its calls are closed out if its
    heartbeat stops for ``dead_after`` seconds."""

    TAKEN_KEPT = 10_000   # offer ids remembered as taken (next_offers)

    def __init__(self, redis: aredis.Redis, worker_id: str, prefix: str = "cc:",
                 clock: Callable[[], float] = time.time, dead_after: float = 6.0) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.clock = clock
        self.dead_after = dead_after
        self._lib = scripts.AsyncLibrary(redis, prefix)
        self._beats = 0
        self.token = uuid.uuid4().hex   # this process's claim on worker_id (see claim())
        self.closed_out: dict[str, str] = {}   # call id -> direction, closed out by this worker's last tick()
        self.log = log.bind(worker=worker_id)
        # offer ids already taken: after a failover the new master may hand out again one whose pop the
        # old master took but never replicated (its agent would ring twice)
        self._taken: dict[str, None] = {}

    async def _run(self, name: str, *args: Any) -> Any:
        now = self.clock()
        day = time.strftime("%Y%m%d", time.localtime(now))
        return await self._lib.call(name, self.prefix, repr(float(now)), day, *args)

    # -- configuration -------------------------------------------------------------------------

    async def apply_rules(self, rules: RoutingRules) -> None:
        """Sync queues/agents into Redis; waiting callers and agent states are kept."""
        res = await self._run("apply_rules", json.dumps(rules.to_json()))
        if res[0] != "ok":
            raise RoutingError(res[1])
        self.log.info("routing rules applied", queues=len(rules.queues), agents=len(rules.agents))

    async def current_rules(self) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.rules())
        return json.loads(raw) if raw else None

    # -- calls ---------------------------------------------------------------------------------

    async def enqueue(self, call: QueuedCall) -> None:
        """Queue a caller owned by this worker; a free agent who fits is offered at once (the offer
        arrives through next_offers). Raises QueueFull (with the queue's on_full fallback) or
        RoutingError (unknown queue, call id already queued by another worker)."""
        if not self._beats:   # registered in workers() before it owns a call: its crash is noticed
            await self.heartbeat()
        res = await self._run("enqueue", call.call_id, call.queue, json.dumps(call.skills or {}) or "{}",
                              int(call.priority), call.caller, json.dumps(call.attributes),
                              self.worker_id, repr(float(call.enqueued)) if call.enqueued else "")
        status: str = res[0]
        if status == "ok":
            return
        if status == "duplicate":
            # a retried script (connection lost after it ran) looks like this: same owner = done
            owner = await self.redis.hget(self.keys.call(call.call_id), "owner")
            if owner == self.worker_id:
                return
            raise RoutingError(f"call {call.call_id} is already queued")
        if status == "no_queue":
            raise RoutingError(f"unknown queue {call.queue!r}")
        raw = await self.redis.hget(self.keys.queue(call.queue), "on_full")
        fb = json.loads(raw) if raw else {"action": "voicemail"}
        raise QueueFull(call.queue, Fallback(fb.get("action", "voicemail"), fb.get("target")))

    async def next_offers(self, timeout: float = 1.0) -> list[Offer]:
        key = self.keys.worker_offers(self.worker_id)
        # one round trip: BLMPOP blocks for the first offer and takes up to 500 at once
        if timeout > 0:
            got = await self.redis.blmpop(timeout, 1, key, direction="LEFT", count=500)
        else:
            got = await self.redis.lmpop(1, key, direction="LEFT", count=500)
        raw = cast(list[str], got[1]) if got else []
        offers = []
        for item in raw:
            d = json.loads(item)
            if d["offer_id"] in self._taken:
                self.log.warning("offer handed out again (a Redis failover), ignored", offer=d["offer_id"],
                                 call_id=d["call_id"])
                continue
            self._taken[d["offer_id"]] = None
            if len(self._taken) > self.TAKEN_KEPT:
                del self._taken[next(iter(self._taken))]
            offers.append(Offer(d["offer_id"], d["call_id"], d["agent_id"], d.get("agent_uri") or "",
                                d["queue"], float(d["ring_timeout"]), d.get("kind", "call"),
                                d.get("callback_number") or None))
        return offers

    async def offer_answered(self, offer: Offer) -> bool:
        return bool(await self._run("offer_answered", offer.offer_id, offer.call_id))

    async def offer_failed(self, offer: Offer, reason: str) -> None:
        """The call goes back to its original place. Every reason but "withdrawn" and "unregistered" counts a
        miss for the agent; misses in a row up to the queue's miss_limit pause the agent (reason missed_offers).
        "unregistered" (the SIP edge has no phone for the agent) pauses the agent at once (reason no_phone)."""
        if reason not in OFFER_FAILURES:
            reason = "failed"
        await self._run("offer_failed", offer.offer_id, reason)

    async def call_finished(self, call_id: str, agent_id: str, talk_seconds: float) -> None:
        await self._run("call_finished", call_id, agent_id, repr(float(talk_seconds)))

    async def abandon(self, call_id: str) -> None:
        """Caller hung up. A call that left a callback stays queued (see cancel_callback)."""
        await self._run("abandon", call_id, "0")

    async def cancel_callback(self, call_id: str) -> None:
        await self._run("abandon", call_id, "1")

    async def request_callback(self, call_id: str, number: str) -> bool:
        """Keep the caller's place and call them back on ``number``. False if that number already has a
        callback pending, or the call is no longer waiting."""
        return bool(await self._run("callback", call_id, number) == "ok")

    async def position(self, call_id: str) -> int | None:
        queue = cast(str | None, await self.redis.hget(self.keys.call(call_id), "queue"))
        if queue is None:
            return None
        rank = cast(int | None, await self.redis.zrank(self.keys.waiting(queue), call_id))
        return None if rank is None else rank + 1

    async def estimated_wait(self, queue: str, call_id: str | None = None) -> float | None:
        """Seconds; None when no agent is staffed in the queue (nothing to estimate from)."""
        day_before = time.strftime("%Y%m%d", time.localtime(self.clock() - 86400))
        res = await self._run("ewt", queue, call_id or "", day_before)
        return float(res[0]) if res[0] else None

    async def announce(self, queue: str) -> Announce | None:
        """How the worker should keep a waiting caller informed (position every N s, EWT on/off)."""
        every, ewt = await self.redis.hmget(self.keys.queue(queue), ["announce_every", "announce_ewt"])
        if every is None:
            return None
        return Announce(float(every), ewt == "1")

    # -- liveness ------------------------------------------------------------------------------

    async def call_owner(self, call_id: str) -> str | None:
        """The worker holding a call's media while routing knows the call (queued, ringing, talking to an
        agent); None once it left routing (ended, or never queued)."""
        owner = await self.redis.hget(self.keys.call(call_id), "owner")
        return None if owner is None else str(owner)

    async def alive(self, worker_id: str) -> bool:
        """The worker heartbeats (within ``dead_after``); a dead one's calls are being closed out."""
        beat = await self.redis.zscore(self.keys.workers(), worker_id)
        return beat is not None and self.clock() - float(beat) <= self.dead_after

    async def claim(self, poll: float = 0.5) -> dict[str, str]:
        """Become the one live process using ``worker_id``, then close out what a previous run under
        that id left behind (its callers' media died with it; callbacks are kept). Call once at
        start, before taking calls. A previous holder that stopped heartbeating (a crash just before
        this restart) lapses within ``dead_after`` s, which this waits for; one that keeps
        heartbeating is another live process, and this raises RoutingError. Returns the calls closed
        out: call id -> direction (queued callers, and every call whose CDR the run held open)."""
        key = self.keys.worker_claim(self.worker_id)
        deadline = time.monotonic() + self.dead_after + 1.0
        while not await self.redis.set(key, self.token, px=self._claim_ms, nx=True):
            if time.monotonic() >= deadline:
                raise RoutingError(f"worker id {self.worker_id!r} is in use by another live process "
                                   f"(it heartbeats); give each worker its own worker.id")
            await asyncio.sleep(poll)
        raw = await self._run("restart", self.worker_id)
        closed: dict[str, str] = json.loads(raw)
        if closed:
            self.log.warning("closed out calls of this worker id's previous run", calls=len(closed))
        await self.heartbeat()
        return closed

    @property
    def _claim_ms(self) -> int:
        """The claim on the worker id lapses when heartbeats stop for dead_after: as a worker is deemed dead."""
        return max(1, int(self.dead_after * 1000))

    async def release(self) -> None:
        """Give up the worker id at a clean stop, so a restart need not wait for the claim to lapse."""
        key = self.keys.worker_claim(self.worker_id)
        if await self.redis.get(key) == self.token:
            await self.redis.delete(key)

    async def heartbeat(self) -> None:
        """Every ~2 s. Keeps this process's claim on the worker id, marks its Functions library as in
        use, and now and then deletes routing libraries of older deploys no live process uses."""
        now = self.clock()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.keys.workers(), {self.worker_id: now})
        pipe.zadd(self.keys.libs(), {scripts.library()[0]: time.time()})
        pipe.set(self.keys.worker_claim(self.worker_id), self.token, px=self._claim_ms, get=True)
        before = (await pipe.execute())[2]
        if before is not None and before != self.token:
            # two live processes with one worker id: offers and reaping would mix their callers
            self.log.error("worker id also claimed by another process", other=before)
        self._beats += 1
        if self._beats % 30 == 1:
            try:
                dropped = await self._lib.prune()
            except redis.RedisError as exc:   # housekeeping only: never fail a heartbeat for it
                self.log.warning("pruning old routing libraries failed", error=str(exc))
            else:
                if dropped:
                    self.log.info("deleted old routing libraries", libraries=dropped)

    async def tick(self) -> list[RoutingEvent]:
        """Escalations, wrap-up ends, lease expiry, matching retries and reaping of dead workers.
        Returns the events for this worker's calls; calls closed out (id -> direction) are in ``self.closed_out``
        and on the ``closed_calls`` stream."""
        res = await self._run("tick", self.worker_id, repr(float(self.dead_after)), 200)
        self.closed_out = json.loads(res[1]) if res[1] not in ("{}", "[]") else {}
        if self.closed_out:
            self.log.warning("closed out calls of dead workers", calls=len(self.closed_out))
        events = []
        for raw in res[0]:
            d = json.loads(raw)
            events.append(RoutingEvent(d.pop("kind"), d.pop("call_id", None), d))
        return events

    async def reap(self) -> dict[str, str]:
        """Run housekeeping now; the calls of dead workers it closed out (id -> direction)."""
        events = await self.tick()
        if events:   # not lost: hand them back on this worker's event list for the next tick()
            await self.redis.rpush(self.keys.worker_events(self.worker_id),
                                   *[json.dumps({"kind": e.kind, "call_id": e.call_id, **e.data})
                                     for e in events])
        return self.closed_out

    async def phones(self, registered: list[str], valid_for: float) -> tuple[int, int]:
        """The agents with a phone registered at the SIP edge, as a poll read them (routing/phones.py), valid
        for ``valid_for`` seconds: an agent with none is paused (no_phone) and never offered, one whose phone
        registered is made available again. Returns (made available, paused)."""
        res = await self._run("phones", repr(float(valid_for)), *registered)
        return int(res[0]), int(res[1])

    # -- agents --------------------------------------------------------------------------------

    async def _agent(self, agent_id: str, action: str, arg: str = "") -> str:
        res = await self._run("agent", agent_id, action, arg)
        status: str = res[0]
        if status == "no_agent":
            raise RoutingError(f"unknown agent {agent_id!r}")
        if status == "logged_out":
            raise RoutingError(f"agent {agent_id} is logged out")
        return str(res[1]) if status == "ok" else "pending"

    async def agent_login(self, agent_id: str, ready: bool = True) -> str:
        """Returns the new state ('available', or 'paused' with reason 'login' when not ready)."""
        return await self._agent(agent_id, "login", "1" if ready else "0")

    async def agent_logout(self, agent_id: str) -> str:
        """'logged_out', or 'pending' while on a call (applied when the call ends)."""
        return await self._agent(agent_id, "logout")

    async def agent_ready(self, agent_id: str) -> str:
        return await self._agent(agent_id, "ready")

    async def agent_pause(self, agent_id: str, reason: str) -> str:
        """'paused', or 'pending' while on a call or ringing (applied when it ends)."""
        return await self._agent(agent_id, "pause", reason)

    async def agent_wrap_up(self, agent_id: str, talk_seconds: float, wrapup: float | None = None) -> str:
        """An agent's own call (click-to-call) or a transfer's (calls/transfer.py) ended: counted as a handled call
        and after-call work for ``wrapup`` seconds (None: the longest wrap-up of its queues), as after a queue
        call; then free. Only from the 'outbound' or 'transfer' pause the call put it in (else its state is
        left as it is)."""
        wrap = "" if wrapup is None else f"{wrapup:.3f}"
        return await self._agent(agent_id, "wrap_up", f"{max(0.0, talk_seconds):.3f}|{wrap}")

    async def set_skills(self, agent_id: str, skills: dict[str, int]) -> str:
        if len(skills) > MAX_SKILLS:
            raise RoutingError(f"{len(skills)} skills; at most {MAX_SKILLS}")
        for name, level in skills.items():
            problem = skill_problem(name, level)
            if problem:
                raise RoutingError(f"skill {str(name)[:40]}: {problem}")
        return await self._agent(agent_id, "set_skills", json.dumps(skills) if skills else "{}")

    async def agent_info(self, agent_id: str) -> dict[str, Any] | None:
        h = cast(dict[str, str], await self.redis.hgetall(self.keys.agent(agent_id)))
        if not h:
            return None
        pauses = cast(dict[str, str], await self.redis.hgetall(self.keys.pauses(agent_id)))
        limits = cast(dict[str, str], await self.redis.hgetall(self.keys.pause_rules()))
        return agent_view(agent_id, h, pauses, self.clock(), limits)

    async def agents(self) -> list[dict[str, Any]]:
        ids = sorted(cast(set[str], await self.redis.smembers(self.keys.agents())))
        pipe = self.redis.pipeline(transaction=False)
        for a in ids:
            pipe.hgetall(self.keys.agent(a))
            pipe.hgetall(self.keys.pauses(a))
        pipe.hgetall(self.keys.pause_rules())
        res = await pipe.execute()
        now = self.clock()
        limits = res[-1]
        return [agent_view(a, res[2 * i], res[2 * i + 1], now, limits)
                for i, a in enumerate(ids) if res[2 * i]]

    async def free_agents(self, queue: str) -> int:
        """Agents free for the queue, read now (the dialer's pacing: one reserved a moment ago is not free)."""
        return int(await self.redis.zcard(self.keys.free(queue)))

    async def busy_agents(self, queue: str) -> int:
        """Members of the queue reserved, on a call or in wrap-up (predictive pacing's 'busy')."""
        members = cast(set[str], await self.redis.smembers(self.keys.members(queue)))
        if not members:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for a in members:
            pipe.hget(self.keys.agent(a), "state")
        states = await pipe.execute()
        return sum(1 for st in states if st in BUSY_STATES)


def pause_limit(pause_rules: dict[str, str], reason: str | None) -> float:
    """Seconds a pause of ``reason`` may last (the ``pause_rules`` hash); 0 = no limit."""
    raw = pause_rules.get(reason or "")
    try:
        return float(raw.split("|")[0]) if raw else 0.0
    except ValueError:
        return 0.0


def agent_view(agent_id: str, h: dict[str, Any], pauses: dict[str, Any], now: float,
               pause_rules: dict[str, str] | None = None) -> dict[str, Any]:
    """The public (API) shape of an agent hash. ``pause_overdue``: paused longer than its reason's
    ``defaults.pause_reasons`` max (pass the ``pause_rules`` hash)."""
    state = h.get("state", "logged_out")
    in_state = max(0.0, now - float(h.get("since") or now))
    limit = pause_limit(pause_rules or {}, h.get("pause_reason")) if state == "paused" else 0.0
    return {
        "pause_limit_seconds": limit or None,
        "pause_overdue": bool(limit) and in_state > limit,
        "id": agent_id, "name": h.get("name"), "uri": h.get("uri"), "state": h.get("state", "logged_out"),
        "state_seconds": round(max(0.0, now - float(h.get("since") or now)), 1),
        "pause_reason": h.get("pause_reason"), "pending": h.get("pending"),
        "skills": json.loads(h.get("skills") or "{}"), "queues": json.loads(h.get("queues") or "{}"),
        "call_id": h.get("call"), "calls": int(h.get("calls") or 0),
        "talk_seconds": round(float(h.get("talk") or 0), 1), "misses": int(h.get("misses") or 0),
        "pause_seconds": {k: round(float(v), 1) for k, v in pauses.items()},
    }
