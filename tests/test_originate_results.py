"""How a final SIP status of an outbound INVITE becomes a dial result (agent offers and the dialer)."""

from __future__ import annotations

import pytest

from callcenter.telephony.api import OriginateResult as R
from callcenter.telephony.softswitch import result_for_code


@pytest.mark.parametrize(("code", "timed_out", "expected"), [
    (486, False, R.BUSY), (600, False, R.BUSY),
    (408, False, R.NO_ANSWER), (480, False, R.NO_ANSWER), (487, True, R.NO_ANSWER), (0, True, R.NO_ANSWER),
    (404, False, R.INVALID), (484, False, R.INVALID), (604, False, R.INVALID),
    (403, False, R.REJECTED), (603, False, R.REJECTED), (488, False, R.REJECTED),
    (500, False, R.FAILED), (503, False, R.FAILED), (0, False, R.FAILED),
])
def test_final_status_to_dial_result(code: int, timed_out: bool, expected: R) -> None:
    assert result_for_code(code, timed_out) is expected


def test_the_edge_saying_no_phone_is_registered_is_its_own_result() -> None:
    assert result_for_code(480, False, "480 Agent not registered") is R.UNREGISTERED
    assert result_for_code(480, False, "480 Temporarily Unavailable") is R.NO_ANSWER   # a phone's own 480
