"""A caller's time in queue on this worker: hold music, announcements, agent offers, the bridge.

The Redis router decides *who* gets a call; this module does what needs the caller's media,
which lives in this process: it plays music and "your position is N", rings the agent the
router reserved (an originated leg, the same API the dialer uses), bridges on answer, puts the
call back at its place when the agent does not answer, and CANCELs the agent's phone when
the caller gives up. When a callback reaches the front, it rings the agent and then dials the customer.

A flow reaches it through ``calls.services`` (its ``queue`` node), the dialer through ``calls.outbound``
(an answered customer waits here for an agent, ahead of inbound callers).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from callcenter import logs, metrics
from callcenter.calls.outcome import first_to_end, hangup_cause, hangup_side, offer_result
from callcenter.calls.recording import Recordings
from callcenter.calls.records import LiveCalls, call_record, leg_record, queue_event, queue_line
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.record import CallRecord, LegRecord, QueueEvent, new_id
from callcenter.dialer.policy import DialDecision, DialPolicy
from callcenter.events.schema import screen_pop
from callcenter.exceptions import CallGone
from callcenter.ivr import announce, prompts
from callcenter.ivr.saynumber import say
from callcenter.ivr.services import QueueOutcome, QueueRequest
from callcenter.routing.router import Offer, QueuedCall, QueueFull, Router, RoutingError, RoutingEvent
from callcenter.tasks import TaskSet
from callcenter.telephony.api import Leg, OriginateResult, ReferOutcome, Softswitch

log = logs.get("queue")

T = TypeVar("T")

CALLBACK_ATTEMPTS = 3     # read-backs / keyed numbers before the caller is left in the queue


@dataclass
class Waiter:
    """One caller of this worker waiting in a queue."""

    leg: Leg
    request: QueueRequest
    record: CallRecord
    enqueued: float
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    agent_leg: Leg | None = None
    offer: Offer | None = None
    offer_task: asyncio.Task[Any] | None = None
    outcome: QueueOutcome | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)   # its ENTERQUEUE is logged (or it left)


@dataclass
class Talk:
    """A caller bridged to an agent on this worker, and its hold spans (from the API or the agent's phone)."""

    caller: Leg
    agent: Leg
    queue: str
    agent_id: str
    music: str
    held_since: float | None = None
    hold_seconds: float = 0.0
    holds: int = 0
    over: bool = False
    kept: bool = False             # the agent left a conference (calls/conference.py): the caller stays on
    desk_hangup: bool = False      # the agent's desk hung its phone up (api/calls.py): the CDR's side is the agent
    handoff: Handoff | None = None  # a transfer under way (calls/transfer.py): who takes the caller next
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def held(self) -> bool:
        return self.held_since is not None


@dataclass
class Segment:
    """One agent's part of a bridged call (the agent the router offered it to, then each transfer target):
    its end is its queue-log line (COMPLETE*, BLINDTRANSFER, ATTENDEDTRANSFER) and its CDR leg."""

    leg: Leg
    agent_id: str                  # "" for a number a transfer dialed
    uri: str
    start: float                   # answered
    kind: str = "agent_offer"      # its CDR leg's kind ("transfer": a transfer target)
    rung: float | None = None      # a transfer target: when its phone started ringing
    release: Callable[[float], Awaitable[None]] | None = None   # a transfer target's routing state back, given
    hold_mark: float = 0.0         # its talk (else call_finished); the Talk's hold_seconds and holds when it started
    holds_mark: int = 0
    took: float = 0.0              # when it took the caller (a consulted target answered before)


@dataclass
class Handoff:
    """A transfer of the caller away from its agent (calls/transfer.py), set on the Talk before the agent's
    leg is hung up: the agent's segment ends with ``event``; then ``target`` (the answered party that takes
    the caller; None: it did not answer, the caller waits in the queue again) or ``queue`` (blind to a queue)."""

    event: str                     # BLINDTRANSFER | ATTENDEDTRANSFER
    to: str                        # the CDR's transferred_to: agent:<id> | queue:<name> | number:<e164>
    by: str
    target: asyncio.Future[Segment | None] | None = None
    queue: str | None = None
    announce: bool = True          # "your call is being transferred" while the target rings
    told: ReferOutcome | None = None   # a phone's REFER to a queue: its final NOTIFY once the caller waits there

    def tell(self, code: int) -> None:
        """The REFER's outcome, once: 200 the caller waits in ``queue``; 486 it is full, 503 another refusal, 487
        the caller hung up first."""
        told, self.told = self.told, None
        if told is not None:
            told(code)


class HoldResult(enum.Enum):
    DONE = "done"                  # the call is now held (or resumed)
    UNCHANGED = "unchanged"        # it already was
    NOT_BRIDGED = "not_bridged"    # a caller of this worker, but not talking to an agent
    UNKNOWN = "unknown"            # no such call on this worker


class Queueing:
    """This worker's callers in the Redis ACD: :meth:`queue` holds one until it leaves the queue,
    :meth:`run_offers` rings the agents the router reserves for them, :meth:`handle_events` acts on the
    router's events for them."""

    def __init__(self, router: Router, switch: Softswitch, cdr: CdrBuffer, live: LiveCalls, *,
                 policy: DialPolicy, trunk: str = "", service_levels: dict[str, float] | None = None,
                 short_abandon: float = 5.0, recordings: Recordings | None = None) -> None:
        self.service_levels = service_levels or {}
        self.short_abandon = short_abandon
        self.router = router
        self.switch = switch
        self.cdr = cdr
        self.live = live              # the live calls' records: the queue fills in agent, wait and talk times
        self.trunk = trunk
        self.policy = policy          # every callback number goes through it (request and dial)
        self.recordings = recordings  # records bridged calls as their queue's or campaign's policy says
        self.waiting: dict[str, Waiter] = {}
        self.talking: dict[str, Talk] = {}     # caller leg id -> its bridge to an agent
        self.phone_transfers: Callable[[Talk, str, ReferOutcome], Awaitable[None]] | None = None  # a phone's REFER
        self.tasks = TaskSet()

    async def queue(self, leg: Leg, request: QueueRequest) -> QueueOutcome:
        """Queue the caller; returns when the call left the queue (IvrServices.queue)."""
        record = self.live.records.get(leg.id) or CallRecord(leg.id, "inbound", leg.caller, leg.called,
                                                             time.time())
        now = time.time()
        attrs = _attributes(request)
        waiter: Waiter | None = None
        try:
            # Waiting before the enqueue: a free agent takes the call inside it, and run_offers may have the
            # offer before enqueue() returns here (without a waiter it withdrew it: ~1 s lost to the tick's
            # retry). _ring waits for ``entered`` so the queue log has ENTERQUEUE before OFFER.
            waiter = Waiter(leg, request, record, now)
            self.waiting[leg.id] = waiter
            try:
                await self.router.enqueue(QueuedCall(leg.id, request.queue, request.skills, request.priority,
                                                     caller=leg.caller, attributes=attrs))
            except QueueFull:
                await self._event("EXITEMPTY", leg.id, request.queue, reason="full")
                return QueueOutcome.FULL
            except RoutingError as exc:
                log.error("enqueue failed", call_id=leg.id, queue=request.queue, error=str(exc))
                return QueueOutcome.NO_AGENTS
            record.queue, record.enqueue = request.queue, now
            metrics.QUEUE_OFFERED_TOTAL.labels(queue=request.queue).inc()
            await self._event("ENTERQUEUE", leg.id, request.queue, priority=request.priority)
            waiter.entered.set()
            return await self._wait(waiter)
        except asyncio.CancelledError:
            # Whoever queued the caller gave up on it (e.g. the dialer's 2 s agent window), at any point
            # from the enqueue on: take the call out of the ACD so no agent is offered a ghost.
            if waiter is None or waiter.agent_leg is None:
                with contextlib.suppress(Exception):
                    await self.router.abandon(leg.id)
            raise
        finally:
            self.waiting.pop(leg.id, None)
            if waiter is not None:
                waiter.entered.set()      # an offer held for it goes on to find it gone
                if waiter.offer_task and not waiter.offer_task.done():
                    waiter.offer_task.cancel()

    def reserved_agent(self, call_id: str) -> str | None:
        """The agent the router reserved for this queued caller (being rung or talking), if any yet."""
        w = self.waiting.get(call_id)
        return w.offer.agent_id if w is not None and w.offer is not None else None

    # -- waiting ----------------------------------------------------------------------------

    async def _consent(self, w: Waiter) -> None:
        """A queue (campaign) whose calls may be recorded tells the caller first, before any agent joins
        (an agent who answers meanwhile is bridged when it ends); the CDR says it was played."""
        prompt = self.recordings.settings.consent_prompt(w.request.queue, w.record.campaign) \
            if self.recordings is not None else None
        if prompt is None:
            return
        await w.leg.play(prompts.paths([prompt], w.request.language, Path(w.request.sounds_dir)), barge_in=False)
        w.record.recording_consent = True

    async def _wait(self, w: Waiter) -> QueueOutcome:
        req, leg = w.request, w.leg
        next_announce = time.monotonic() + min(req.announce_every, 5.0)
        callback_at = time.monotonic() + req.callback_after if req.callback_offer else None
        deadline = time.monotonic() + req.max_wait if req.max_wait > 0 else None
        try:
            await self._consent(w)
            await leg.start_hold(req.music)
            while True:
                if w.agent_leg is not None:
                    outcome = await self._talk(w)
                    if outcome is not None:
                        return outcome
                    req = w.request          # transferred to a queue: waiting there again
                    deadline = time.monotonic() + req.max_wait if req.max_wait > 0 else None
                    continue
                if w.outcome is not None:
                    if w.outcome != QueueOutcome.CALLBACK_REQUESTED:
                        await self.router.abandon(leg.id)
                    return w.outcome
                now = time.monotonic()
                if deadline is not None and now >= deadline and w.offer_task is None:
                    await self.router.abandon(leg.id)
                    await self._event("EXITWITHTIMEOUT", leg.id, req.queue, waited=round(time.time() - w.enqueued, 3))
                    w.record.outcome = "timeout"
                    metrics.QUEUE_TIMEOUTS_TOTAL.labels(queue=req.queue).inc()
                    return QueueOutcome.TIMEOUT
                if callback_at is not None and now >= callback_at and w.offer_task is None:
                    callback_at = None
                    if await self._offer_callback(w):
                        return QueueOutcome.CALLBACK_REQUESTED
                    await leg.start_hold(req.music)
                    continue
                if (req.announce_position or req.announce_wait_time) and now >= next_announce \
                        and w.offer_task is None:
                    next_announce = now + req.announce_every
                    await self._announce(w)
                    continue
                waits = [t for t in (next_announce if req.announce_position or req.announce_wait_time else None,
                                     callback_at, deadline) if t is not None]
                timeout = max(0.05, min(waits) - now) if waits else 1.0
                w.wake.clear()
                ended = asyncio.ensure_future(leg.wait_ended())
                woke = asyncio.ensure_future(w.wake.wait())
                try:
                    await asyncio.wait([ended, woke], timeout=min(timeout, 1.0),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woke.cancel()
                    ended.cancel()
                if leg.ended:
                    raise CallGone(leg.id)
        except CallGone:
            if w.agent_leg is None:
                await self._abandoned(w)
            raise

    async def _announce(self, w: Waiter) -> None:
        """Position and estimated wait, interrupted at once if an agent answers meanwhile."""
        req, leg = w.request, w.leg
        names: list[str] = []
        if req.announce_position:
            pos = await self.router.position(leg.id)
            if pos:
                names += announce.position(pos, req.language)
        if req.announce_wait_time:
            ewt = await self.router.estimated_wait(req.queue, leg.id)
            if ewt is not None:
                names += announce.estimated_wait(ewt, req.language)
        if not names:
            return
        files = prompts.paths(names, req.language, Path(req.sounds_dir))
        await self._play_interruptible(w, files)
        if w.agent_leg is None and not leg.ended:
            await leg.start_hold(req.music)

    async def _offer_callback(self, w: Waiter) -> bool:
        req, leg = w.request, w.leg
        leg.flush_digits()
        files = prompts.paths(announce.callback_offer(), req.language, Path(req.sounds_dir))
        digit = await self._play_interruptible(w, files, barge_in=True)
        if digit is None and w.agent_leg is None:
            digit = (await self._collect_interruptible(w, 1, 5.0)) or None
        if digit != "1" or w.agent_leg is not None:
            leg.flush_digits()
            return False
        leg.flush_digits()
        decision = await self._confirm_callback_number(w)
        if decision is None or not decision.ok or decision.e164 is None:
            return False
        if not await self.router.request_callback(leg.id, decision.e164):
            return False
        w.record.callback = True
        metrics.QUEUE_CALLBACKS_TOTAL.labels(queue=req.queue).inc()
        w.record.outcome = "callback"
        await self._event("CALLBACK", leg.id, req.queue, kind=decision.kind)
        confirm = prompts.paths(announce.callback_confirmed(), req.language, Path(req.sounds_dir))
        with contextlib.suppress(CallGone):
            await leg.play(confirm, barge_in=False)
        return True

    async def _confirm_callback_number(self, w: Waiter) -> DialDecision | None:
        """The number a callback will dial, as the caller confirmed it: the From number (or one the
        caller keys) is normalised and checked by the dial policy, read back, and confirmed with 1 or
        replaced with 2; then counted against the per-number and per-source caps. None (or a refused
        decision) leaves the caller in the queue."""
        req, leg = w.request, w.leg

        def files(names: list[str]) -> list[str]:
            return prompts.paths(names, req.language, Path(req.sounds_dir))

        candidate: str = leg.caller
        for _ in range(CALLBACK_ATTEMPTS):
            if w.agent_leg is not None or leg.ended:
                return None
            decision = await self.policy.check(candidate, "callback", call_id=leg.id, queue=req.queue)
            if not decision.ok:
                await self._event("CALLBACK_REFUSED", leg.id, req.queue, reason=decision.reason, kind=decision.kind)
                key = await self._ask(w, files(announce.callback_refused()))
                if key != "2":
                    return None
            else:
                national = decision.e164.removeprefix("+84") if decision.e164 else ""
                spoken = say("digits", ("0" + national) if decision.kind != "international" else
                             (decision.e164 or "").lstrip("+"), req.language)
                key = await self._ask(w, files(announce.callback_read_back(spoken)))
                if key == "1":
                    admitted = await self.policy.admit_callback(decision, _source(leg), call_id=leg.id,
                                                                queue=req.queue)
                    if not admitted.ok:
                        await self._event("CALLBACK_REFUSED", leg.id, req.queue, reason=admitted.reason,
                                          kind=admitted.kind)
                        await self._play_interruptible(w, files(announce.callback_refused_cap()))
                    return admitted
                if key != "2":
                    continue          # nothing pressed: read the number back again
            keyed = await self._ask(w, files(announce.callback_enter_number()), max_digits=15, timeout=10.0)
            if keyed:
                candidate = keyed
        return None

    async def _ask(self, w: Waiter, files: list[str], max_digits: int = 1, timeout: float = 6.0) -> str:
        """Play with barge-in, then read up to max_digits keys ('#' ends a number); '' when nothing
        was pressed or an agent took the call meanwhile."""
        w.leg.flush_digits()
        first = await self._play_interruptible(w, files, barge_in=True)
        if w.agent_leg is not None:
            return ""
        if first is not None and max_digits == 1:
            w.leg.flush_digits()     # the barge-in digit stays buffered: it is the answer
            return first
        return await self._collect_interruptible(w, max_digits, timeout, inter_digit=3.0)

    async def _collect_interruptible(self, w: Waiter, max_digits: int, timeout: float,
                                     inter_digit: float | None = None) -> str:
        """leg.collect that gives up at once when an agent answers for this caller."""
        return await self._until_agent(w, w.leg.collect(max_digits, timeout, inter_digit, "#")) or ""

    async def _play_interruptible(self, w: Waiter, files: list[str], barge_in: bool = False) -> str | None:
        return await self._until_agent(w, w.leg.play(files, barge_in=barge_in))

    async def _until_agent(self, w: Waiter, work: Coroutine[Any, Any, T]) -> T | None:
        """Run ``work`` on the caller's leg unless an agent answers for this caller first: then it is
        cancelled and the answer is None."""
        task = asyncio.ensure_future(work)
        w.wake.clear()
        woke = asyncio.ensure_future(w.wake.wait())
        try:
            await asyncio.wait([task, woke], return_when=asyncio.FIRST_COMPLETED)
        finally:
            woke.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, CallGone):
                await task
            return None
        return task.result()

    async def _abandoned(self, w: Waiter) -> None:
        """The caller hung up while waiting or while an agent's phone rang."""
        if w.offer_task is not None and not w.offer_task.done():
            w.offer_task.cancel()   # CANCELs the ringing agent leg
        with contextlib.suppress(Exception):
            await self.router.abandon(w.leg.id)
        waited = time.time() - w.enqueued
        w.record.wait_seconds = round(waited, 3)
        w.record.outcome = w.record.outcome or "abandoned"
        w.record.hangup_side = "caller"
        metrics.QUEUE_ABANDONED_TOTAL.labels(queue=w.request.queue).inc()
        if waited < self.short_abandon:
            metrics.QUEUE_SHORT_ABANDONED_TOTAL.labels(queue=w.request.queue).inc()
        metrics.QUEUE_WAIT_SECONDS.labels(queue=w.request.queue, outcome="abandoned").observe(waited)
        await self._event("ABANDON", w.leg.id, w.request.queue, waited=round(waited, 3),
                          ringing_agent=w.offer.agent_id if w.offer else None)

    async def _talk(self, w: Waiter) -> QueueOutcome | None:
        """Bridge caller and agent; when either hangs up, the agent's side ends. The caller stays
        up only if the flow goes on (post-call survey); the IVR hangs up otherwise. A transfer
        (``Talk.handoff``) ends the agent's segment and goes on with its target, or (None) the caller
        waits in a queue again."""
        assert w.agent_leg is not None and w.offer is not None
        leg, agent, offer = w.leg, w.agent_leg, w.offer
        rec = w.record
        answered = time.time()
        if rec.agent_answer is None:     # the first agent (a transfer back to a queue answers it again)
            rec.agent_id, rec.agent_answer = offer.agent_id, answered
            rec.wait_seconds = round(answered - w.enqueued, 3)
        rec.outcome = "answered"
        metrics.QUEUE_WAIT_SECONDS.labels(queue=offer.queue, outcome="answered").observe(answered - w.enqueued)
        metrics.QUEUE_ANSWERED_TOTAL.labels(queue=offer.queue).inc()
        if answered - w.enqueued <= self.service_levels.get(offer.queue, 20.0):
            metrics.QUEUE_ANSWERED_IN_SL_TOTAL.labels(queue=offer.queue).inc()
        recording = None
        try:
            await leg.bridge(agent)
            if self.recordings is not None:
                recording = self.recordings.begin(rec, leg, agent, offer.queue)
        except CallGone:
            pass
        await self._event("CONNECT", leg.id, offer.queue, offer.agent_id, holdtime=rec.wait_seconds)
        t = Talk(leg, agent, offer.queue, offer.agent_id, w.request.music)
        self.talking[leg.id] = t
        # The agent's phone holds with a re-INVITE (a=sendonly / a=inactive) and resumes with sendrecv.
        def phone_hold(held: bool) -> None:
            self.tasks.spawn(self._set_hold(t, held, "phone"), "hold", call_id=leg.id)

        # The agent's phone transfers with a REFER (nothing dialed by pjsua: calls/transfer.py does it).
        def phone_transfer(refer_to: str, outcome: ReferOutcome) -> None:
            if self.phone_transfers is not None:
                self.tasks.spawn(self.phone_transfers(t, refer_to, outcome), "phone transfer", call_id=leg.id)
            else:
                outcome(603)

        seg: Segment | None = Segment(agent, offer.agent_id, offer.agent_uri, answered)
        left = False                     # the agent left its conference: its segment is over already
        try:
            while seg is not None:
                seg.leg.on_remote_hold(phone_hold)
                seg.leg.on_transfer_request(phone_transfer if seg.agent_id else None)   # agents' phones only
                first, info = await first_to_end(leg, seg.leg)
                seg.leg.on_remote_hold(None)
                seg.leg.on_transfer_request(None)
                if first is seg.leg and t.kept:
                    # The agent left its conference: its part ends now (wrap-up, its queue line and leg: its desk
                    # is free, as after a transfer); the talk lasts until the caller hangs up.
                    await self._segment_end(w, t, seg, "COMPLETEAGENT")
                    info, first, left = await leg.wait_ended(), leg, True
                h, t.handoff = t.handoff, None
                if first is leg or h is None:
                    if h is not None:
                        h.tell(487)          # the caller hung up as its agent's phone transferred it
                    break
                # A transfer hung up the agent's leg: its segment ends; the target takes the caller.
                rec.transferred_to = h.to
                await self._close_hold(t)
                await self._segment_end(w, t, seg, h.event, to=h.to, by=h.by)
                seg = await self._hand_over(w, t, seg, h)
        finally:
            self.talking.pop(leg.id, None)
            await self._close_hold(t, over=True)
        if self.recordings is not None:
            await self.recordings.end(recording, rec)
        rec.hold_seconds, rec.hold_count = round(rec.hold_seconds + t.hold_seconds, 3), rec.hold_count + t.holds
        talk = max(0.0, time.time() - answered - t.hold_seconds)      # talk time excludes hold
        rec.talk_seconds = round((rec.talk_seconds or 0.0) + talk, 3)
        if seg is None:
            if not leg.ended:
                return None                  # transferred to a queue (or its target did not answer)
            first, info = leg, await leg.wait_ended()      # the caller hung up during a transfer
        caller_first = first is leg
        rec.hangup_cause = hangup_cause(info)
        if caller_first:
            rec.hangup_side = "caller"
            event = "COMPLETECALLER"
        else:
            rec.hangup_side = "agent" if t.desk_hangup else hangup_side(info, "agent")
            event = "COMPLETEAGENT"
        if seg is not None and not left:
            await seg.leg.hangup()
            await self._segment_end(w, t, seg, event)
        if caller_first:
            raise CallGone(leg.id)
        return QueueOutcome.CONNECTED

    async def _close_hold(self, t: Talk, over: bool = False) -> None:
        """An open hold span ends now (a hold change under way finishes first); ``over``: the talk ended."""
        async with t.lock:
            t.over = t.over or over
            if t.held_since is not None:
                t.hold_seconds += time.time() - t.held_since
                t.held_since = None

    async def _segment_end(self, w: Waiter, t: Talk, seg: Segment, event: str, **data: Any) -> None:
        """One agent's part of the call ended: the router frees the agent (wrap-up) or a transfer target's
        state comes back, its handle time, its queue-log line and its CDR leg."""
        hold, holds = t.hold_seconds - seg.hold_mark, t.holds - seg.holds_mark
        talk = max(0.0, time.time() - max(seg.start, seg.took) - hold)
        if seg.release is None:
            await self.router.call_finished(w.leg.id, seg.agent_id, talk)
        else:
            await seg.release(talk)
        metrics.HANDLE_SECONDS.labels(queue=t.queue).observe(talk + hold)
        agent_leg = self._leg_record(seg.leg, w.leg.id, seg.kind, seg.uri, seg.agent_id or None, "answered",
                                     start=seg.rung, answer=seg.start)
        await queue_line(self.cdr, QueueEvent.make(
            event, call_id=w.leg.id, queue=t.queue, agent_id=seg.agent_id or None, holdtime=w.record.wait_seconds,
            talktime=round(talk, 3), onhold=round(hold, 3), holds=holds, **data), legs=(agent_leg,))

    async def _hand_over(self, w: Waiter, t: Talk, prev: Segment, h: Handoff) -> Segment | None:
        """The caller of a transfer: told and on music while the target rings, then bridged to it (the
        next segment); None when it waits in a queue again (h.queue, or the call's queue when the target
        did not answer: the original priority and enqueue time kept) or hung up meanwhile."""
        leg = w.leg
        since = time.time()
        target: Segment | None = None
        try:
            if h.target is not None and not h.target.done() and h.announce:
                files = prompts.paths(announce.transferring(), w.request.language, Path(w.request.sounds_dir))
                await leg.play(files, barge_in=False)
            if h.target is not None and not h.target.done():
                await leg.start_hold(t.music)
            target = await self._until_ended(leg, h.target) if h.target is not None else None
            if target is not None:
                await leg.bridge(target.leg)
        except CallGone:
            if target is not None:               # the target hung up as it answered: the caller waits again
                await target.leg.hangup()
                if target.release is not None:
                    await target.release(0.0)
            target = None
        t.hold_seconds += time.time() - since        # the caller heard music while the target rang
        if leg.ended:
            h.tell(487)
            if target is not None:
                await target.leg.hangup()
                await self._segment_end(w, t, target, "COMPLETECALLER")
            return None
        if target is None:
            queue = h.queue or t.queue
            if h.queue is not None:
                await self._transferred(t, prev, h, None)
                files = prompts.paths(announce.transferring(), w.request.language, Path(w.request.sounds_dir))
                with contextlib.suppress(CallGone):
                    await leg.play(files, barge_in=False)
            h.tell(await self._requeue(w, queue))    # a phone's REFER to a queue: now it knows
            return None
        target.hold_mark, target.holds_mark, target.took = t.hold_seconds, t.holds, time.time()
        t.agent, t.agent_id = target.leg, target.agent_id
        if self.recordings is not None:
            self.recordings.mix(leg.id, target.leg, True)     # the target in the agent's channel from now on
        await self._transferred(t, prev, h, target.agent_id or None)
        return target

    async def _transferred(self, t: Talk, prev: Segment, h: Handoff, agent_id: str | None) -> None:
        """The caller left ``prev`` for the transfer's target (an agent or number that answered, or a queue)."""
        await self._event("TRANSFER", t.caller.id, t.queue, agent_id, from_agent=prev.agent_id, to=h.to,
                          kind=h.event, by=h.by)
        metrics.QUEUE_TRANSFERS_TOTAL.labels(queue=t.queue).inc()

    async def _until_ended(self, leg: Leg, fut: asyncio.Future[Segment | None]) -> Segment | None:
        """What ``fut`` resolves to, or None when the caller's leg ends first."""
        ended = asyncio.ensure_future(leg.wait_ended())
        waits: list[asyncio.Future[Any]] = [fut, ended]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        return fut.result() if fut.done() and not fut.cancelled() else None

    async def _requeue(self, w: Waiter, queue: str) -> int:
        """The caller waits in ``queue`` again (a transfer), at its original priority and enqueue time. As a
        REFER's final NOTIFY says it: 200 queued, 486 the queue is full, 503 refused otherwise."""
        leg = w.leg
        w.agent_leg, w.offer = None, None
        w.request = replace(w.request, queue=queue)
        try:
            await self.router.enqueue(QueuedCall(leg.id, queue, w.request.skills, w.request.priority,
                                                 caller=leg.caller, attributes=_attributes(w.request),
                                                 enqueued=w.enqueued))
        except RoutingError as exc:
            log.error("transfer to queue failed", call_id=leg.id, queue=queue, error=str(exc))
            w.outcome = QueueOutcome.NO_AGENTS if not isinstance(exc, QueueFull) else QueueOutcome.FULL
            return 486 if isinstance(exc, QueueFull) else 503
        metrics.QUEUE_OFFERED_TOTAL.labels(queue=queue).inc()
        await self._event("ENTERQUEUE", leg.id, queue, priority=w.request.priority, transferred=True)
        with contextlib.suppress(CallGone):
            await leg.start_hold(w.request.music)
        return 200

    async def hand_off(self, t: Talk, h: Handoff) -> bool:
        """Start a transfer of the talk's caller (calls/transfer.py): the agent's leg is hung up and the talk
        goes on as ``h`` says. False when the talk is over or another transfer is under way."""
        if t.over or t.caller.ended or t.agent.ended or (t.handoff is not None and t.handoff is not h):
            return False
        t.handoff = h
        await t.agent.hangup()
        return True

    # -- hold ------------------------------------------------------------------------------

    async def hold(self, call_id: str, on: bool, by: str) -> HoldResult:
        """Put a bridged caller on hold (music, the agent no longer heard) or take it off (the bridge
        again); `by` names who asked ("api:<user>", "phone") in the queue log."""
        t = self.talking.get(call_id)
        if t is None:
            return HoldResult.NOT_BRIDGED if call_id in self.waiting else HoldResult.UNKNOWN
        return HoldResult.DONE if await self._set_hold(t, on, by) else HoldResult.UNCHANGED

    def talk(self, call_id: str) -> Talk | None:
        """The bridge of this worker's caller to an agent, while it lasts."""
        return self.talking.get(call_id)

    async def _set_hold(self, t: Talk, on: bool, by: str) -> bool:
        """One hold change at a time per call; False if there was nothing to change (already so, or over)."""
        async with t.lock:
            if t.over or t.held == on or t.caller.ended or t.agent.ended:
                return False
            now = time.time()
            try:
                if on:
                    await t.caller.start_hold(t.music)     # unbridges both ways, then music to the caller
                else:
                    await t.caller.bridge(t.agent)
            except CallGone:
                return False
            if on:
                t.held_since, t.holds = now, t.holds + 1
                metrics.CALL_HOLDS_TOTAL.labels(queue=t.queue, by=by.split(":", 1)[0]).inc()
                await self._event("HOLD", t.caller.id, t.queue, t.agent_id, by=by)
            else:
                span = now - (t.held_since or now)
                t.hold_seconds += span
                t.held_since = None
                metrics.CALL_HOLD_SECONDS.labels(queue=t.queue).observe(span)
                await self._event("UNHOLD", t.caller.id, t.queue, t.agent_id, by=by, onhold=round(span, 3))
            log.info("hold" if on else "unhold", call_id=t.caller.id, agent_id=t.agent_id, by=by)
            return True

    # -- offers (from the router, for this worker's callers) --------------------------------

    async def run_offers(self, stop: asyncio.Event) -> None:
        """Take the router's offers for this worker's callers and ring the agents."""
        while not stop.is_set():
            try:
                offers = await self.router.next_offers(timeout=1.0)
            except Exception:  # Redis restarting; the router's client retries
                log.exception("reading offers failed")
                await asyncio.sleep(0.5)
                continue
            for offer in offers:
                self.tasks.spawn(self._ring(offer), "offer", call_id=offer.call_id)

    def handle_events(self, events: list[RoutingEvent]) -> None:
        """Routing events for this worker's callers (from Router.tick)."""
        for ev in events:
            w = self.waiting.get(ev.call_id or "")
            if w is None:
                continue
            if ev.kind == "fallback":
                action = ev.data.get("action")
                # A callback fallback keeps the call queued as a callback only if the router could
                # (the caller's number known and no callback already pending for it).
                callback = action == "callback" and bool(ev.data.get("kept_in_queue"))
                if callback:
                    self.tasks.spawn(self._fallback_callback(w), "fallback callback", call_id=w.leg.id)
                    continue
                w.outcome = QueueOutcome.TIMEOUT
                w.record.outcome = "timeout"
                w.wake.set()
            elif ev.kind == "offer_cancelled" and w.offer_task is not None:
                w.offer_task.cancel()

    async def _fallback_callback(self, w: Waiter) -> None:
        """A routing rule turned the wait into a callback to the caller's number, unconfirmed: it passes
        the dial policy and its caps like a requested one, else the callback is dropped and the caller's
        wait ends as a timeout (the flow's on_timeout)."""
        decision = await self.policy.check(w.leg.caller, "callback", call_id=w.leg.id, queue=w.request.queue)
        decision = await self.policy.admit_callback(decision, _source(w.leg), call_id=w.leg.id,
                                                    queue=w.request.queue)
        if decision.ok:
            w.outcome, w.record.outcome = QueueOutcome.CALLBACK_REQUESTED, "callback"
        else:
            await self.router.cancel_callback(w.leg.id)
            await self._event("CALLBACK_REFUSED", w.leg.id, w.request.queue, reason=decision.reason,
                              kind=decision.kind, at="fallback")
            w.outcome, w.record.outcome = QueueOutcome.TIMEOUT, "timeout"
        w.wake.set()

    async def _ring(self, offer: Offer) -> None:
        if offer.kind == "callback":
            await self._ring_callback(offer)
            return
        w = self.waiting.get(offer.call_id)
        if w is not None:
            await w.entered.wait()       # the offer came while queue() was logging the caller's ENTERQUEUE
        if w is None or self.waiting.get(offer.call_id) is not w or w.leg.ended or w.offer_task is not None:
            # The caller is gone (or already ringing someone): give the agent back, no miss counted.
            await self.router.offer_failed(offer, "withdrawn")
            return
        w.offer = offer
        started = time.time()
        # Agent offers come from the default account; the caller's number and the queue ride in headers
        # the agent's phone can show (and a screen pop can use).
        headers = {"P-Asserted-Identity": f"<sip:{w.leg.caller or 'anonymous'}@callcenter.invalid>",
                   "X-Callcenter-Queue": offer.queue, "X-Callcenter-Call-Id": offer.call_id}
        task = asyncio.ensure_future(self.switch.originate(offer.agent_uri, "", offer.ring_timeout,
                                                           headers=headers))
        w.offer_task = task
        # The phone rings while the OFFER line is written: under load each append waits for the batch
        # before it, and an agent whose INVITE waited for two appends idled that long between calls
        # (bench/RESULTS.md, "Session 7"). The outcome's line follows it: the task is awaited after.
        await self._event("OFFER", offer.call_id, offer.queue, offer.agent_id,
                          push=screen_pop(w.leg.caller, w.request.variables, w.enqueued, started))
        try:
            result, agent = await task
        except asyncio.CancelledError:
            # Caller hung up while the agent's phone rang: originate() has CANCELled it; the router
            # releases the agent in abandon().
            await self._leg(None, offer.call_id, "agent_offer", offer.agent_uri, offer.agent_id, "cancelled",
                            start=started)
            return
        finally:
            w.offer_task = None
        if result is not OriginateResult.ANSWERED or agent is None:
            reason = offer_result(result)
            metrics.AGENT_OFFERS_TOTAL.labels(queue=offer.queue, result=reason).inc()
            if w.offer is offer:
                w.offer = None
            # Logged before the router puts the call back: the next OFFER follows in the queue log.
            await self._event("RINGNOANSWER", offer.call_id, offer.queue, offer.agent_id, result=reason,
                              ringtime=round(time.time() - started, 3))
            await self.router.offer_failed(offer, reason)
            await self._leg(None, offer.call_id, "agent_offer", offer.agent_uri, offer.agent_id, reason,
                            start=started)
            w.wake.set()
            return
        if w.leg.ended or not await self.router.offer_answered(offer):
            await agent.hangup()
            return
        metrics.AGENT_OFFERS_TOTAL.labels(queue=offer.queue, result="answered").inc()
        w.offer = offer
        w.agent_leg = agent
        w.wake.set()

    async def _ring_callback(self, offer: Offer) -> None:
        """A callback reached the front: connect the agent first, then call the customer."""
        started = time.time()
        # Checked again at dial time: a callback kept by a routing fallback took the From number
        # unconfirmed, and the number may have joined the DNC list since it was requested.
        decision = await self.policy.check(offer.callback_number or "", "callback", call_id=offer.call_id,
                                           queue=offer.queue)
        if not decision.ok or decision.e164 is None:
            await self.router.cancel_callback(offer.call_id)    # frees the reserved agent, never rung
            await self._event("CALLBACK_REFUSED", offer.call_id, offer.queue, reason=decision.reason,
                              kind=decision.kind, at="dial")
            await call_record(self.cdr, CallRecord(
                offer.call_id, "outbound", "callcenter", offer.callback_number or "", started, end=time.time(),
                callback=True, queue=offer.queue, outcome="failed", hangup_side="system",
                hangup_cause=f"dial_policy:{decision.reason}"))
            return
        result, agent = await self.switch.originate(offer.agent_uri, "callback", offer.ring_timeout)
        if result is not OriginateResult.ANSWERED or agent is None:
            await self.router.offer_failed(offer, offer_result(result))
            return
        if not await self.router.offer_answered(offer):
            await agent.hangup()
            return
        number = decision.e164
        uri = f"sip:{number}@{self.trunk}" if self.trunk else f"sip:{number}@127.0.0.1"
        res2, customer = await self.switch.originate(uri, "callcenter", 45.0)
        rec = CallRecord(offer.call_id, "outbound", "callcenter", number, started, callback=True,
                         queue=offer.queue, agent_id=offer.agent_id, agent_answer=time.time())
        if res2 is not OriginateResult.ANSWERED or customer is None:
            await agent.hangup()
            rec.outcome, rec.end = offer_result(res2), time.time()   # calls.outcome: the offer's word
            await self.router.call_finished(offer.call_id, offer.agent_id, 0.0)
            await call_record(self.cdr, rec)
            return
        rec.answer = time.time()
        await customer.bridge(agent)
        recording = self.recordings.begin(rec, customer, agent) if self.recordings is not None else None
        await self._event("CONNECT", offer.call_id, offer.queue, offer.agent_id, callback=True)
        await first_to_end(customer, agent)
        await customer.hangup()
        await agent.hangup()
        if self.recordings is not None:
            await self.recordings.end(recording, rec)
        rec.end = time.time()
        rec.talk_seconds = round(rec.end - rec.answer, 3)
        rec.outcome = "answered"
        await self.router.call_finished(offer.call_id, offer.agent_id, rec.talk_seconds)
        await call_record(self.cdr, rec)

    # -- records ----------------------------------------------------------------------------

    async def _event(self, event: str, call_id: str | None, queue: str | None, agent_id: str | None = None,
                     **data: Any) -> None:
        await queue_event(self.cdr, event, call_id, queue, agent_id, **data)

    async def _leg(self, leg: Leg | None, call_id: str, kind: str, uri: str, agent_id: str | None,
                   result: str, start: float | None = None, answer: float | None = None) -> None:
        await leg_record(self.cdr, self._leg_record(leg, call_id, kind, uri, agent_id, result, start, answer))

    @staticmethod
    def _leg_record(leg: Leg | None, call_id: str, kind: str, uri: str, agent_id: str | None, result: str,
                    start: float | None = None, answer: float | None = None) -> LegRecord:
        return LegRecord(leg.id if leg is not None else new_id(), call_id, kind, uri, agent_id, start or time.time(),
                         answer, time.time(), None, result)


def _attributes(request: QueueRequest) -> dict[str, str]:
    """The caller's data the router keeps with a queued call (an agent's screen pop)."""
    return {k: str(v) for k, v in request.variables.items() if k in ("name", "customer_id", "vip", "language")}


def _source(leg: Leg) -> str:
    """The signalling peer the call came through (trunk, edge: ``leg.source``) for the per-source cap; a leg
    without one counts under its From (a spoofer who varies it is still held by the per-number cap)."""
    source = getattr(leg, "source", "")
    return f"addr:{source}" if source else f"from:{leg.caller}"
