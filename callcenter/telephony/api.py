"""The telephony API everything above `telephony/` uses.

It is small on purpose: IVR, queue and dialer code speak to call legs through this
protocol and never see pjsua2, so they can be tested against a real SIP peer (sipp)
or, for pure logic, against a scripted leg (`ivr.simulate`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class OriginateResult(enum.Enum):
    ANSWERED = "answered"
    BUSY = "busy"              # 486 / 600
    NO_ANSWER = "no_answer"    # ring timeout, 408, 480
    REJECTED = "rejected"      # 403 / 603 / other 4xx-6xx
    INVALID = "invalid"        # 404 / 484 / 604: number does not exist
    FAILED = "failed"          # transport error, 5xx, no route
    UNREGISTERED = "unregistered"  # 480 EDGE_UNREGISTERED: the SIP edge has no phone registered for the agent


EDGE_UNREGISTERED = "Agent not registered"   # the reason of the edge's 480 (deploy/kamailio/kamailio.cfg TO_AGENT)

# How a transfer a REFER asked for ended, told to the phone that sent it: the SIP status of its final NOTIFY's
# sipfrag ("SIP/2.0 200 OK"). Called once; later calls do nothing (Leg.on_transfer_request).
ReferOutcome = Callable[[int], None]


class HangupSide(enum.Enum):
    CALLER = "caller"      # the remote party of this leg sent BYE/CANCEL
    SYSTEM = "system"      # we hung up (IVR end, transfer, shutdown)


@dataclass(frozen=True)
class HangupInfo:
    side: HangupSide
    sip_code: int          # last SIP status of the dialog (200 for a normal BYE)
    reason: str            # human text, e.g. "BYE", "CANCEL", "486 Busy Here"


class Leg(Protocol):
    """One SIP call leg (a dialog plus its media)."""

    id: str            # our call-leg id (uuid4 hex); appears in logs and CDRs
    sip_call_id: str   # the SIP Call-ID header
    caller: str        # the caller's number: P-Asserted-Identity from a trusted source, else the From user
    caller_verified: bool  # True only when `caller` came from a trusted P-Asserted-Identity (a From is
                           # anyone's to write: never dial it back or look it up as proven)
    called: str        # user part of the request URI / To
    created: float     # when the leg was made (an incoming INVITE's arrival), epoch seconds

    @property
    def ended(self) -> bool: ...

    async def answer(self) -> None:
        """Send 200 OK (incoming) and wait for media to be active."""

    async def ring(self) -> None:
        """Send 180 Ringing (incoming, before answer)."""

    async def play(self, prompts: Sequence[str], barge_in: bool = True) -> str | None:
        """Play WAV files in order. With barge_in, the first DTMF digit stops playback and is returned
        (and left unconsumed in the digit buffer). Returns None when playback ran to its end.
        Raises CallGone if the leg ends."""

    async def collect(self, max_digits: int, timeout: float, inter_digit_timeout: float | None = None,
                      terminator: str | None = "#") -> str:
        """Read up to max_digits DTMF digits (from the buffer first). Stops at the terminator (not returned),
        at max_digits, when no first digit arrives within `timeout`, or when no next digit arrives within
        `inter_digit_timeout` (defaults to `timeout`). Returns what was collected ('' on timeout)."""

    def flush_digits(self) -> None:
        """Forget DTMF digits pressed but not yet consumed."""

    async def start_hold(self, music: str) -> None:
        """Loop the music file to this leg until stop_hold/bridge/play."""

    async def stop_hold(self) -> None: ...

    def on_remote_hold(self, listener: Callable[[bool], None] | None) -> None:
        """Call listener(True) when the far end puts this leg on hold (a re-INVITE with a=sendonly or
        a=inactive) and listener(False) when it resumes (sendrecv); None stops telling."""

    def on_transfer_request(self, listener: Callable[[str, ReferOutcome], None] | None) -> None:
        """Call listener(refer_to, outcome) when the far end asks to transfer this call (an in-dialog REFER; its
        Refer-To as sent). Nothing is dialed on its say-so: with a listener the REFER is accepted (202, the
        implicit subscription and its "100 Trying" NOTIFY) and the listener makes the transfer itself (an
        agent's phone: calls/transfer.py) and reports how it ended with ``outcome(code)``: the final NOTIFY's
        "SIP/2.0 <code>" (200 the target answered or the caller is queued; 403 refused, 486/480/503 ...).
        None: the REFER is declined 603 and logged."""

    async def record(self, path: str, max_seconds: float, silence_seconds: float | None = None) -> float:
        """Record the leg's audio to a WAV; ends on '#', max length, or silence. Returns seconds recorded."""

    async def bridge(self, other: Leg) -> None:
        """Connect the audio of the two legs both ways (stops hold/playback on both)."""

    async def transfer(self, uri: str) -> None:
        """Blind transfer (REFER) the remote party to uri."""

    async def hangup(self, sip_code: int = 200) -> None:
        """End the leg: BYE if answered, final response `sip_code` if incoming and unanswered, CANCEL if
        outgoing and ringing. Idempotent."""

    async def wait_ended(self) -> HangupInfo:
        """Resolves when the leg has ended, however it ended."""


class Softswitch(Protocol):
    """Originates outbound legs (agent offers, dialer calls)."""

    async def originate(self, uri: str, caller_id: str, ring_timeout: float,
                        headers: dict[str, str] | None = None) -> tuple[OriginateResult, Leg | None]:
        """Call uri; resolves when answered (with the leg), or with the failure result (leg None).
        Cancelling the awaiting task CANCELs the INVITE."""
