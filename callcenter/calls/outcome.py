"""How a call ended, in words: one place for the vocabulary the call layer writes into CDRs, the queue
log and the dialer's contact state.

An originate that did not end in an answered leg is named in three vocabularies, which differ only in
what a number that does not exist (``OriginateResult.INVALID``: 404, 484, 604) becomes:

- ``offer_result``: an agent offer, in the router's words (``routing.router.OFFER_FAILURES``) and the
  ``callcenter_agent_offers_total`` label. An agent URI that does not exist counts as the phone
  refusing the call, "rejected" (the router has no word for it, and the miss is the agent's).
  The queue's callback records (the customer leg it dials for an agent) keep this word too. An agent with
  no phone registered at the SIP edge (``OriginateResult.UNREGISTERED``) is "unregistered": no miss, the
  router pauses the agent (reason no_phone) instead; elsewhere that result reads "failed".
- ``record_outcome``: a CallRecord's ``outcome`` (``cdr.record.OUTCOMES``, which the KPIs read):
  "failed", the call never reached anyone.
- ``attempt_outcome``: a dial attempt for a campaign contact (``dialer.outcomes.decide``): "invalid",
  which closes the contact as a wrong number instead of retrying it.

A result of ANSWERED without a leg (the leg ended while it was being answered) is "failed" in all three.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from callcenter.telephony.api import HangupInfo, HangupSide, Leg, OriginateResult, Softswitch

_COMMON = {OriginateResult.BUSY: "busy", OriginateResult.NO_ANSWER: "no_answer",
           OriginateResult.REJECTED: "rejected", OriginateResult.FAILED: "failed"}
_OFFER = {**_COMMON, OriginateResult.INVALID: "rejected", OriginateResult.UNREGISTERED: "unregistered"}
_RECORD = {**_COMMON, OriginateResult.INVALID: "failed", OriginateResult.UNREGISTERED: "failed"}
_ATTEMPT = {**_COMMON, OriginateResult.INVALID: "invalid", OriginateResult.UNREGISTERED: "failed"}


def offer_result(result: OriginateResult) -> str:
    """An unanswered agent offer (or the callback customer's leg), in the router's vocabulary."""
    return _OFFER.get(result, "failed")


def record_outcome(result: OriginateResult) -> str:
    """An unanswered outbound call's CallRecord outcome."""
    return _RECORD.get(result, "failed")


def attempt_outcome(result: OriginateResult) -> str:
    """An unanswered campaign dial, as the dialer decides the contact's next step from it."""
    return _ATTEMPT.get(result, "failed")


def hangup_cause(info: HangupInfo) -> str:
    """The CDR's ``hangup_cause``: the dialog's last SIP status and its reason ("200 BYE", "486 Busy Here")."""
    return f"{info.sip_code} {info.reason}".strip()


def hangup_side(info: HangupInfo, remote: str = "caller") -> str:
    """The CDR's ``hangup_side`` for a leg that ended: ``remote`` (the party on that leg: "caller",
    "agent") when it hung up, "system" when we did."""
    return remote if info.side is HangupSide.CALLER else "system"


async def first_to_end(a: Leg, b: Leg) -> tuple[Leg, HangupInfo]:
    """Wait until either leg ends: the one that ended first (``a`` when both already have) and how.
    The other leg is left as it is; the caller decides whether to hang it up."""
    ta, tb = asyncio.ensure_future(a.wait_ended()), asyncio.ensure_future(b.wait_ended())
    try:
        done, _ = await asyncio.wait({ta, tb}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ta.cancel()   # the waits only: cancelling one never touches its leg
        tb.cancel()
    first = ta if ta in done else tb
    return (a if first is ta else b), first.result()


async def ring_until(switch: Softswitch, uri: str, caller_id: str, timeout: float, headers: dict[str, str],
                     *stops: Awaitable[object]) -> Leg | str | None:
    """Ring `uri` for an extra party of a live call (a supervisor, a conference guest) until it answers, gives
    up, or one of `stops` completes. The answered leg; the unanswered result in the offer vocabulary
    (``offer_result``); None when a stop came first (the ringing is cancelled: the phone gets a CANCEL)."""
    ringing = asyncio.ensure_future(switch.originate(uri, caller_id, timeout, headers=headers))
    watch = [asyncio.ensure_future(x) for x in stops]
    try:
        await asyncio.wait([ringing, *watch], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in watch:
            w.cancel()
    if not ringing.done():
        ringing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ringing
        return None
    result, leg = ringing.result()
    if result is not OriginateResult.ANSWERED or leg is None:
        return offer_result(result)
    return leg
