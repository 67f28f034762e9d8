"""Prompt lists for queue announcements.

A caller's time in queue (:mod:`callcenter.calls.queueing`, not the IVR) plays these while the caller
waits; they live here with the other prompt knowledge: names are resolved with :func:`prompts.paths`.
"""

from __future__ import annotations

from callcenter.ivr.saynumber import say

# Every name below must exist in sounds/<lang>/ (the checker requires them when a flow queues).
QUEUE_PROMPTS = ("queue/position_is", "queue/caller_number", "queue/estimated_wait", "queue/less_than_minute",
                 "queue/minutes", "queue/press_1_callback", "queue/callback_confirmed", "queue/all_busy",
                 "queue/thanks_for_holding", "queue/callback_number_is", "queue/callback_confirm_or_change",
                 "queue/callback_enter_number", "queue/callback_number_refused", "queue/callback_limit_reached",
                 "queue/transferring")
SYSTEM_PROMPTS = ("system/sorry_error", "system/goodbye")


def position(pos: int, lang: str) -> list[str]:
    """"Your position in the queue is three" / "Quý khách đang ở vị trí số ba"."""
    return ["queue/position_is", *say("number", pos, lang)]


def caller_number(pos: int, lang: str) -> list[str]:
    """"You are caller number three"."""
    return ["queue/caller_number", *say("number", pos, lang)]


def estimated_wait(seconds: float, lang: str) -> list[str]:
    """Rounded up to whole minutes: callers want an order of magnitude, not a countdown."""
    if seconds < 60:
        return ["queue/estimated_wait", "queue/less_than_minute"]
    minutes = int((seconds + 59) // 60)
    return ["queue/estimated_wait", *say("number", minutes, lang), "queue/minutes"]


def callback_offer() -> list[str]:
    return ["queue/press_1_callback"]


def callback_confirmed() -> list[str]:
    return ["queue/callback_confirmed"]


def callback_read_back(spoken: list[str]) -> list[str]:
    """"We will call you back on 0 9 1 2 ... Press 1 to confirm, 2 to key another number"."""
    return ["queue/callback_number_is", *spoken, "queue/callback_confirm_or_change"]


def callback_enter_number() -> list[str]:
    return ["queue/callback_enter_number"]


def callback_refused() -> list[str]:
    """The number cannot be called back (premium, international, DNC...): key another, or keep waiting."""
    return ["queue/callback_number_refused"]


def callback_refused_cap() -> list[str]:
    """Too many callbacks to that number today (or from this line this hour): the caller keeps waiting."""
    return ["queue/callback_limit_reached"]


def transferring() -> list[str]:
    """A blind transfer (calls/transfer.py): "Your call is being transferred. Please hold."."""
    return ["queue/transferring"]
