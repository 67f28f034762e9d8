"""An inbound call's life on this worker: answer, the IVR flow its called number routes to, and the
call's record when it ends (a flow's queue node hands it to ``calls.queueing`` meanwhile).

Also the records of callers a dead worker left behind (:func:`close_out`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import structlog

from callcenter import logs, metrics
from callcenter.calls.outcome import hangup_cause, hangup_side
from callcenter.calls.records import LiveCalls, call_record
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.dispositions import disposition_from_events
from callcenter.cdr.record import CallRecord, LegRecord
from callcenter.exceptions import CallGone
from callcenter.ivr.runner import IvrResult, IvrRunner
from callcenter.telephony.api import Leg

log = logs.get("calls.inbound")
_IN_PROGRESS = metrics.CALLS_IN_PROGRESS.labels(direction="inbound")   # per call: the child, looked up once


class InboundCalls:
    """``handle`` is the softswitch's handler for every incoming call it admits."""

    def __init__(self, ivr: IvrRunner, cdr: CdrBuffer, live: LiveCalls, *, flow_for: Callable[[str], str],
                 worker_id: str) -> None:
        self.ivr = ivr
        self.cdr = cdr
        self.live = live
        self.flow_for = flow_for     # called number -> IVR flow (config ``routes``)
        self.worker_id = worker_id

    async def handle(self, leg: Leg) -> None:
        # bound for the call's task: every log line and every flow event of the call carries its id
        structlog.contextvars.bind_contextvars(call_id=leg.id)
        rec = CallRecord(leg.id, "inbound", leg.caller, leg.called, leg.created, worker_id=self.worker_id)
        self.live.records[leg.id] = rec
        _IN_PROGRESS.inc()
        flow = self.flow_for(leg.called)
        log.info("incoming call", caller=leg.caller, called=leg.called, flow=flow)
        result: IvrResult | None = None
        try:
            await leg.answer()
            rec.answer = time.time()
            await call_record(self.cdr, rec)
            result = await self.ivr.run(leg, entry=flow, language=None)
            if not leg.ended:
                await leg.hangup()
        except CallGone:
            pass
        except Exception:   # one broken call never takes the worker down
            log.exception("call failed")
            with contextlib.suppress(Exception):
                await leg.hangup(500)
        finally:
            self.live.end(leg.id)
            _IN_PROGRESS.dec()
            structlog.contextvars.unbind_contextvars("call_id")
        info = await leg.wait_ended()
        rec.end = time.time()
        if result is not None:
            for name, value in result.cdr_fields().items():
                setattr(rec, name, value)
        if rec.hangup_side is None:
            rec.hangup_side = hangup_side(info)
            rec.hangup_cause = hangup_cause(info)
        if rec.outcome is None:
            rec.outcome = "ivr_only" if rec.answer else "failed"
        disp = disposition_from_events(self.live.events.pop(leg.id, []), time.time())
        if disp is not None:
            rec.disposition = disp["disposition"]
        metrics.CALLS_TOTAL.labels(direction="inbound", result=rec.outcome).inc()
        await call_record(self.cdr, rec, LegRecord(leg.id, leg.id, "inbound", leg.caller, None, rec.start, rec.answer,
                                                   rec.end, info.sip_code, "answered" if rec.answer else "failed"))
        log.info("call ended", outcome=rec.outcome, path=rec.ivr_path, side=rec.hangup_side, call_id=leg.id)


async def close_out(cdr: CdrBuffer, calls: dict[str, str]) -> None:
    """The calls (id -> direction) were on a dead worker's media (another worker, or this id's previous run):
    queued callers, and every call whose record it held open (``calls.records.call_record``). Close their
    records out rather than leave phantoms (:func:`closing_record`)."""
    now = time.time()
    for call_id, direction in calls.items():
        await call_record(cdr, closing_record(call_id, direction, now))


def closing_record(call_id: str, direction: str, end: float) -> CallRecord:
    """The snapshot closing out a dead worker's call: partial, and the oldest version there is (1), so the
    store's merge only fills what the call's own snapshots never said (end, outcome failed, cause
    worker_crash) and keeps the rest (caller, times, survey). A call whose final snapshot went out just
    before the crash (its open mark not yet removed) keeps its real ending."""
    return CallRecord.from_dict({
        "call_id": call_id, "direction": direction, "caller": None, "called": None, "start": None,
        "end": end, "hangup_side": "system", "hangup_cause": "worker_crash", "outcome": "failed",
        "hold_seconds": None, "callback": None, "survey": None, "version": 1})

