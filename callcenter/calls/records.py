"""What the call layer keeps and writes about the calls up on this worker.

:class:`LiveCalls` holds the CallRecord of each live call (inbound calls and answered outbound dials):
whoever handles a stage of the call (the queue: agent, wait and talk times) fills in the same record, and
the call's owner writes it when the call ends. It also keeps the flow events of inbound calls, which
become the call's disposition.

The queue log, leg and call records are written with :func:`queue_event` (:func:`queue_line`),
:func:`leg_record` and :func:`call_record`: a record
that cannot be written is logged, never a reason to drop a call (the CDR buffer keeps records in memory
while Redis is away).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import structlog

from callcenter import logs
from callcenter.cdr.buffer import CdrBuffer, OpenMark
from callcenter.cdr.record import CallRecord, LegRecord, QueueEvent
from callcenter.events import bus, schema
from callcenter.routing.keys import Keys

log = logs.get("calls")

FlowEvents = list[tuple[str, dict[str, Any]]]


ENDED_KEPT = 1000    # records of the calls that ended last on this worker, kept for what follows a call at once


@dataclass
class LiveCalls:
    records: dict[str, CallRecord] = field(default_factory=dict)   # call id -> its CDR while it lasts
    events: dict[str, FlowEvents] = field(default_factory=dict)    # call id -> its flow's events
    ended: OrderedDict[str, CallRecord] = field(default_factory=OrderedDict)   # the last ENDED_KEPT ended, newest last

    def end(self, call_id: str) -> None:
        """The call is over: its record leaves the live calls and joins the last ones that ended here. What follows
        a call at once (its agent's wrap-up, a second after the hangup) finds it there while the call's final CDR
        is still on its way to the store (the CDR writer brings it within a round and its linger)."""
        rec = self.records.pop(call_id, None)
        if rec is not None:
            self.ended[call_id] = rec
            if len(self.ended) > ENDED_KEPT:
                self.ended.popitem(last=False)

    def find(self, call_id: str) -> CallRecord | None:
        """The record of a call up here, or of one of the last that ended here."""
        return self.records.get(call_id) or self.ended.get(call_id)

    def note(self, event: str, data: dict[str, Any]) -> str | None:
        """Remember a flow's event for its call's disposition; the call id is the one bound for logging
        (an inbound flow runs inside its call's task: see ``calls.inbound``). Returns that call id."""
        call_id = data.get("call_id") or structlog.contextvars.get_contextvars().get("call_id")
        if call_id in self.records:
            self.events.setdefault(call_id, []).append((event, dict(data)))
        return call_id if isinstance(call_id, str) else None


async def queue_event(cdr: CdrBuffer, event: str, call_id: str | None, queue: str | None,
                      agent_id: str | None = None, *, push: dict[str, Any] | None = None, **data: Any) -> None:
    """One line of the queue event log (``cdr.record`` EVENTS), and the call event it is on the bus
    (``events.schema.FROM_QUEUE_LOG``) with ``push`` added: what only the pages see (the screen pop)."""
    await queue_line(cdr, QueueEvent.make(event, call_id=call_id, queue=queue, agent_id=agent_id, **data), push)


async def queue_line(cdr: CdrBuffer, ev: QueueEvent, push: dict[str, Any] | None = None,
                     legs: tuple[LegRecord, ...] = ()) -> None:
    """:func:`queue_event` of a line already made, with the ``legs`` ready at the same moment appended in
    its entry (one append for both). The line and its bus event go to Redis together, not one after the
    other: a caller's ENTERQUEUE and OFFER lines stand between its enqueue and its agent's phone ringing,
    and under load each append waits for the batch before it (bench/RESULTS.md, "Session 7")."""
    pushed = schema.from_queue_log(ev.event, ev.call_id, ev.queue, ev.agent_id, ev.data, ev.ts)
    published = None if pushed is None else asyncio.ensure_future(
        bus.publish(cdr.redis, cdr.prefix, {**pushed, **(push or {})}))
    try:
        await cdr.write(ev, *legs)
    except Exception:
        log.exception("queue event not recorded", call_id=ev.call_id, queue_event=ev.event)
    if published is not None:
        await published


async def leg_record(cdr: CdrBuffer, rec: LegRecord) -> None:
    try:
        await cdr.leg(rec)
    except Exception:
        log.exception("leg record not written", call_id=rec.call_id)


async def call_record(cdr: CdrBuffer, rec: CallRecord, *legs: LegRecord) -> None:
    """A snapshot of a call's record (later snapshots of the same call id replace earlier ones), with the
    ``legs`` ready at the same moment in its entry.

    Every CDR snapshot of the call layer comes through here, so here a call is held open for its worker
    (routing ``worker_open``: id -> direction) from its first snapshot until the one with its end: a worker
    that dies holding it has it closed out by whoever reaps it (``calls.inbound.close_out``). The mark is
    set before the snapshot is written and removed after the final one, in the snapshot's round trip
    (``cdr.buffer.OpenMark``); while Redis is away it waits with the snapshot in the buffer's backlog."""
    mark = None
    if rec.worker_id:
        mark = OpenMark(Keys(cdr.prefix).worker_open(rec.worker_id), rec.call_id,
                        rec.direction if rec.end is None else None)
    try:
        await cdr.write(rec, *legs, mark=mark)
    except Exception:
        log.exception("call record not written", call_id=rec.call_id)
