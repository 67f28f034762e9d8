"""The dial loop.

Decisions are separate from SIP: :class:`DialPlanner.next_dials` (pacing + compliance + lease,
Redis-backed) says who to call now, :meth:`DialerEngine.handle_result` says what an originate
result means for the contact. :class:`DialerEngine` only glues them to a ``Softswitch``.

Crash safety: a contact being dialed is leased to this dialer process (``reserve.lua``). The
process heartbeats in Redis; when one stops heartbeating, any other dialer resolves its leases
as outcome 'unknown' and retries them later (``recover.lua``) -- never while the owner lives,
so no number is ever dialed twice at once. A dialer id is stable across restarts of its worker
(``<worker id>-dialer``): on start, leases still held under its own id are from its previous,
killed run and are resolved at once, without waiting for the heartbeat to go stale.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter import logs
from callcenter.calls.outcome import attempt_outcome
from callcenter.dialer import phone
from callcenter.dialer.campaign import Campaign
from callcenter.dialer.compliance import Compliance, window_check
from callcenter.dialer.control import CampaignControl
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.ledger import AbandonLedger, throttle
from callcenter.dialer.outcomes import Decision, OutcomeRecorder, decide
from callcenter.dialer.pacing import PacingInput, PacingStats, predictive_dials, progressive_dials
from callcenter.dialer.policy import DialPolicy
from callcenter.dialer.scripts import script
from callcenter.exceptions import CallGone, TelephonyError
from callcenter.metrics import (
    DIALER_ATTEMPTS_TOTAL,
    DIALER_DROPPED_TOTAL,
    DIALER_LINES_IN_USE,
    DIALER_PACING_RATIO,
)
from callcenter.tasks import TaskSet
from callcenter.telephony.api import Leg, OriginateResult, Softswitch

log = logs.get("dialer")

HEARTBEAT_EVERY = 2.0
DEAD_AFTER = 15.0


@dataclass(frozen=True)
class DialRequest:
    """One reserved dial: the contact (E.164 + list columns) and how to call it."""

    campaign_id: str
    e164: str
    uri: str
    caller_id: str
    attempt: int
    ring_timeout: float
    data: Mapping[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        """What IVR flows and the agent screen see: list columns plus phone and campaign."""
        return {**self.data, "phone": self.e164, "phone_national": phone.national(self.e164),
                "campaign": self.campaign_id, "attempt": str(self.attempt)}


@dataclass
class CampaignStats:
    """Live, per-process view the pacing needs."""

    pacing: PacingStats
    in_flight: int = 0
    # Answered, not yet handed to an agent (AMD, then the 2 s grace): each one will take a free
    # agent, so pacing counts it against the free agents -- else progressive over-dials.
    awaiting_agent: int = 0
    busy_agents: int = 0
    in_ivr: int = 0         # agentless: answered calls still in their IVR flow (lines in use)


def dial_uri(campaign: Campaign, e164: str) -> str:
    return campaign.dial_uri.format(number=e164.lstrip("+"), e164=e164, national=phone.national(e164))


def dial_count(campaign: Campaign, free_agents: int, stats: CampaignStats, target: float) -> int:
    """How many new calls the campaign's dial mode wants now (pure)."""
    mode = campaign.dial_mode
    free_agents = max(0, free_agents - stats.awaiting_agent)
    if mode == "preview":
        return 0                                  # agents pull records one by one
    if mode == "agentless":
        return max(0, campaign.pacing.max_concurrent - stats.in_flight - stats.in_ivr)
    if mode == "progressive":
        return progressive_dials(free_agents, stats.in_flight)
    p = stats.pacing
    return predictive_dials(PacingInput(free_agents, stats.busy_agents, stats.in_flight, p.cautious_answer_rate,
                                        p.aht + campaign.pacing.wrapup, p.answer_delay, target,
                                        campaign.compliance.abandon_grace, campaign.pacing.max_dial_ratio))


class DialPlanner:
    """Who to dial now, for one campaign: pacing, then compliance and lease per contact (atomic)."""

    def __init__(self, redis: Any, keys: DialerKeys, campaign: Campaign, dialer_id: str) -> None:
        self.redis = redis
        self.keys = keys
        self.campaign = campaign
        self.dialer_id = dialer_id
        self.compliance = Compliance(redis, keys)
        self.ledger = AbandonLedger(redis, keys)

    async def target(self, now: float) -> float:
        view = await self.ledger.view(self.campaign.id, now, self.campaign.compliance.abandon_window_days)
        return throttle(self.campaign, view)

    async def next_dials(self, now: float, free_agents: int, stats: CampaignStats) -> list[DialRequest]:
        c = self.campaign
        if await self.redis.hget(self.keys.campaign_state(c.id), "state") != "running":
            return []
        want = dial_count(c, free_agents, stats, await self.target(now) if c.dial_mode == "predictive" else 0.0)
        return await self.reserve(now, want)

    async def reserve(self, now: float, want: int) -> list[DialRequest]:
        """Reserve up to ``want`` due contacts. Blocked ones are rescheduled or closed by the rules."""
        out: list[DialRequest] = []
        c = self.campaign
        offset = 0
        for _round in range(5):
            if len(out) >= want:
                break
            batch = max(10, 2 * (want - len(out)))
            due = await self.redis.zrangebyscore(self.keys.due(c.id), "-inf", now, start=offset, num=batch)
            if not due:
                break
            pipe = self.redis.pipeline(transaction=False)
            for m in due:
                pipe.hget(self.keys.contact(c.id, m), "data")
            datas = await pipe.execute()
            kept_in_due = 0
            for m, raw in zip(due, datas, strict=True):
                if len(out) >= want:
                    break
                e164: str = m
                data = _json(raw)
                res = await self.compliance.reserve(c, e164, now, self.dialer_id, data.get("timezone") or None)
                if res.ok:
                    out.append(DialRequest(c.id, e164, dial_uri(c, e164), c.caller_id, res.attempt,
                                           c.pacing.ring_timeout, data))
                elif res.reason.startswith("campaign_"):
                    return out                    # paused or stopped between two reservations
                elif res.retry_at is None and res.reason == "outside_window":
                    kept_in_due += 1
            offset += kept_in_due
            if len(due) < batch:
                break
        return out


class DialerEngine:
    """Runs every running campaign: paces, reserves, originates, hands answered calls over.

    ``connect_agent(leg, contact, campaign) -> bool`` must hand the answered leg to a free agent of
    ``campaign.queue`` and return True, or return False when none is free; the engine gives it the
    compliance grace (2 s) and then plays the identification message and counts an abandon.
    ``run_ivr(leg, flow, variables)`` runs an IVR flow on the leg until it ends; it may return a
    dict with ``disposition`` (and details such as amount/date/at) to close or reschedule the contact.
    ``free_agents(queue)`` / ``busy_agents(queue)`` report agent availability (the Router); they may
    be coroutines, and should read Redis now rather than a cache (a stale "free" over-dials).
    ``amd(leg) -> bool`` says whether a machine answered (see ``dialer.amd.classify``).
    """

    def __init__(self, redis_async: Any, softswitch: Softswitch, campaigns: Mapping[str, Campaign],
                 connect_agent: Callable[[Leg, DialRequest, Campaign], Awaitable[bool]],
                 run_ivr: Callable[[Leg, str, dict[str, str]], Awaitable[Any]], prefix: str = "cc:", *,
                 free_agents: Callable[[str], int | Awaitable[int]] | None = None,
                 busy_agents: Callable[[str], int | Awaitable[int]] | None = None,
                 amd: Callable[[Leg], Awaitable[bool]] | None = None,
                 dialer_id: str | None = None, tick: float = 0.5,
                 clock: Callable[[], float] = time.time, policy: DialPolicy | None = None) -> None:
        self.redis = redis_async
        self.softswitch = softswitch
        self.campaigns = dict(campaigns)
        self.connect_agent = connect_agent
        self.run_ivr = run_ivr
        self.keys = DialerKeys(prefix)
        self.free_agents = free_agents or (lambda _q: 0)
        self.busy_agents = busy_agents
        self.amd = amd
        self.dialer_id = dialer_id or uuid.uuid4().hex[:12]
        self.tick = tick
        self.clock = clock
        self.policy = policy or DialPolicy(redis=redis_async, keys=self.keys)
        self.control = CampaignControl(redis_async, self.keys)
        self.recorder = OutcomeRecorder(redis_async, self.keys)
        self.ledger = AbandonLedger(redis_async, self.keys)
        self.planners = {cid: DialPlanner(redis_async, self.keys, c, self.dialer_id)
                         for cid, c in self.campaigns.items()}
        self.stats = {cid: CampaignStats(PacingStats(c.pacing.initial_answer_rate, c.pacing.expected_aht))
                      for cid, c in self.campaigns.items()}
        self._dialing = TaskSet()      # dials until their outcome is recorded: shutdown waits for them
        self._connected = TaskSet()    # calls an agent took: watched for pacing, cancelled at shutdown
        self.log = log.bind(dialer=self.dialer_id)

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self, stop_event: asyncio.Event) -> None:
        n = await self._recover(self.dialer_id)
        if n:
            self.log.warning("resolved leases of this dialer's previous run", released=n)
        await self.heartbeat()
        await self.recover_dead()
        last_beat = self.clock()
        self.log.info("dialer started", campaigns=list(self.campaigns))
        try:
            while not stop_event.is_set():
                now = self.clock()
                if now - last_beat >= HEARTBEAT_EVERY:
                    await self.heartbeat()
                    await self.recover_dead()
                    last_beat = now
                for cid in list(self.campaigns):
                    try:
                        await self.step(cid, now)
                    except Exception:  # one campaign's failure must not stop the others
                        self.log.exception("dial step failed", campaign=cid)
                try:
                    await asyncio.wait_for(stop_event.wait(), self.tick)
                except TimeoutError:
                    pass
        finally:
            await self._drain()

    async def _drain(self) -> None:
        """Stop: let ringing calls resolve (their outcomes get recorded), cancel what is left."""
        ring = max((c.pacing.ring_timeout for c in self.campaigns.values()), default=30.0)
        await self._dialing.drain(ring + 5)
        await self._connected.drain(0)
        await self.redis.zrem(self.keys.dialers(), self.dialer_id)
        self.log.info("dialer stopped")

    async def heartbeat(self) -> None:
        await self.redis.zadd(self.keys.dialers(), {self.dialer_id: self.clock()})

    async def recover_dead(self, dead_after: float = DEAD_AFTER) -> int:
        """Resolve leases of dialer processes that stopped heartbeating. Returns contacts released."""
        now = self.clock()
        dead = await self.redis.zrangebyscore(self.keys.dialers(), "-inf", now - dead_after)
        total = 0
        for other in dead:
            if other == self.dialer_id:
                continue
            n = await self._recover(other)
            total += n
            self.log.warning("recovered leases of a dead dialer", dead_dialer=other, released=n)
        return total

    async def _recover(self, other: str) -> int:
        """Resolve every lease of dialer ``other`` as outcome 'unknown' (retried later)."""
        now = self.clock()
        members = list(await self.redis.smembers(self.keys.leases(other)))
        keys = [self.keys.leases(other), self.keys.dialers()]
        args: list[Any] = [other, ""]
        retry_at = now
        for m in members:
            cid, e164 = self.keys.split_lease(m)
            keys += [self.keys.contact(cid, e164), self.keys.due(cid)]
            args += [e164, m]
            camp = self.campaigns.get(cid)
            delay = camp.retry.delay("unknown") if camp else None
            retry_at = max(retry_at, now + (delay if delay is not None else 1800.0))
        args[1] = repr(retry_at)
        return int(await script(self.redis, "recover")(keys=keys, args=args))

    # -- decisions ---------------------------------------------------------------------------
    async def step(self, campaign_id: str, now: float) -> list[DialRequest]:
        c = self.campaigns[campaign_id]
        st = self.stats[campaign_id]
        # Calls in flight are counted BEFORE agents are read: a call whose agent gets reserved while
        # we await Redis is then either still counted here or already gone from the free set.
        snap = copy.copy(st)
        if c.queue:
            # Campaigns sharing a queue share its agents: count every one's calls in flight.
            peers = [self.stats[o] for o, oc in self.campaigns.items() if oc.queue == c.queue and o != campaign_id
                     and oc.dial_mode != "agentless"]
            snap.in_flight += sum(p.in_flight for p in peers)
            snap.awaiting_agent += sum(p.awaiting_agent for p in peers)
        free = await _value(self.free_agents(c.queue)) if c.queue else 0
        if self.busy_agents and c.queue:
            st.busy_agents = snap.busy_agents = await _value(self.busy_agents(c.queue))
        reqs = await self.planners[campaign_id].next_dials(now, free, snap)
        if c.queue and c.dial_mode in ("progressive", "predictive"):
            DIALER_PACING_RATIO.labels(c.id).set((st.in_flight + len(reqs)) / free if free else 0.0)
        for req in reqs:
            self._spawn(self.dial(req))
        return reqs

    async def preview_next(self, campaign_id: str) -> DialRequest | None:
        """Preview mode: reserve the next contact for an agent to look at; dial it with :meth:`dial`."""
        reqs = await self.planners[campaign_id].reserve(self.clock(), 1)
        return reqs[0] if reqs else None

    async def preview_recheck(self, req: DialRequest) -> str | None:
        """A previewed record is dialed minutes after it was reserved: the number may have gone on a
        DNC list, or the callee's calling window closed, meanwhile. Checked again at dial time; when it
        no longer passes, the record is resolved (DNC: closed as dnc; window: back in the list for when
        the window opens) and the reason returned. None: dial it."""
        c = self.campaigns[req.campaign_id]
        now = self.clock()
        refused = await self._policy_refusal(c, req)
        if refused:
            return refused
        comp = self.planners[req.campaign_id].compliance
        if await comp.is_dnc(req.e164, c.id):
            await self.recorder.apply(c, req.e164, "blocked_dnc", Decision("dnc"), now, self.dialer_id)
            comp.blocked(c, req.e164, "dnc")
            return "dnc"
        opens = window_check(c, req.e164, now, req.data.get("timezone") or None)
        if opens is not None:
            state = Decision("pending", opens) if opens != float("inf") else Decision("exhausted")
            await self.recorder.apply(c, req.e164, "blocked_window", state, now, self.dialer_id)
            comp.blocked(c, req.e164, "outside_window")
            return "outside_window"
        return None

    async def preview_skip(self, req: DialRequest) -> None:
        """The agent chose not to call: release the lease and retry after the 'unknown' delay. The
        reservation still counts toward attempts and the per-number cap (it cannot be undone safely)."""
        c = self.campaigns[req.campaign_id]
        d = decide(c, "unknown", req.attempt, self.clock())
        await self.recorder.apply(c, req.e164, "skipped", d, self.clock(), self.dialer_id)

    async def handle_result(self, req: DialRequest, outcome: str, now: float) -> None:
        """Record a non-conversation outcome (busy, no answer, machine, abandoned...) and reschedule."""
        c = self.campaigns[req.campaign_id]
        d = decide(c, outcome, req.attempt, now)
        await self.recorder.apply(c, req.e164, outcome, d, now, self.dialer_id)
        DIALER_ATTEMPTS_TOTAL.labels(c.id, outcome).inc()
        self.log.info("dial outcome", campaign=c.id, number=req.e164, outcome=outcome, next_state=d.state,
                      attempt=req.attempt)

    async def dispose(self, campaign_id: str, e164: str, disposition: str,
                      details: dict[str, Any] | None = None) -> None:
        """An agent's or IVR's disposition (sale, promise_to_pay, callback, wrong_number, dnc...)."""
        await self.recorder.dispose(self.campaigns[campaign_id], e164, disposition, self.clock(), details)

    # -- calls -------------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[None]) -> None:
        self._dialing.spawn(coro, "dial", dialer=self.dialer_id)

    async def _policy_refusal(self, c: Campaign, req: DialRequest) -> str | None:
        """The dial policy's class rules (premium, international...) for a reserved contact: list numbers
        were normalised at upload, but the site's rules or the campaign's may have changed since. A
        refused contact is closed as invalid (its lease released); the reason is returned."""
        d = self.policy.judge(req.e164, self.policy.campaign_rules(c), c.region)
        if d.ok:
            return None
        self.policy.refused(d, "campaign", req.e164, campaign=c.id)
        await self.recorder.apply(c, req.e164, f"blocked_{d.reason}", Decision("invalid"), self.clock(),
                                  self.dialer_id)
        return d.reason

    async def dial(self, req: DialRequest) -> None:
        c = self.campaigns[req.campaign_id]
        if await self._policy_refusal(c, req):
            return
        st = self.stats[c.id]
        st.in_flight += 1
        lines = DIALER_LINES_IN_USE.labels(c.id)
        lines.inc()
        t0 = self.clock()
        answered = False
        try:
            try:
                result, leg = await self.softswitch.originate(
                    req.uri, req.caller_id, req.ring_timeout,
                    headers={"X-CC-Campaign": c.id, "X-CC-Attempt": str(req.attempt)})
            except asyncio.CancelledError:
                lines.dec()
                await asyncio.shield(self.handle_result(req, "unknown", self.clock()))
                raise
            except Exception as exc:  # noqa: BLE001 - a SIP stack error is a failed attempt, lease released
                self.log.warning("originate failed", campaign=c.id, number=req.e164, error=str(exc))
                result, leg = OriginateResult.FAILED, None
            answered = result is OriginateResult.ANSWERED and leg is not None
            st.pacing.dial_resolved(answered, self.clock() - t0 if answered else None)
            if answered and c.dial_mode != "agentless":
                st.awaiting_agent += 1            # no await between this and in_flight -= 1
        finally:
            st.in_flight -= 1
        if not answered or leg is None:
            lines.dec()
            await self.handle_result(req, attempt_outcome(result), self.clock())
            return
        hold = _AwaitingAgent(st, c.dial_mode != "agentless")
        try:
            await self._answered(c, req, leg, hold)
        except CallGone:
            self.log.info("callee hung up", campaign=c.id, number=req.e164)
        except Exception:  # a failed call must not kill the dial loop
            self.log.exception("answered call failed", campaign=c.id, number=req.e164)
            await self._hangup(leg)
        finally:
            hold.release()
            lines.dec()

    async def _answered(self, c: Campaign, req: DialRequest, leg: Leg, hold: _AwaitingAgent) -> None:
        if c.amd_enabled and self.amd is not None and await self.amd(leg):
            hold.release()
            await self.handle_result(req, "answered_machine", self.clock())
            # Per campaign: leave a message (an IVR flow, or one recorded prompt) or hang up.
            if c.machine_flow:
                await self.run_ivr(leg, c.machine_flow, req.variables())
                await self._hangup(leg)
            else:
                await self._play_and_hang_up(leg, c.machine_prompt)
            return
        now = self.clock()
        if c.dial_mode == "agentless":
            await self.ledger.record(c.id, now, abandoned=False)
            await self.handle_result(req, "answered_human", now)
            st = self.stats[c.id]
            st.in_ivr += 1
            try:
                result = await self.run_ivr(leg, c.ivr_flow or "", req.variables())
            finally:
                st.in_ivr -= 1
            disp = result.get("disposition") if isinstance(result, dict) else None
            details = {k: v for k, v in result.items() if k != "disposition"} if isinstance(result, dict) else {}
            try:
                await self.dispose(c.id, req.e164, disp or "completed", details)
            except ValueError as exc:
                self.log.warning("bad disposition from IVR", campaign=c.id, error=str(exc))
                await self.dispose(c.id, req.e164, "completed")
            await self._hangup(leg)
            return
        try:
            ok = await asyncio.wait_for(self.connect_agent(leg, req, c), c.compliance.abandon_grace)
        except TimeoutError:
            ok = False
        hold.release()             # the agent (if any) has left the free set by now
        now = self.clock()
        await self.ledger.record(c.id, now, abandoned=not ok)
        if not ok:
            DIALER_DROPPED_TOTAL.labels(c.id).inc()
            await self.handle_result(req, "abandoned", now)
            self.log.warning("call abandoned: no agent within grace", campaign=c.id, number=req.e164)
            await self._play_and_hang_up(leg, c.abandon_prompt)
            return
        await self.handle_result(req, "answered_human", now)
        # The agent owns the call now; watch it apart from the dial tasks (shutdown does not wait on it).
        self._connected.spawn(self._watch_connected(c, leg, now), "watch connected call", dialer=self.dialer_id)

    async def _watch_connected(self, c: Campaign, leg: Leg, since: float) -> None:
        """Measure handle time for pacing; count the agent busy when no ``busy_agents`` callable is given."""
        st = self.stats[c.id]
        if self.busy_agents is None:
            st.busy_agents += 1
        try:
            await leg.wait_ended()
            st.pacing.handled(self.clock() - since)
        except Exception:  # noqa: BLE001 - a leg error only loses one AHT sample
            self.log.warning("could not watch connected call", campaign=c.id)
        finally:
            if self.busy_agents is None:
                st.busy_agents -= 1

    @staticmethod
    async def _hangup(leg: Leg) -> None:
        try:
            await leg.hangup()
        except TelephonyError:
            pass

    @classmethod
    async def _play_and_hang_up(cls, leg: Leg, prompt: str | None) -> None:
        """Play ``prompt`` (if any) to the callee, then hang up; a callee who hung up during it is gone."""
        if prompt:
            try:
                await leg.play([prompt], barge_in=False)
            except CallGone:
                return
        await cls._hangup(leg)


class _AwaitingAgent:
    """Counts one answered call in ``CampaignStats.awaiting_agent`` until it reached an agent or not."""

    def __init__(self, st: CampaignStats, held: bool) -> None:
        self.st = st
        self.held = held

    def release(self) -> None:
        if self.held:
            self.held = False
            self.st.awaiting_agent -= 1


async def _value(v: int | Awaitable[int]) -> int:
    return int(await v) if inspect.isawaitable(v) else int(v)


def _json(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        v = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else {}
