"""What a flow may ask of the call layer (the IVR's :class:`~callcenter.ivr.services.IvrServices`).

:class:`FlowServices` serves every flow this worker runs: a ``queue`` node waits in ``calls.queueing``,
a ``dnc`` node goes to the one DNC writer (``calls.dnc``) and the queue log, an ``event`` node (a
disposition, a survey answer) goes to the queue log and, for an inbound call, to the events its
disposition is read from. :class:`DialerServices` adds, for a campaign's flow, the list of the call's
events that becomes the contact's disposition (``calls.outbound.OutboundCalls.run_ivr``).
"""

from __future__ import annotations

import contextvars
from typing import Any

from callcenter.calls.dnc import DncWriter
from callcenter.calls.queueing import Queueing
from callcenter.calls.records import FlowEvents, LiveCalls, queue_event
from callcenter.calls.voicemail import VoicemailIndex
from callcenter.cdr.buffer import CdrBuffer
from callcenter.ivr.services import QueueOutcome, QueueRequest
from callcenter.telephony.api import Leg


class FlowServices:
    def __init__(self, queueing: Queueing, dnc: DncWriter, live: LiveCalls, cdr: CdrBuffer,
                 voicemails: VoicemailIndex | None = None) -> None:
        self.queueing = queueing
        self.dnc = dnc
        self.live = live
        self.cdr = cdr
        self.voicemails = voicemails   # a ``record`` node's message goes to the inbox (calls.voicemail)

    async def queue(self, leg: Leg, request: QueueRequest) -> QueueOutcome:
        return await self.queueing.queue(leg, request)

    async def add_dnc(self, number: str, scope: str) -> None:
        await self.dnc.add(number, scope)
        call_id = self.live.note("dnc", {"scope": scope})
        await queue_event(self.cdr, "DNC", call_id, None, scope=scope)

    async def emit(self, event: str, data: dict[str, Any]) -> None:
        call_id = self.live.note(event, data)
        await queue_event(self.cdr, event.upper(), call_id, data.get("queue"),
                          **{k: v for k, v in data.items() if k not in ("call_id", "queue")})
        if event == "recording" and self.voicemails is not None and call_id is not None:
            rec = self.live.records.get(call_id)
            if rec is not None and rec.direction == "inbound":
                rec.outcome = "voicemail"
            await self.voicemails.saved(call_id, str(data.get("queue") or ""), rec.caller or "" if rec else "",
                                        str(data["path"]), float(data.get("seconds") or 0))


# The events of the campaign flow running in the current task (IvrServices carry no call id).
CALL_EVENTS: contextvars.ContextVar[FlowEvents | None] = contextvars.ContextVar("outbound_call_events",
                                                                                 default=None)


class DialerServices:
    """FlowServices for campaign flows: each request is also kept in the running call's ``CALL_EVENTS``."""

    def __init__(self, flows: FlowServices) -> None:
        self.flows = flows

    async def queue(self, leg: Leg, request: QueueRequest) -> QueueOutcome:
        return await self.flows.queue(leg, request)

    async def add_dnc(self, number: str, scope: str) -> None:
        _keep("dnc", {"scope": scope})
        await self.flows.add_dnc(number, scope)

    async def emit(self, event: str, data: dict[str, Any]) -> None:
        _keep(event, data)
        await self.flows.emit(event, data)


def _keep(event: str, data: dict[str, Any]) -> None:
    events = CALL_EVENTS.get()
    if events is not None:
        events.append((event, dict(data)))
