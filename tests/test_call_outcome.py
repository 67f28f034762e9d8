"""calls/outcome.py: the one vocabulary for how a call ended (originate results, hangup cause and side,
the first of two legs to end)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from callcenter.calls.outcome import (
    attempt_outcome,
    first_to_end,
    hangup_cause,
    hangup_side,
    offer_result,
    record_outcome,
)
from callcenter.cdr.record import OUTCOMES
from callcenter.routing.router import OFFER_FAILURES
from callcenter.telephony.api import HangupInfo, HangupSide, Leg, OriginateResult

UNANSWERED = [r for r in OriginateResult if r is not OriginateResult.ANSWERED]


@pytest.mark.parametrize("result", UNANSWERED)
def test_each_vocabulary_names_every_unanswered_result_in_its_own_words(result: OriginateResult) -> None:
    assert offer_result(result) in OFFER_FAILURES        # the router refuses any other word
    assert record_outcome(result) in OUTCOMES            # the KPIs read only these
    assert attempt_outcome(result) in ("busy", "no_answer", "rejected", "failed", "invalid")


def test_a_number_that_does_not_exist_is_a_refusal_a_failure_or_a_wrong_number_by_who_asks() -> None:
    invalid = OriginateResult.INVALID
    assert (offer_result(invalid), record_outcome(invalid), attempt_outcome(invalid)) == \
        ("rejected", "failed", "invalid")
    for result in (OriginateResult.BUSY, OriginateResult.NO_ANSWER, OriginateResult.REJECTED,
                   OriginateResult.FAILED):   # the rest read the same everywhere
        assert offer_result(result) == record_outcome(result) == attempt_outcome(result) == result.value


def test_answered_without_a_leg_is_a_failure() -> None:
    answered = OriginateResult.ANSWERED
    assert offer_result(answered) == record_outcome(answered) == attempt_outcome(answered) == "failed"


def test_hangup_cause_and_side() -> None:
    bye = HangupInfo(HangupSide.CALLER, 200, "BYE")
    assert hangup_cause(bye) == "200 BYE"
    assert hangup_cause(HangupInfo(HangupSide.SYSTEM, 487, "")) == "487"
    assert hangup_side(bye) == "caller" and hangup_side(bye, "agent") == "agent"
    assert hangup_side(HangupInfo(HangupSide.SYSTEM, 200, "BYE"), "agent") == "system"


class EndingLeg:
    """Only what first_to_end uses of a leg: it ends when ``end`` is called."""

    def __init__(self, name: str) -> None:
        self.id = name
        self._ended = asyncio.Event()
        self.info = HangupInfo(HangupSide.CALLER, 200, f"BYE from {name}")
        self.waiting = 0

    def end(self) -> None:
        self._ended.set()

    async def wait_ended(self) -> HangupInfo:
        self.waiting += 1
        try:
            await self._ended.wait()
            return self.info
        finally:
            self.waiting -= 1


def test_first_to_end_names_the_leg_that_ended_first_and_stops_waiting_for_the_other() -> None:
    async def go() -> tuple[str, str, int]:
        caller, agent = EndingLeg("caller"), EndingLeg("agent")
        asyncio.get_running_loop().call_later(0.02, agent.end)
        first, info = await first_to_end(cast(Leg, caller), cast(Leg, agent))
        await asyncio.sleep(0)   # the cancelled wait unwinds
        return first.id, info.reason, caller.waiting

    assert asyncio.run(go()) == ("agent", "BYE from agent", 0)


def test_first_to_end_prefers_the_first_leg_when_both_have_ended() -> None:
    async def go() -> str:
        a, b = EndingLeg("a"), EndingLeg("b")
        b.end()
        a.end()
        first, _ = await first_to_end(cast(Leg, a), cast(Leg, b))
        return first.id

    assert asyncio.run(go()) == "a"
