"""Conference of a bridged caller<->agent call with up to ``MAX_PARTIES`` parties in all.

    party = await conferences.add(call_id, "agent", "1002", by="api:ana")     # or ("number", "0901234567")
    await conferences.mute(call_id, party.id, True, by=...)
    await conferences.leave(call_id, by=...)      # the call's agent hangs up; the others stay connected

An added party (another agent's phone, or a number through the trunk after the dial policy: E.164, classes,
DNC) is rung like a monitor session's supervisor (calls/monitor.py); on answer its leg joins the conference
bridge with one-way connections to and from every other party (``PjLeg.send_audio``): everyone hears
everyone. The caller and the agent stay bridged to each other as before. A muted party is heard by nobody
and still hears everyone. The caller is a party ("caller"), so is the call's agent ("agent"); added parties
are named by their agent id or ``p<n>`` for numbers.

The agent leaving (``leave``) marks the call's Talk as kept by the conference (``Talk.kept``): Queueing
then ends the agent's part (wrap-up, COMPLETEAGENT, its leg: the agent is free, as after a transfer) and waits
for the caller's end instead of ending the call with the agent's. Each added party leaves a CDR
leg of kind ``conference`` (result: answered, or why not: no_answer, busy, ...), and CONFERENCE_ADD /
CONFERENCE_LEAVE go to the queue log. An added agent is paused ``conference`` in routing while rung and
connected (made ready again after if it was available).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from callcenter import logs, metrics
from callcenter.calls.extra_party import AudioTap, CallControlError, ExtraParties
from callcenter.calls.queueing import Queueing, Talk
from callcenter.calls.records import leg_record, queue_event
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.record import LegRecord
from callcenter.telephony.api import Leg, Softswitch

log = logs.get("conference")

MAX_PARTIES = 5


class ConferenceError(CallControlError):
    """A conference request that cannot be done; ``status`` is the HTTP status, ``rule`` why (dial policy)."""


@dataclass
class Party:
    id: str
    kind: str                       # caller | agent | added agent ("agent") | number
    uri: str
    agent_id: str | None = None
    leg: Leg | None = None
    state: str = "ringing"          # ringing | connected | left
    muted: bool = False
    held: bool = False              # an added party on hold: hears the music, heard by nobody
    started: float = field(default_factory=time.time)
    answered: float | None = None
    result: str | None = None
    prev_state: str | None = None   # an added agent's routing state before it was rung

    def as_dict(self) -> dict[str, Any]:
        return {"party": self.id, "kind": self.kind, "agent": self.agent_id, "state": self.state,
                "muted": self.muted, "held": self.held}

    @property
    def heard(self) -> bool:
        return not self.muted and not self.held


@dataclass
class Conference:
    call_id: str
    talk: Talk
    parties: dict[str, Party] = field(default_factory=dict)
    numbers: int = 0

    def live(self) -> list[Party]:
        return [p for p in self.parties.values() if p.state != "left"]

    def as_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "parties": [p.as_dict() for p in self.live()]}


class Conferences(ExtraParties[Conference]):
    """This worker's conferences, one per bridged call."""

    def __init__(self, queueing: Queueing, switch: Softswitch, cdr: CdrBuffer, *,
                 ring_timeout: float = 20.0, caller_id: str = "conference") -> None:
        super().__init__(queueing, switch, cdr, ring_timeout=ring_timeout, caller_id=caller_id)

    def get(self, call_id: str) -> Conference | None:
        c = self.sessions.get(call_id)
        if c is not None and (c.talk.over or c.talk.caller.ended):
            del self.sessions[call_id]
            return None
        return c

    def _conference(self, call_id: str) -> Conference:
        c = self.get(call_id)
        if c is not None:
            return c
        try:
            t = self.bridged(call_id, "conferenced")
        except CallControlError as exc:
            raise ConferenceError(exc.status, str(exc)) from None
        c = Conference(call_id, t)
        c.parties["caller"] = Party("caller", "caller", t.caller.caller, None, t.caller, "connected")
        c.parties["agent"] = Party("agent", "agent", "", t.agent_id, t.agent, "connected")
        self.sessions[call_id] = c
        return c

    async def add(self, call_id: str, kind: str, target: str, by: str) -> Party:
        """Ring ``target`` (an agent id, or a number when kind is "number") for the call; 409 beyond 5."""
        c = self._conference(call_id)
        if len(c.live()) >= MAX_PARTIES:
            raise ConferenceError(409, f"a conference has at most {MAX_PARTIES} parties")
        try:
            if kind == "number":
                uri = await self.number_uri(call_id, target, c.talk.queue, "conference")
                c.numbers += 1
                party = Party(f"p{c.numbers}", "number", uri)
            else:
                if target in c.parties or target == c.talk.agent_id:
                    raise ConferenceError(409, f"agent {target} is already in the call")
                uri, state = await self.reserve_agent(target, "conference")
                party = Party(target, "agent", uri, target, prev_state=state)
        except CallControlError as exc:
            raise ConferenceError(exc.status, str(exc), exc.rule) from None
        return self._add(c, party, by)

    def join(self, call_id: str, leg: Leg, kind: str, uri: str, agent_id: str | None, prev_state: str | None,
             by: str) -> Party:
        """A party already answered (an attended transfer's target, calls/transfer.py) joins the call: three-way.
        An agent's routing state ``prev_state`` comes back when it leaves."""
        c = self._conference(call_id)
        if len(c.live()) >= MAX_PARTIES:
            raise ConferenceError(409, f"a conference has at most {MAX_PARTIES} parties")
        if agent_id is None:
            c.numbers += 1
        return self._add(c, Party(agent_id or f"p{c.numbers}", kind, uri, agent_id, leg, prev_state=prev_state), by)

    def _add(self, c: Conference, party: Party, by: str) -> Party:
        c.parties[party.id] = party
        metrics.CONFERENCE_PARTIES_TOTAL.labels(result="added").inc()
        log.info("conference ringing", call_id=c.call_id, party=party.id, kind=party.kind, by=by)
        self.tasks.spawn(self._run(c, party, by), "conference", call_id=c.call_id)
        return party

    async def mute(self, call_id: str, party_id: str, on: bool, by: str) -> Party:
        """A muted party is heard by nobody (nor in the recording); it still hears everyone."""
        c, p = self._party(call_id, party_id)
        p.muted = on
        await self._connect(c, p, both=False)
        await queue_event(self.cdr, "CONFERENCE_MUTE" if on else "CONFERENCE_UNMUTE", call_id, c.talk.queue,
                          p.agent_id, party=p.id, by=by)
        log.info("conference mute" if on else "conference unmute", call_id=call_id, party=p.id, by=by)
        return p

    async def hold(self, call_id: str, party_id: str, on: bool, by: str) -> Party:
        """An added party on hold hears the call's hold music instead of the others and is heard by nobody;
        taken off hold it is connected as before (a mute kept). The caller and the call's agent are held
        with the call's own hold (``POST /calls/{call_id}/hold``)."""
        c, p = self._party(call_id, party_id)
        if p.id in ("caller", "agent"):
            raise ConferenceError(409, "the caller and the call's agent are held with POST /calls/{call_id}/hold")
        if p.state != "connected" or p.leg is None:
            raise ConferenceError(409, "the party has not answered yet")
        if p.held == on:
            return p
        p.held = on
        if on:
            await p.leg.start_hold(c.talk.music)
        await self._connect(c, p, both=True)
        if not on:
            await p.leg.stop_hold()
        await queue_event(self.cdr, "CONFERENCE_HOLD" if on else "CONFERENCE_UNHOLD", call_id, c.talk.queue,
                          p.agent_id, party=p.id, by=by)
        log.info("conference hold" if on else "conference unhold", call_id=call_id, party=p.id, by=by)
        return p

    def _party(self, call_id: str, party_id: str) -> tuple[Conference, Party]:
        c = self.get(call_id)
        p = c.parties.get(party_id) if c is not None else None
        if c is None or p is None or p.state == "left":
            raise ConferenceError(404, "no such party in the call's conference")
        return c, p

    async def leave(self, call_id: str, by: str) -> Conference:
        """The call's agent hangs up; the caller and the added parties stay connected."""
        c = self.get(call_id)
        if c is None or not any(p.state == "connected" and p.id != "caller" and p.id != "agent" for p in c.live()):
            raise ConferenceError(409, "no connected conference party: the agent would leave the caller alone")
        agent = c.parties["agent"]
        c.talk.kept = True
        agent.state = "left"
        await queue_event(self.cdr, "CONFERENCE_LEAVE", call_id, c.talk.queue, c.talk.agent_id, party="agent", by=by)
        log.info("conference leave", call_id=call_id, agent_id=c.talk.agent_id, by=by)
        await c.talk.agent.hangup()
        return c

    # -- one added party --------------------------------------------------------------------------

    async def _run(self, c: Conference, p: Party, by: str) -> None:
        try:
            if p.leg is None:
                p.leg = await self._ring(c, p)
            if p.leg is None:
                return
            p.state, p.answered = "connected", time.time()
            await self._join(c, p)
            # on the bus the event is the call's agent's (its desk shows the conference, whoever added the
            # party: its own desk, a three-way consult, a supervisor); the added agent is party_agent
            await queue_event(self.cdr, "CONFERENCE_ADD", c.call_id, c.talk.queue, p.agent_id, party=p.id,
                              kind=p.kind, by=by, push={"agent": c.talk.agent_id, "party_agent": p.agent_id})
            log.info("conference joined", call_id=c.call_id, party=p.id, parties=len(c.live()))
            ends = [asyncio.ensure_future(p.leg.wait_ended()), asyncio.ensure_future(c.talk.caller.wait_ended())]
            try:
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for e in ends:
                    e.cancel()
            p.result = "answered"
        except Exception as exc:
            p.result = p.result or "failed"
            log.exception("conference party failed", call_id=c.call_id, party=p.id, error=str(exc))
        finally:
            await self._end(c, p, by)

    async def _ring(self, c: Conference, p: Party) -> Leg | None:
        headers = {"X-Callcenter-Call-Id": c.call_id, "X-Callcenter-Queue": c.talk.queue,
                   "X-Callcenter-Conference": p.id}
        leg = await self.ring(p.uri, headers, c.talk.caller.wait_ended())
        if leg is None or isinstance(leg, str):
            p.result = leg or "call_ended"
            return None
        if c.talk.caller.ended:
            p.result = "call_ended"
            await leg.hangup()
            return None
        return leg

    async def _join(self, c: Conference, p: Party) -> None:
        """Full mesh: the new party hears every other connected party but the muted and held ones, and is
        heard by all but the held ones."""
        await self._connect(c, p, both=True)

    async def _connect(self, c: Conference, p: Party, *, both: bool) -> None:
        """``p``'s connections as its state says: heard by every other connected party (and in the recording)
        unless muted or held, or that party is held; with ``both``, also hearing each of them unless held
        (the caller and the call's agent only ever change what they send: their bridge is the call's)."""
        if p.state != "connected" or p.leg is None:
            return
        assert isinstance(p.leg, AudioTap)
        for o in c.live():
            if o is p or o.state != "connected" or o.leg is None or o.leg.ended:
                continue
            assert isinstance(o.leg, AudioTap)
            if both:
                await o.leg.send_audio(p.leg, o.heard and not p.held)
            await p.leg.send_audio(o.leg, p.heard and not o.held)
        if p.id not in ("caller", "agent"):
            self._record(c, p, p.heard)

    def _record(self, c: Conference, p: Party, on: bool) -> None:
        """An added party in the call's recording (mixed into the agent's channel), or no longer."""
        if self.queueing.recordings is not None and p.leg is not None:
            self.queueing.recordings.mix(c.call_id, p.leg, on)

    async def _end(self, c: Conference, p: Party, by: str) -> None:
        answered = p.answered is not None
        p.state = "left"
        if p.leg is not None:
            leg = p.leg
            assert isinstance(leg, AudioTap)
            self._record(c, p, False)
            with contextlib.suppress(Exception):
                for o in c.parties.values():
                    if o is not p and o.leg is not None:
                        assert isinstance(o.leg, AudioTap)
                        await o.leg.send_audio(leg, False)
                        await leg.send_audio(o.leg, False)
            with contextlib.suppress(Exception):
                await leg.hangup()
        if p.kind == "agent" and p.agent_id is not None and p.prev_state is not None:
            await self.release_agent(p.agent_id, p.prev_state)
        metrics.CONFERENCE_PARTIES_TOTAL.labels(result=p.result or "failed").inc()
        await leg_record(self.cdr, LegRecord(p.leg.id if p.leg is not None else uuid.uuid4().hex, c.call_id,
                                             "conference", p.uri, p.agent_id,
                                             p.started, p.answered, time.time(), None, p.result or "failed"))
        if answered:
            await queue_event(self.cdr, "CONFERENCE_LEAVE", c.call_id, c.talk.queue, p.agent_id, party=p.id)
        log.info("conference party ended", call_id=c.call_id, party=p.id, result=p.result)
