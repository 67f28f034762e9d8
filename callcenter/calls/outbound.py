"""The outbound call wrapper: every call the dialer places goes through :class:`OutboundCalls`, which
dials on the worker's softswitch and leaves a CallRecord (direction "outbound", campaign, outcome) and a
LegRecord per attempt, answered or not, so outbound KPIs come from the same store as inbound ones.

It is also the engine's side of an answered call (``dialer.engine.DialerEngine``'s callables): hand the
customer to an agent of the campaign's queue (``calls.queueing``, within the 2 s compliance grace), or run
the campaign's IVR flow, whose events become the contact's disposition.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aredis

from callcenter import logs
from callcenter.calls.outcome import first_to_end, hangup_cause, hangup_side, record_outcome
from callcenter.calls.queueing import Queueing
from callcenter.calls.records import LiveCalls, call_record, leg_record
from callcenter.calls.services import CALL_EVENTS
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.dispositions import disposition_from_events
from callcenter.cdr.record import CallRecord, LegRecord, new_id
from callcenter.dialer import assignment
from callcenter.dialer.campaign import Campaign
from callcenter.dialer.engine import DialRequest
from callcenter.dialer.keys import DialerKeys
from callcenter.exceptions import CallGone, TelephonyError
from callcenter.ivr.runner import IvrRunner
from callcenter.ivr.services import QueueOutcome, QueueRequest
from callcenter.routing.router import Router
from callcenter.tasks import TaskSet
from callcenter.telephony.api import Leg, OriginateResult, Softswitch

log = logs.get("calls.outbound")

AGENT_RESERVE_WAIT = 1.5     # inside the engine's 2 s compliance grace (TCPA / abandon rules)
OUTBOUND_PRIORITY = 100      # an answered customer must not wait behind inbound callers: the grace is 2 s


class OutboundCalls:
    """A :class:`~callcenter.telephony.api.Softswitch` for the dialer: the worker's, plus the records."""

    def __init__(self, switch: Softswitch, cdr: CdrBuffer, live: LiveCalls, queueing: Queueing, ivr: IvrRunner,
                 *, redis: aredis.Redis, keys: DialerKeys, worker_id: str, sounds: Path, music: Path) -> None:
        self.switch = switch
        self.cdr = cdr
        self.live = live
        self.queueing = queueing
        self.ivr = ivr                 # runs campaign flows with calls.services.DialerServices
        self.redis = redis             # contact assignment (dialer.assignment)
        self.keys = keys
        self.worker_id = worker_id
        self.sounds = sounds
        self.music = music             # hold music while an answered customer waits for an agent
        self.tasks = TaskSet()

    # -- the Softswitch the engine sees -------------------------------------------------------

    async def originate(self, uri: str, caller_id: str, ring_timeout: float,
                        headers: dict[str, str] | None = None) -> tuple[OriginateResult, Leg | None]:
        start = time.time()
        campaign = (headers or {}).get("X-CC-Campaign")
        called = uri.split(":", 1)[-1].split("@", 1)[0]
        try:
            result, leg = await self.switch.originate(uri, caller_id, ring_timeout, headers=headers)
        except asyncio.CancelledError:
            await asyncio.shield(self._unanswered(uri, caller_id, called, campaign, start, "failed", "cancelled"))
            raise
        if result is not OriginateResult.ANSWERED or leg is None:
            await self._unanswered(uri, caller_id, called, campaign, start, record_outcome(result), result.value)
            return result, None
        rec = CallRecord(leg.id, "outbound", caller_id, called, start, answer=time.time(), campaign=campaign,
                         worker_id=self.worker_id)
        self.live.records[leg.id] = rec    # the queue fills in agent, wait and talk times
        await call_record(self.cdr, rec)
        self.tasks.spawn(self._finish(leg, rec, uri), "outbound cdr")
        return result, leg

    async def _unanswered(self, uri: str, caller_id: str, called: str, campaign: str | None, start: float,
                          outcome: str, cause: str) -> None:
        end = time.time()
        rec = CallRecord(new_id(), "outbound", caller_id, called, start, end=end, campaign=campaign,
                         outcome=outcome, hangup_side="caller", hangup_cause=cause, worker_id=self.worker_id)
        await call_record(self.cdr, rec)
        await leg_record(self.cdr, LegRecord(new_id(), rec.call_id, "outbound", uri, None, start, None, end, None,
                                             outcome))

    async def _finish(self, leg: Leg, rec: CallRecord, uri: str) -> None:
        try:
            info = await leg.wait_ended()
        finally:
            self.live.end(leg.id)
        rec.end = time.time()
        if rec.hangup_side is None:
            rec.hangup_side = hangup_side(info)
            rec.hangup_cause = hangup_cause(info)
        rec.outcome = rec.outcome or "ivr_only"
        # Leg first: a reader that sees the call ended also finds its leg.
        await leg_record(self.cdr, LegRecord(leg.id, leg.id, "outbound", uri, None, rec.start, rec.answer, rec.end,
                                             info.sip_code, "answered"))
        await call_record(self.cdr, rec)

    async def update(self, rec: CallRecord) -> None:
        """Write a record again after its call ended (a stage finished after the final write went out)."""
        await call_record(self.cdr, rec)

    async def talk(self, leg: Leg, agent_leg: Leg, rec: CallRecord | None, since: float) -> Leg:
        """Bridge the customer's answered leg to an agent's until one of them hangs up, then hang up the customer.
        The record gets the talk time from `since`, the side that ended it and the recording (``Recordings.begin``:
        its campaign's or queue's policy). Returns the leg that ended first."""
        ended: Leg
        recordings, recording = self.queueing.recordings, None
        try:
            await agent_leg.bridge(leg)
            if recordings is not None and rec is not None:
                recording = recordings.begin(rec, leg, agent_leg)
            ended, _ = await first_to_end(leg, agent_leg)
        except (CallGone, TelephonyError):
            ended = leg if leg.ended else agent_leg
        if rec is not None:
            rec.talk_seconds = time.time() - since
            rec.hangup_side = "agent" if ended is agent_leg else "caller"
        await hangup(leg)
        if rec is not None:
            if recordings is not None:
                await recordings.end(recording, rec)
            if rec.end is not None:
                await self.update(rec)    # the customer's leg ended: its final record went out already
        return ended

    # -- the engine's callables -----------------------------------------------------------------

    async def connect_agent(self, leg: Leg, req: DialRequest, campaign: Campaign) -> bool:
        """Queue the customer for ``campaign.queue``; True as soon as the router reserved an agent."""
        rec = self.live.records.get(leg.id)
        qreq = QueueRequest(queue=campaign.queue or "", skills={}, priority=OUTBOUND_PRIORITY, max_wait=60.0,
                            callback_offer=False, callback_after=0.0, announce_position=False,
                            announce_wait_time=False, announce_every=3600.0, music=str(self.music),
                            language=str(req.data.get("language") or "vi"), sounds_dir=str(self.sounds),
                            variables=req.variables())
        task = self.tasks.spawn(self._queued(leg, qreq, rec, req), "outbound queue")
        deadline = time.monotonic() + AGENT_RESERVE_WAIT
        while time.monotonic() < deadline and not task.done():
            agent = self.queueing.reserved_agent(leg.id)
            if agent is not None:
                # the agent's screen may now read and dispose this contact
                await assignment.assign(self.redis, self.keys, req.campaign_id, req.e164, agent)
                return True
            await asyncio.sleep(0.05)
        task.cancel()   # Queueing takes the cancelled call out of the ACD
        with contextlib.suppress(BaseException):
            await task
        if rec is not None:
            rec.outcome = "abandoned"
            rec.hangup_side = "system"
            rec.hangup_cause = "no agent within grace"
        return False

    async def _queued(self, leg: Leg, qreq: QueueRequest, rec: CallRecord | None, req: DialRequest) -> None:
        try:
            outcome = await self.queueing.queue(leg, qreq)
            if rec is not None and outcome is not QueueOutcome.CONNECTED and rec.outcome is None:
                rec.outcome = "timeout" if outcome is QueueOutcome.TIMEOUT else "failed"
            if rec is not None and outcome is QueueOutcome.CONNECTED and rec.agent_id:
                # the agent who talked (another may have been offered first) writes the disposition
                await assignment.assign(self.redis, self.keys, req.campaign_id, req.e164, rec.agent_id)
        except CallGone:
            return
        await hangup(leg)

    async def run_ivr(self, leg: Leg, flow: str, variables: dict[str, str]) -> dict[str, Any] | None:
        """Run the campaign's flow; its events become the contact's disposition."""
        rec = self.live.records.get(leg.id)
        events: list[tuple[str, dict[str, Any]]] = []
        token = CALL_EVENTS.set(events)
        # The customer is the flow's "caller": lookups and dnc nodes default to {caller}.
        vars_ = {**variables, "caller": variables.get("phone", "")}
        try:
            # we dialed this customer's number ourselves: verified by construction (dnc nodes may add it)
            result = await self.ivr.run(leg, entry=flow, variables=vars_, caller_verified=True)
        finally:
            CALL_EVENTS.reset(token)
        if rec is not None:
            for name, value in result.cdr_fields().items():
                setattr(rec, name, value)
        disp = disposition_from_events(events, time.time())
        if rec is not None:
            rec.disposition = disp["disposition"] if disp else "completed"
            if rec.end is not None:
                # The flow's hangup node ended the leg first: the final record went out without these.
                await self.update(rec)
        return disp

    async def close(self, grace: float) -> None:
        """Let live calls' record watchers see their legs end (the worker drains calls), then cancel."""
        await self.tasks.drain(grace)


async def back_to_acd(router: Router, agent: str, prev_state: str, talk: float | None, wrapup: float | None) -> None:
    """An agent's own call (a preview dial, a click-to-call; paused "outbound" meanwhile) is over. An agent that
    was available goes back to the ACD: after a conversation of ``talk`` seconds through after-call work, as
    after a queue call (``Router.agent_wrap_up``: ``wrapup`` seconds, None: its queues' longest), else at once;
    one that was paused stays so. Never raises (Redis away: the agent makes itself ready)."""
    if prev_state != "available":
        return
    with contextlib.suppress(Exception):
        if talk is None:
            await router.agent_ready(agent)
        else:
            await router.agent_wrap_up(agent, talk, wrapup)


async def hangup(leg: Leg) -> None:
    """Hang a leg up that may be gone already."""
    with contextlib.suppress(TelephonyError, CallGone):
        await leg.hangup()
