"""The side effects an IVR flow asks of the rest of the system.

The worker implements :class:`IvrServices` (queueing into the Redis ACD, the DNC list,
CDR/campaign dispositions); :class:`SimulatedServices` stands in for ``ivr simulate``
and unit tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from callcenter.telephony.api import Leg


class QueueOutcome(enum.Enum):
    CONNECTED = "connected"                    # an agent talked to the caller; the bridge has ended
    TIMEOUT = "timeout"                        # max_wait passed
    FULL = "full"                              # the queue refused (max length)
    CALLBACK_REQUESTED = "callback_requested"  # caller pressed 1 for a callback; leg still up
    NO_AGENTS = "no_agents"                    # nobody logged in with the skills


@dataclass(frozen=True)
class QueueRequest:
    queue: str
    skills: dict[str, int]                  # skill -> minimum level
    priority: int
    max_wait: float                         # seconds
    callback_offer: bool
    callback_after: float                   # offer the callback after this many seconds of waiting
    announce_position: bool
    announce_wait_time: bool
    announce_every: float                   # seconds between announcements
    music: str                              # absolute path of the music-on-hold WAV
    language: str                           # prompts: callcenter.ivr.announce + prompts.paths(..., language)
    sounds_dir: str
    variables: dict[str, Any] = field(default_factory=dict)   # CRM data for the agent's screen pop


class IvrServices(Protocol):
    async def queue(self, leg: Leg, request: QueueRequest) -> QueueOutcome:
        """Queue the caller and return when the call left the queue (see QueueOutcome)."""

    async def add_dnc(self, number: str, scope: str) -> None:
        """Put the number on the do-not-call list (scope: "global" or a campaign id)."""

    async def emit(self, event: str, data: dict[str, Any]) -> None:
        """A disposition or fact for the CDR/campaign: promise_to_pay, already_paid, survey, ..."""


@dataclass
class SimulatedServices:
    """Records what a flow asked for; the queue answers with a fixed outcome."""

    queue_outcome: QueueOutcome = QueueOutcome.CONNECTED
    queued: list[QueueRequest] = field(default_factory=list)
    dnc: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def queue(self, leg: Leg, request: QueueRequest) -> QueueOutcome:
        self.queued.append(request)
        return self.queue_outcome

    async def add_dnc(self, number: str, scope: str) -> None:
        self.dnc.append((number, scope))

    async def emit(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))
