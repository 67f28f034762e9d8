"""Transfers of a caller bridged to an agent on this worker: blind and attended.

    await transfers.blind(call_id, "agent", "1002", by="api:ana")       # or ("queue", "support"), ("number", "09..")
    consult = await transfers.consult(call_id, "agent", "1002", by=...)  # or ("number", "09..")
    await transfers.complete(call_id, by=...)    # or cancel(...), or conference(...)

Blind: the agent's leg is hung up at once (its part of the call ends: BLINDTRANSFER in the queue log, the agent
goes to wrap-up) and the caller hears "your call is being transferred", then music, while the target rings:

- an agent (paused ``transfer`` in routing while rung and while it talks; back to available after if it was);
- a number: normalised, allow-listed and checked against the DNC list by the dial policy like every dial (403
  with its rule, nothing dialed), then dialed through the trunk;
- a queue: the caller waits there again at its original priority and enqueue time (nothing rings here).

A target that does not answer sends the caller back to the call's queue, at its original place: the first agent
has moved on to wrap-up, and the queue is what the caller was waiting for (an operator's "transfer failed, the
caller is not lost"). TRANSFER_FAILED names why in the queue log, the target's CDR leg (kind ``transfer``) too.

Attended: the caller is put on hold (the queue's music, ``Queueing.hold``: the span counts in hold_seconds) and
the target (an agent or a number, as above; for a queue, its free agent idle the longest) rings; on answer the agent and the target talk, the caller hearing
neither. Then:

- ``complete``: the caller is bridged to the target, the agent's leg is hung up (ATTENDEDTRANSFER, wrap-up);
  the agent hanging up during the consult does the same (as on a PBX);
- ``cancel``: the target is hung up, the caller and the agent talk again;
- ``conference``: the caller and the agent talk again and the target joins them (calls/conference.py: a
  three-way call where everyone hears everyone);
- the target refusing (rejects, does not answer, or hangs up during the consult): back to the caller, as cancel.

The caller's CallRecord keeps the first agent (``agent_id``) and names the last target in ``transferred_to``
(``agent:<id>``, ``queue:<name>``, ``number:<e164>``); its talk and hold times are the whole call's, so AHT
includes every agent's part and the consult's hold. Each agent's part is its own queue-log line with its own
talk and hold (COMPLETE*/BLINDTRANSFER/ATTENDEDTRANSFER, ``talktime``, ``onhold``) and CDR leg (the first
agent's ``agent_offer``, each target's ``transfer``); a consult that did not end in a transfer leaves a leg of
kind ``consult`` (result: cancelled, refused, no_answer, busy, ...). TRANSFER (from, to) is logged when the
target takes the caller (an agent or number answers, or the caller enters the queue it was transferred to), and
``callcenter_queue_transfers_total{queue}`` counts it under the queue the caller left.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from callcenter import logs
from callcenter.calls.conference import Conferences
from callcenter.calls.extra_party import CallControlError, ExtraParties
from callcenter.calls.queueing import Handoff, HoldResult, Queueing, Segment, Talk
from callcenter.calls.records import leg_record, queue_event
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.record import LegRecord
from callcenter.events import bus
from callcenter.privacy import mask_number
from callcenter.telephony.api import Leg, ReferOutcome, Softswitch

log = logs.get("transfer")

KINDS = ("agent", "queue", "number")


@dataclass(frozen=True)
class Target:
    kind: str                      # agent | number | queue
    to: str                        # agent:<id> | number:<e164> | queue:<name>
    uri: str = ""                  # what rings ("" for a queue)
    agent_id: str | None = None
    prev_state: str | None = None  # an agent's routing state before it was reserved


@dataclass
class Consult:
    """An attended transfer under way: the caller on hold, the agent ringing or talking to the target."""

    call_id: str
    talk: Talk
    target: Target
    by: str
    handoff: Handoff
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "ringing"         # ringing | consulting | completed | cancelled | conference | refused | ended
    started: float = field(default_factory=time.time)
    answered: float | None = None
    leg: Leg | None = None
    action: str | None = None      # what the API asked: complete | cancel | conference
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def as_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "consult": self.id, "kind": self.target.kind, "to": self.target.to,
                "agent": self.target.agent_id, "state": self.state}


# A transfer target that did not take the caller, as the status of the phone's final NOTIFY (a phone's REFER)
SIPFRAG = {"busy": 486, "no_answer": 480, "unregistered": 480, "rejected": 603, "invalid": 404,
           "call_ended": 487, "failed": 503}


def _untold(code: int) -> None:
    """The outcome of a transfer nobody asked by REFER (the API's)."""


_REFER_TO = re.compile(r"<?sip:([\w.+*#-]{1,32})@[^?>;]+(?:;[^?>]*)?(?:\?([^>]*))?>?")
_REPLACES = re.compile(r"[\w.!%*+`'~@:-]{1,128}(?:;(?:to-tag|from-tag)=[\w.!%*+`'~-]{1,64}|;early-only){2,3}")


def parse_refer_to(refer_to: str) -> tuple[str, str | None] | None:
    """A phone's Refer-To: its user part and its Replaces header's value (URL-decoded, checked to be a call id
    and two tags, no more), or None when it is anything else (another scheme, other embedded headers)."""
    m = _REFER_TO.fullmatch(refer_to.strip())
    if m is None:
        return None
    user, query = m.group(1), m.group(2)
    if not query:
        return user, None
    name, _, value = query.partition("=")
    replaces = urllib.parse.unquote(value)
    if name.lower() != "replaces" or "&" in query or _REPLACES.fullmatch(replaces) is None:
        return None
    return user, replaces


class Transfers(ExtraParties[Consult]):
    """This worker's transfers; at most one consult per call."""

    def __init__(self, queueing: Queueing, switch: Softswitch, cdr: CdrBuffer, conferences: Conferences, *,
                 ring_timeout: float = 20.0, caller_id: str = "transfer") -> None:
        super().__init__(queueing, switch, cdr, ring_timeout=ring_timeout, caller_id=caller_id)
        self.conferences = conferences
        queueing.phone_transfers = self.from_phone

    def get(self, call_id: str) -> Consult | None:
        return self.sessions.get(call_id)

    # -- blind ----------------------------------------------------------------------------------

    async def blind(self, call_id: str, kind: str, target: str, by: str, replaces: str | None = None,
                    outcome: ReferOutcome | None = None) -> dict[str, Any]:
        """Hand the caller to ``target`` now; the answer says what rings (or the queue it waits in). ``replaces``
        (an agent's phone completing its own consult call: REFER with Replaces) goes in the target's INVITE, which
        takes over that call: an attended transfer. ``outcome`` (a phone's REFER) is told how it ended: 200 when
        the target answers or the caller waits in the queue, else the target's failure (``SIPFRAG``)."""
        t = self._talk(call_id)
        tg = await self._target(call_id, t, kind, target)
        fut: asyncio.Future[Segment | None] | None = None
        if tg.kind != "queue":
            fut = asyncio.get_running_loop().create_future()
        h = Handoff("ATTENDEDTRANSFER" if replaces else "BLINDTRANSFER", tg.to, by, target=fut,
                    queue=tg.to.removeprefix("queue:") if tg.kind == "queue" else None, announce=not replaces,
                    told=outcome if fut is None else None)    # a queue: told once the caller waits there
        if not await self.queueing.hand_off(t, h):
            await self._release(tg)
            raise CallControlError(409, "the call is not talking to an agent")
        log.info("blind transfer", call_id=call_id, kind=tg.kind, to=tg.to, agent_id=t.agent_id, by=by)
        if fut is not None:
            self.tasks.spawn(self._ring_blind(call_id, t, tg, h, fut, replaces, outcome or _untold),
                             "transfer", call_id=call_id)
        return {"call_id": call_id, "mode": "blind", "kind": tg.kind, "to": tg.to,
                "state": "queued" if fut is None else "ringing"}

    async def _ring_blind(self, call_id: str, t: Talk, tg: Target, h: Handoff, fut: asyncio.Future[Segment | None],
                          replaces: str | None, outcome: ReferOutcome) -> None:
        started = time.time()
        headers = self._headers(call_id, t, "attended" if replaces else "blind")
        if replaces:
            headers["Replaces"] = replaces
        try:
            leg = await self.ring(tg.uri, headers, t.caller.wait_ended())
        except Exception:
            fut.set_result(None)
            outcome(SIPFRAG["failed"])
            await self._failed(call_id, t, tg, h, None, started, "failed")
            raise
        if leg is None or isinstance(leg, str):
            fut.set_result(None)
            outcome(SIPFRAG.get(leg or "call_ended", SIPFRAG["failed"]))
            await self._failed(call_id, t, tg, h, None, started, leg or "call_ended")
            return
        fut.set_result(self._segment(tg, leg, started))
        outcome(200)

    async def from_phone(self, t: Talk, refer_to: str, outcome: ReferOutcome) -> None:
        """A REFER from the agent's phone (accepted by its leg, nothing dialed on its say-so): the Refer-To's
        user is an agent id, a queue or a number, transferred to like the API's blind transfer and checked the
        same way; with a Replaces (the phone consulted the target itself and completes), an attended transfer
        whose INVITE takes over the phone's consult call. The phone's final NOTIFY says how it ended (200 the
        target answered or the caller is queued); a refused one is logged and notified (403 the dial policy's
        refusal, 404 an unknown target, 603 otherwise); the call goes on."""
        call_id = t.caller.id
        dest = parse_refer_to(refer_to)
        try:
            if dest is None:
                raise CallControlError(400, "the Refer-To is not a sip: URI with a plain user part")
            user, replaces = dest
            kind = "number"
            if await self.queueing.router.agent_info(user) is not None:
                kind = "agent"
            elif user in ((await self.queueing.router.current_rules()) or {}).get("queues", {}):
                kind = "queue"
            await self.blind(call_id, kind, user, "phone", replaces, outcome)
        except CallControlError as exc:
            log.warning("phone transfer refused", call_id=call_id, agent_id=t.agent_id, status=exc.status,
                        error=str(exc))
            outcome(exc.status if exc.status in (403, 404) else 603)
            await queue_event(self.cdr, "TRANSFER_REFUSED", call_id, t.queue, t.agent_id, by="phone",
                              reason=exc.rule or str(exc))
        except Exception:
            outcome(SIPFRAG["failed"])
            raise

    # -- attended -------------------------------------------------------------------------------

    async def consult(self, call_id: str, kind: str, target: str, by: str) -> Consult:
        """Hold the caller and ring ``target`` (an agent or a number) for the agent to talk to first."""
        t = self._talk(call_id)
        tg = await (self._queue_agent(t, target) if kind == "queue" else self._target(call_id, t, kind, target))
        fut: asyncio.Future[Segment | None] = asyncio.get_running_loop().create_future()
        c = Consult(call_id, t, tg, by, Handoff("ATTENDEDTRANSFER", tg.to, by, target=fut, announce=False))
        self.sessions[call_id] = c
        if await self.queueing.hold(call_id, True, by) not in (HoldResult.DONE, HoldResult.UNCHANGED):
            del self.sessions[call_id]
            await self._release(tg)
            raise CallControlError(409, "the call is not talking to an agent")
        t.handoff = c.handoff        # from now on the agent hanging up hands the caller to the target
        log.info("consult ringing", call_id=call_id, kind=tg.kind, to=tg.to, agent_id=t.agent_id, by=by)
        self.tasks.spawn(self._run(c), "consult", call_id=call_id)
        return c

    async def complete(self, call_id: str, by: str) -> Consult:
        return self._act(call_id, "complete", by)

    async def cancel(self, call_id: str, by: str) -> Consult:
        return self._act(call_id, "cancel", by)

    async def conference(self, call_id: str, by: str) -> Consult:
        return self._act(call_id, "conference", by)

    def _act(self, call_id: str, action: str, by: str) -> Consult:
        c = self.sessions.get(call_id)
        if c is None:
            raise CallControlError(404, "no transfer under way on this call")
        if c.action is not None:
            raise CallControlError(409, f"the transfer is already being ended ({c.action})")
        if action != "cancel" and c.state != "consulting":
            raise CallControlError(409, "the target has not answered yet")
        c.action = action
        c.wake.set()
        log.info("consult " + action, call_id=call_id, to=c.target.to, by=by)
        return c

    async def _run(self, c: Consult) -> None:
        t, tg = c.talk, c.target
        fut = c.handoff.target
        assert fut is not None
        result = "failed"
        await self._tell(c)
        try:
            # The agent hanging up while the target rings still hands the caller over: not a stop.
            leg = await self.ring(tg.uri, self._headers(c.call_id, t, "attended"), c.wake.wait(),
                                  t.caller.wait_ended())
            if leg is None or isinstance(leg, str):
                result = leg or ("cancelled" if c.action == "cancel" else "call_ended")
                return
            c.leg, c.answered, c.state = leg, time.time(), "consulting"
            if t.agent.ended:                # the agent hung up while it rang: the target takes the caller
                result = "completed"
                return
            await t.agent.bridge(leg)        # agent <-> target; the caller still hears the music
            await queue_event(self.cdr, "CONSULT", c.call_id, t.queue, t.agent_id, to=tg.to, by=c.by)
            await self._tell(c)
            result = await self._consulting(c, leg)
        except Exception:
            log.exception("consult failed", call_id=c.call_id, to=tg.to)
            raise
        finally:
            await self._end(c, result)
            await self._tell(c, result=result)

    async def _tell(self, c: Consult, **more: str) -> None:
        """The consult on the event bus (``call.consult``: ringing, consulting, then how it ended), the call's
        agent's event: its desk shows the consult and its controls whoever started it (its own form, a supervisor
        through the API) and closes them at the end. A number consulted is masked (supervisors see the event)."""
        tg = c.target
        await bus.publish(self.cdr.redis, self.cdr.prefix, {
            "type": "call.consult", "call_id": c.call_id, "queue": c.talk.queue, "agent": c.talk.agent_id,
            "consult": c.id, "state": c.state, "kind": tg.kind, "target_agent": tg.agent_id, "by": c.by,
            "target": tg.agent_id or mask_number(tg.to.partition(":")[2]), **more})

    async def _consulting(self, c: Consult, leg: Leg) -> str:
        """Until the API's action, or the target, the agent or the caller hangs up: how the consult ended."""
        t = c.talk
        waits = {asyncio.ensure_future(c.wake.wait()): "action",
                 asyncio.ensure_future(leg.wait_ended()): "refused",
                 asyncio.ensure_future(t.agent.wait_ended()): "completed",
                 asyncio.ensure_future(t.caller.wait_ended()): "call_ended"}
        try:
            done, _ = await asyncio.wait(list(waits), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        why = next(waits[d] for d in waits if d in done)
        if why == "action":
            return {"complete": "completed", "cancel": "cancelled"}.get(c.action or "", c.action or "cancelled")
        return why

    async def _end(self, c: Consult, result: str) -> None:
        """The consult's outcome: the caller handed over, three-way, or back with its agent."""
        t, tg, leg = c.talk, c.target, c.leg
        fut = c.handoff.target
        assert fut is not None
        if self.sessions.get(c.call_id) is c:
            del self.sessions[c.call_id]
        if result == "completed" and leg is not None and not leg.ended:
            c.state = "completed"
            fut.set_result(self._segment(tg, leg, c.started, c.answered))
            if not t.agent.ended:
                await self.queueing.hand_off(t, c.handoff)
            return
        if t.handoff is c.handoff:
            t.handoff = None
        fut.set_result(None)                 # the agent left meanwhile: the caller waits in the queue again
        if result == "conference" and leg is not None and not leg.ended and not t.agent.ended:
            await self.queueing.hold(c.call_id, False, c.by)
            try:
                self.conferences.join(c.call_id, leg, tg.kind, tg.uri, tg.agent_id, tg.prev_state, c.by)
                c.state = "conference"
                await queue_event(self.cdr, "CONSULT_END", c.call_id, t.queue, t.agent_id, to=tg.to,
                                  result="conference", by=c.by)
                return
            except CallControlError as exc:
                log.warning("consult not turned into a conference", call_id=c.call_id, error=str(exc))
                result = "conference_refused"
        c.state = "refused" if result in ("refused", "busy", "no_answer", "rejected") else "ended"
        if leg is not None:
            with contextlib.suppress(Exception):
                await leg.hangup()
        if not t.agent.ended and not t.caller.ended:
            await self.queueing.hold(c.call_id, False, c.by)
        await self._release(tg)
        await leg_record(self.cdr, LegRecord(leg.id if leg is not None else uuid.uuid4().hex, c.call_id, "consult",
                                             tg.uri, tg.agent_id, c.started, c.answered, time.time(), None, result))
        await queue_event(self.cdr, "CONSULT_END", c.call_id, t.queue, t.agent_id, to=tg.to, result=result,
                          by=c.by)
        log.info("consult ended", call_id=c.call_id, to=tg.to, result=result)

    # -- shared ---------------------------------------------------------------------------------

    def _talk(self, call_id: str) -> Talk:
        t = self.bridged(call_id, "transferred")
        if call_id in self.sessions or t.handoff is not None:
            raise CallControlError(409, "a transfer of this call is already under way")
        return t

    async def _target(self, call_id: str, t: Talk, kind: str, target: str) -> Target:
        if kind == "queue":
            rules = await self.queueing.router.current_rules()
            if not rules or target not in (rules.get("queues") or {}):
                raise CallControlError(404, f"unknown queue {target}")
            return Target("queue", f"queue:{target}")
        if kind == "number":
            uri = await self.number_uri(call_id, target, t.queue, "transfer")
            return Target("number", "number:" + uri.removeprefix("sip:").split("@", 1)[0], uri)
        if kind != "agent":
            raise CallControlError(400, f"a transfer goes to one of: {', '.join(KINDS)}")
        if target == t.agent_id:
            raise CallControlError(409, f"the call is already with agent {target}")
        uri, prev = await self.reserve_agent(target, "transfer")
        return Target("agent", f"agent:{target}", uri, target, prev)

    async def _queue_agent(self, t: Talk, queue: str) -> Target:
        """A consult of a queue: its free agent idle the longest, reserved like a consulted agent (a free agent
        has no caller of its queues waiting: the router would have offered it one). 409 when none is free."""
        await self._target("", t, "queue", queue)          # 404 unknown queue
        free = sorted((a for a in await self.queueing.router.agents()
                       if a["state"] == "available" and queue in a["queues"] and a["id"] != t.agent_id),
                      key=lambda a: -float(a["state_seconds"]))
        for a in free:
            with contextlib.suppress(CallControlError):
                return await self._target("", t, "agent", str(a["id"]))
        raise CallControlError(409, f"no agent of queue {queue} is free to consult")

    async def _release(self, tg: Target) -> None:
        if tg.agent_id is not None and tg.prev_state is not None:
            await self.release_agent(tg.agent_id, tg.prev_state)

    def _segment(self, tg: Target, leg: Leg, rung: float, answered: float | None = None) -> Segment:
        """The target's part of the call once it takes the caller. At its end an agent that was available is
        counted a handled call and goes to wrap-up like after a queue call (one that was paused stays so)."""
        async def release(talk: float) -> None:
            if talk <= 0:                    # it hung up as it answered: nothing handled
                await self._release(tg)
            elif tg.agent_id is not None and tg.prev_state == "available":
                with contextlib.suppress(Exception):
                    await self.queueing.router.agent_wrap_up(tg.agent_id, talk)

        return Segment(leg, tg.agent_id or "", tg.uri, answered or time.time(), "transfer", rung, release)

    def _headers(self, call_id: str, t: Talk, mode: str) -> dict[str, str]:
        return {"X-Callcenter-Call-Id": call_id, "X-Callcenter-Queue": t.queue, "X-Callcenter-Transfer": mode,
                "P-Asserted-Identity": f"<sip:{t.caller.caller or 'anonymous'}@callcenter.invalid>"}

    async def _failed(self, call_id: str, t: Talk, tg: Target, h: Handoff, leg: Leg | None, started: float,
                      result: str) -> None:
        await self._release(tg)
        await leg_record(self.cdr, LegRecord(leg.id if leg is not None else uuid.uuid4().hex, call_id, "transfer",
                                             tg.uri, tg.agent_id, started, None, time.time(), None, result))
        await queue_event(self.cdr, "TRANSFER_FAILED", call_id, t.queue, tg.agent_id, to=tg.to, result=result,
                          by=h.by)
        log.info("transfer not answered", call_id=call_id, to=tg.to, result=result)
