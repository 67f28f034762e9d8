"""Agent click-to-call: ``POST /agents/{id}/dial`` (``api/dial.py``) -> :meth:`ClickToCall.dial`.

The number is judged before anything rings (:meth:`ClickToCall.check`): the dial policy
(``dialer.policy``: E.164, classes, denied prefixes, the global DNC list), the calling window in the
callee's local time (``dialer.campaign.in_calling_window``) and the per-number cap of a cap group
(``dialer.compliance.Compliance.number_cap``; a campaign's group shares its cap), all set in the
``click_to_call`` config section; the caller id must be one of the configured list. The cap is checked
again and counted just before the customer is dialed. Then the agent is marked busy in routing (paused
"outbound", as the preview desk does, so the ACD offers it nothing meanwhile), its phone rings first, and
only when it answers is the customer dialed through :class:`~callcenter.calls.outbound.OutboundCalls`
(the CDR: direction outbound, the agent, outcome, talk seconds) and bridged to it. When the call ends the agent goes back to
the ACD: after a conversation through after-call work, as after a queue call (``Router.agent_wrap_up``: the
call counted, ``wrap_up`` for ``click_to_call.wrapup`` seconds, default the longest wrap-up of its queues),
else at once; an agent that was paused before stays paused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter import logs
from callcenter.calls.outbound import OutboundCalls, back_to_acd, hangup
from callcenter.config import ClickToCallSettings
from callcenter.dialer import phone
from callcenter.dialer.campaign import PRESETS, in_calling_window
from callcenter.dialer.compliance import Compliance
from callcenter.dialer.policy import DialPolicy
from callcenter.exceptions import CallGone, TelephonyError
from callcenter.metrics import CLICK_TO_CALL_TOTAL
from callcenter.routing.router import Router
from callcenter.tasks import TaskSet
from callcenter.telephony.api import Leg, OriginateResult, Softswitch

log = logs.get("calls.click_to_call")

PURPOSE = "click_to_call"      # the dial policy's purpose label


class Refused(Exception):
    """A dial not placed: ``status`` for the API, ``rule`` names what refused it."""

    def __init__(self, status: int, rule: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule


def in_window(settings: ClickToCallSettings, e164: str, now: float) -> bool:
    """Whether ``now`` is inside the calling hours in the callee's local time (its country's zone, else
    the configured one)."""
    zone = ZoneInfo("UTC")
    for name in (phone.country_time_zone(e164), settings.time_zone):
        if name:
            try:
                zone = ZoneInfo(name)
                break
            except (ZoneInfoNotFoundError, ValueError):
                continue
    policy = replace(PRESETS["vn_advertising"], calling_hours=settings.calling_hours,
                     weekdays=frozenset(range(7)), holidays=frozenset())
    return in_calling_window(policy, dt.datetime.fromtimestamp(now, zone))


@dataclass(frozen=True)
class Dial:
    id: str
    agent: str
    e164: str
    caller_id: str


class ClickToCall:
    def __init__(self, settings: ClickToCallSettings, caller_ids: tuple[str, ...], calls: OutboundCalls,
                 switch: Softswitch, router: Router, policy: DialPolicy, compliance: Compliance, *,
                 trunk: str = "") -> None:
        self.settings = settings
        self.caller_ids = caller_ids      # the list a request chooses from
        self.calls = calls                # the customer's leg: dialed and recorded like every outbound call
        self.switch = switch              # the agent's leg: a phone of ours, no call record of its own
        self.router = router
        self.policy = policy
        self.compliance = compliance      # the per-number cap
        self.trunk = trunk
        self.busy: set[str] = set()       # agents with a click-to-call under way on this worker
        self.talked: dict[str, float] = {}  # dial id -> talk seconds of its conversation (for the wrap-up)
        self.tasks = TaskSet()

    async def check(self, number: object, caller_id: object, now: float | None = None) -> str:
        """The E.164 to dial, or :class:`Refused` naming the rule."""
        if not isinstance(caller_id, str) or caller_id not in self.caller_ids:
            raise Refused(400, "caller_id", f"caller_id must be one of the configured list: {', '.join(self.caller_ids)}")
        if not isinstance(number, str) or not number or len(number) > 32:
            raise Refused(400, "invalid", "number: expected a phone number (a string of at most 32 characters)")
        d = await self.policy.check(number, PURPOSE)
        if not d.ok or d.e164 is None:
            status = 400 if d.reason == "invalid" else 403
            words = {"dnc": "the number is on the do-not-call list", "invalid": f"not a phone number ({d.detail})",
                     "denied_prefix": "the number's prefix is denied (dialing.denied_prefixes)"}
            raise Refused(status, d.reason, f"not dialed: {words.get(d.reason, f'{d.reason} numbers are not allowed (dialing config)')}")
        if not in_window(self.settings, d.e164, time.time() if now is None else now):
            DialPolicy.refused(replace(d, ok=False, reason="outside_window"), PURPOSE, d.e164)
            raise Refused(403, "outside_window", "not dialed: outside the calling hours in the callee's local time "
                                                 "(click_to_call.calling_hours)")
        if await self._capped(d.e164, count=False):
            DialPolicy.refused(replace(d, ok=False, reason="number_cap"), PURPOSE, d.e164)
            s = self.settings
            raise Refused(403, "number_cap", f"not dialed: the number was called {s.max_calls_per_number} time(s) "
                                             f"in the last {s.cap_window:g} s (click_to_call.max_calls_per_number)")
        return d.e164

    async def _capped(self, e164: str, *, count: bool) -> bool:
        s = self.settings
        return await self.compliance.number_cap(s.cap_group, e164, time.time(), s.max_calls_per_number,
                                                s.cap_window, count=count) is not None

    async def dial(self, agent: str, number: object, caller_id: object) -> Dial:
        """Check, mark the agent busy and start the call in the background (agent's phone first)."""
        e164 = await self.check(number, caller_id)
        if agent in self.busy:
            raise Refused(409, "agent_busy", f"agent {agent} is already on a click-to-call")
        info = await self.router.agent_info(agent)
        if info is None or not info.get("uri"):
            raise Refused(404, "unknown_agent", f"unknown agent {agent}")
        state = str(info.get("state") or "logged_out")
        if state not in ("available", "paused"):
            raise Refused(409, "agent_state", f"agent {agent} is {state}: cannot dial")
        if state == "available":
            # Out of the ACD for the call: no queue offer may ring the same phone meanwhile.
            got = await self.router.agent_pause(agent, "outbound")
            if got != "paused":   # an offer reached it first ('pending': applied after that call)
                with contextlib.suppress(Exception):
                    await self.router.agent_ready(agent)
                raise Refused(409, "agent_state", f"agent {agent} was just offered a call: cannot dial")
        assert isinstance(caller_id, str)
        job = Dial(uuid.uuid4().hex, agent, e164, caller_id)
        self.busy.add(agent)
        log.info("click-to-call", dial_id=job.id, agent=agent, number=e164, caller_id=caller_id)
        self.tasks.spawn(self._call(job, str(info["uri"]), state), "click-to-call")
        return job

    async def _call(self, job: Dial, agent_uri: str, prev_state: str) -> None:
        result = "failed"
        try:
            result = await self._agent_first(job, agent_uri)
        finally:
            self.busy.discard(job.agent)
            CLICK_TO_CALL_TOTAL.labels(result=result).inc()
            await back_to_acd(self.router, job.agent, prev_state, self.talked.pop(job.id, None), self.settings.wrapup)

    async def _agent_first(self, job: Dial, agent_uri: str) -> str:
        try:
            res, agent_leg = await self.switch.originate(
                agent_uri, job.caller_id, self.settings.agent_ring_timeout,
                headers={"X-CC-Click-To-Call": phone.national(job.e164)})
        except (TelephonyError, CallGone) as exc:
            log.warning("click-to-call: agent phone failed", dial_id=job.id, agent=job.agent, error=str(exc))
            res, agent_leg = OriginateResult.FAILED, None
        if res is not OriginateResult.ANSWERED or agent_leg is None:
            log.info("click-to-call: agent did not answer, customer not dialed", dial_id=job.id, agent=job.agent,
                     result=res.value)
            return "agent_" + res.value
        log.info("click-to-call: agent answered", dial_id=job.id, agent=job.agent, agent_leg=agent_leg.id)
        try:
            return await self._customer(job, agent_leg)
        finally:
            await hangup(agent_leg)

    async def _customer(self, job: Dial, agent_leg: Leg) -> str:
        if await self._capped(job.e164, count=True):   # another dial reached the cap while the agent's phone rang
            log.warning("click-to-call: number cap reached meanwhile, customer not dialed", dial_id=job.id,
                        agent=job.agent, number=job.e164)
            return "customer_number_cap"
        uri = f"sip:{job.e164.lstrip('+')}@{self.trunk or '127.0.0.1'}"
        try:
            result, leg = await self.calls.originate(uri, job.caller_id, self.settings.ring_timeout,
                                                     headers={"X-CC-Click-To-Call": job.id})
        except (TelephonyError, CallGone) as exc:
            log.warning("click-to-call: originate failed", dial_id=job.id, number=job.e164, error=str(exc))
            result, leg = OriginateResult.FAILED, None
        if result is not OriginateResult.ANSWERED or leg is None:
            # OutboundCalls wrote the unanswered attempt's record
            log.info("click-to-call: customer not answered", dial_id=job.id, agent=job.agent, result=result.value)
            return "customer_" + result.value
        now = time.time()
        rec = self.calls.live.records.get(leg.id)
        if rec is not None:
            rec.agent_id, rec.agent_answer, rec.wait_seconds, rec.outcome = job.agent, now, 0.0, "answered"
        log.info("click-to-call: bridged", dial_id=job.id, call_id=leg.id, agent=job.agent, agent_leg=agent_leg.id)
        await self.calls.talk(leg, agent_leg, rec, now)
        self.talked[job.id] = time.time() - now
        log.info("click-to-call: ended", dial_id=job.id, call_id=leg.id, agent=job.agent,
                 hangup_side=rec.hangup_side if rec is not None else None)
        return "answered"

    async def close(self, grace: float) -> None:
        await self.tasks.drain(grace)
