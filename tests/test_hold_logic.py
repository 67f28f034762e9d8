"""Queueing.hold as a state machine, on scripted legs (no SIP: the audio is proved in test_hold_sip.py):
what it answers for unknown, queued and bridged calls, that a repeated hold or unhold changes nothing,
that every change is one HOLD / UNHOLD line naming who asked, and that the spans add up."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from callcenter.calls.queueing import HoldResult, Queueing, Talk, Waiter
from callcenter.cdr.record import QueueEvent
from callcenter.ivr.simulate import ScriptedLeg


class Events:
    """The queue log as Queueing writes it (the CdrBuffer's write()), and the event bus beside it (the
    buffer's Redis: ``xadd``)."""

    prefix = "cc:"

    def __init__(self) -> None:
        self.lines: list[QueueEvent] = []
        self.pushed: list[dict[str, Any]] = []
        self.redis = self

    async def write(self, *records: object) -> None:
        self.lines.extend(r for r in records if isinstance(r, QueueEvent))

    async def xadd(self, key: str, fields: dict[str, Any], **_: Any) -> str:
        self.pushed.append(fields)
        return f"{len(self.pushed)}-0"


def _queueing(events: Events) -> Queueing:
    nothing = cast(Any, None)      # hold touches neither the router, the switch, the live calls nor the policy
    return Queueing(nothing, nothing, cast(Any, events), nothing, policy=nothing)


def test_hold_answers_unknown_queued_and_bridged_calls() -> None:
    async def go() -> None:
        events = Events()
        q = _queueing(events)
        caller, agent = ScriptedLeg(), ScriptedLeg()
        assert await q.hold("nope", True, "api:sup") is HoldResult.UNKNOWN
        q.waiting[caller.id] = cast(Waiter, object())
        assert await q.hold(caller.id, True, "api:sup") is HoldResult.NOT_BRIDGED
        t = Talk(caller, agent, "support", "1003", "/sounds/moh.wav")
        q.talking[caller.id] = t
        assert await q.hold(caller.id, False, "api:sup") is HoldResult.UNCHANGED      # not held yet
        assert await q.hold(caller.id, True, "api:sup") is HoldResult.DONE
        assert t.held and t.holds == 1
        assert await q.hold(caller.id, True, "phone") is HoldResult.UNCHANGED
        assert await q.hold(caller.id, False, "phone") is HoldResult.DONE
        assert not t.held and t.hold_seconds >= 0
        assert await q.hold(caller.id, True, "phone") is HoldResult.DONE
        assert await q.hold(caller.id, False, "api:agent") is HoldResult.DONE
        assert t.holds == 2
        lines = [(e.event, e.call_id, e.queue, e.agent_id, e.data["by"]) for e in events.lines]
        assert [f["type"] for f in events.pushed] == ["call.held", "call.unheld"] * 2      # each line's event
        assert lines == [("HOLD", caller.id, "support", "1003", "api:sup"),
                         ("UNHOLD", caller.id, "support", "1003", "phone"),
                         ("HOLD", caller.id, "support", "1003", "phone"),
                         ("UNHOLD", caller.id, "support", "1003", "api:agent")]
        spans = [e.data["onhold"] for e in events.lines if e.event == "UNHOLD"]
        assert abs(sum(spans) - t.hold_seconds) < 0.01

    asyncio.run(go())


def test_no_hold_change_once_the_talk_is_over_or_a_leg_ended() -> None:
    async def go() -> None:
        events = Events()
        q = _queueing(events)
        caller, agent = ScriptedLeg(), ScriptedLeg()
        t = Talk(caller, agent, "support", "1003", "/sounds/moh.wav")
        q.talking[caller.id] = t
        t.over = True
        assert await q.hold(caller.id, True, "phone") is HoldResult.UNCHANGED
        t.over = False
        await agent.hangup()
        assert await q.hold(caller.id, True, "phone") is HoldResult.UNCHANGED
        assert events.lines == [] and t.holds == 0

    asyncio.run(go())
