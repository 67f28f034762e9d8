"""Supervisor monitoring of a live agent call: listen, whisper, barge.

    session = await monitoring.start(call_id, supervisor, "listen", address)
    await monitoring.set_mode(call_id, supervisor, "whisper", address)
    await monitoring.stop(call_id, supervisor, address)

The supervisor's phone (``Supervisor.sip_uri``: the user's ``sip_uri``) is rung first; when it answers, its
leg joins the conference bridge beside the caller and the agent, who stay bridged to each other as before:

    listen   caller -> supervisor, agent -> supervisor     (nobody hears the supervisor)
    whisper  listen, and supervisor -> agent                (the caller does not hear it)
    barge    listen, and supervisor -> agent and caller

Only one-way connections to and from the supervisor's leg are made or undone, so the monitored call is not
disturbed when the supervisor hangs up, does not answer, or the session is stopped. A call ending ends the
session (the supervisor's leg is hung up). Every start, mode switch and end goes to the audit log with the
supervisor, the call id, the queue, the agent and the mode; the session leaves a CDR leg of kind
``monitor`` whose ``result`` is the modes used, in order (``listen,whisper``), or why the supervisor's
phone was not answered (``no_answer``, ``busy``, ...).

Scope: a supervisor user with a ``queues`` list may monitor calls of those queues only (empty: every queue);
admins monitor any call. A call is monitored on the worker that carries it (``Queueing.waiting``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from callcenter import logs, metrics
from callcenter.auth.audit import AuditLog
from callcenter.auth.roles import ADMIN
from callcenter.calls.extra_party import AudioTap, CallControlError, ExtraParties
from callcenter.calls.queueing import Queueing
from callcenter.calls.records import leg_record
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.record import LegRecord
from callcenter.telephony.api import Leg, Softswitch

log = logs.get("monitor")

Mode = Literal["listen", "whisper", "barge"]
MODES: tuple[Mode, ...] = ("listen", "whisper", "barge")


class MonitorError(CallControlError):
    """A monitor request that cannot be done; ``status`` is the HTTP status that says why."""


@dataclass(frozen=True)
class Supervisor:
    name: str
    roles: frozenset[str]
    sip_uri: str | None           # the phone a session rings
    queues: frozenset[str]        # the queues whose calls it may monitor; empty: all

    def may_see(self, queue: str) -> bool:
        return ADMIN in self.roles or not self.queues or queue in self.queues


@dataclass
class Session:
    id: str
    call_id: str
    queue: str
    agent_id: str
    supervisor: Supervisor
    mode: Mode
    started: float
    modes: list[str] = field(default_factory=list)
    state: str = "ringing"        # ringing | connected | ended
    answered: float | None = None
    ended: float | None = None
    result: str | None = None     # how it ended: stopped, supervisor_hangup, call_ended, no_answer, ...
    leg: Leg | None = None
    end_address: str = "sip"      # who ended it, for the audit log: the API caller's address, or the phone
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def as_dict(self) -> dict[str, Any]:
        return {"session": self.id, "call_id": self.call_id, "queue": self.queue, "agent": self.agent_id,
                "supervisor": self.supervisor.name, "mode": self.mode, "modes": list(self.modes),
                "state": self.state, "started": self.started, "answered": self.answered, "ended": self.ended,
                "result": self.result}


def check_mode(value: object) -> Mode:
    for m in MODES:
        if value == m:
            return m
    raise MonitorError(400, f"mode must be one of: {', '.join(MODES)}")


class Monitoring(ExtraParties[Session]):
    """This worker's monitor sessions, at most one per call."""

    def __init__(self, queueing: Queueing, switch: Softswitch, cdr: CdrBuffer, audit: AuditLog | None, *,
                 ring_timeout: float = 20.0, caller_id: str = "monitor") -> None:
        super().__init__(queueing, switch, cdr, ring_timeout=ring_timeout, caller_id=caller_id)
        self.audit = audit

    def get(self, call_id: str) -> Session | None:
        return self.sessions.get(call_id)

    def _call(self, call_id: str) -> tuple[Leg, Leg, str, str]:
        """The caller's and the agent's legs, the queue and the agent of a bridged call of this worker."""
        try:
            t = self.bridged(call_id, "monitored")
        except CallControlError as exc:
            raise MonitorError(exc.status, str(exc)) from None
        return t.caller, t.agent, t.queue, t.agent_id

    async def start(self, call_id: str, sup: Supervisor, mode: Mode, address: str) -> Session:
        caller, agent, queue, agent_id = self._call(call_id)
        if not sup.may_see(queue):
            raise MonitorError(403, f"queue {queue!r} is not one of the supervisor's queues")
        if not sup.sip_uri:
            raise MonitorError(409, f"user {sup.name!r} has no sip_uri to ring (PATCH /admin/users/{{name}})")
        if call_id in self.sessions:
            raise MonitorError(409, f"the call is monitored by {self.sessions[call_id].supervisor.name}")
        s = Session(uuid.uuid4().hex, call_id, queue, agent_id, sup, mode, time.time(), modes=[mode])
        self.sessions[call_id] = s
        await self._audit(s, "monitor start", address)
        log.info("monitor ringing", call_id=call_id, session=s.id, supervisor=sup.name, mode=mode, queue=queue)
        self.tasks.spawn(self._run(s, caller, agent), "monitor", call_id=call_id)
        return s

    async def set_mode(self, call_id: str, sup: Supervisor, mode: Mode, address: str) -> Session:
        s = self._own(call_id, sup)
        if mode != s.mode:
            s.mode = mode
            s.modes.append(mode)
            if s.state == "connected" and s.leg is not None:
                caller, agent, _, _ = self._call(call_id)
                await self._connect(s, s.leg, caller, agent)
        await self._audit(s, "monitor mode", address)
        log.info("monitor mode", call_id=call_id, session=s.id, supervisor=sup.name, mode=mode)
        return s

    async def stop(self, call_id: str, sup: Supervisor, address: str) -> Session:
        s = self._own(call_id, sup)
        s.end_address = address
        s.stop.set()
        return s

    def _own(self, call_id: str, sup: Supervisor) -> Session:
        s = self.sessions.get(call_id)
        if s is None:
            raise MonitorError(404, "the call is not monitored")
        if s.supervisor.name != sup.name and ADMIN not in sup.roles:
            raise MonitorError(403, f"the session is {s.supervisor.name}'s")
        return s

    # -- the session --------------------------------------------------------------------------

    async def _run(self, s: Session, caller: Leg, agent: Leg) -> None:
        leg: Leg | None = None
        try:
            leg = await self._ring(s, caller, agent)
            if leg is None:
                return
            s.leg, s.state, s.answered = leg, "connected", time.time()
            await self._connect(s, leg, caller, agent)
            log.info("monitor connected", call_id=s.call_id, session=s.id, mode=s.mode)
            s.result = await _first(s, leg, caller, agent)
        except Exception as exc:
            s.result = s.result or "failed"
            log.exception("monitor session failed", call_id=s.call_id, session=s.id, error=str(exc))
        finally:
            await self._end(s, leg, caller, agent)

    async def _ring(self, s: Session, caller: Leg, agent: Leg) -> Leg | None:
        """The supervisor's answered leg; None (with s.result) when it was not answered, the session was
        stopped or the call ended while it rang."""
        headers = {"X-Callcenter-Call-Id": s.call_id, "X-Callcenter-Queue": s.queue,
                   "X-Callcenter-Monitor": s.mode}
        assert s.supervisor.sip_uri is not None
        leg = await self.ring(s.supervisor.sip_uri, headers, s.stop.wait(), caller.wait_ended(), agent.wait_ended())
        if leg is None or isinstance(leg, str):
            s.result = leg or ("stopped" if s.stop.is_set() else "call_ended")
            return None
        if s.stop.is_set() or caller.ended or agent.ended:
            s.result = "stopped" if s.stop.is_set() else "call_ended"
            await leg.hangup()
            return None
        return leg

    async def _connect(self, s: Session, sup: Leg, caller: Leg, agent: Leg) -> None:
        """The taps of the session's mode (idempotent: a connection made twice is one connection)."""
        assert isinstance(sup, AudioTap) and isinstance(caller, AudioTap) and isinstance(agent, AudioTap)
        await caller.send_audio(sup)
        await agent.send_audio(sup)
        await sup.send_audio(agent, s.mode in ("whisper", "barge"))
        await sup.send_audio(caller, s.mode == "barge")

    async def _end(self, s: Session, leg: Leg | None, caller: Leg, agent: Leg) -> None:
        s.state, s.ended = "ended", time.time()
        if leg is not None:
            assert isinstance(leg, AudioTap) and isinstance(caller, AudioTap) and isinstance(agent, AudioTap)
            with contextlib.suppress(Exception):
                # Undo the taps before the supervisor's leg goes: the call's own bridge is untouched.
                await caller.send_audio(leg, False)
                await agent.send_audio(leg, False)
                await leg.send_audio(agent, False)
                await leg.send_audio(caller, False)
            with contextlib.suppress(Exception):
                await leg.hangup()
        if self.sessions.get(s.call_id) is s:
            del self.sessions[s.call_id]
        answered = s.answered is not None
        result = ",".join(s.modes) if answered else (s.result or "failed")
        metrics.MONITOR_SESSIONS_TOTAL.labels(result="answered" if answered else (s.result or "failed")).inc()
        await leg_record(self.cdr, LegRecord(leg.id if leg is not None else uuid.uuid4().hex, s.call_id, "monitor",
                                             s.supervisor.sip_uri or "", s.agent_id, s.started, s.answered,
                                             s.ended, None, result))
        await self._audit(s, "monitor end", s.end_address)
        log.info("monitor ended", call_id=s.call_id, session=s.id, result=s.result, modes=",".join(s.modes))

    async def _audit(self, s: Session, action: str, address: str) -> None:
        if self.audit is None:
            return
        target = {"call_id": s.call_id, "mode": s.mode, "queue": s.queue, "agent": s.agent_id, "session": s.id}
        if action == "monitor end":
            target |= {"result": s.result or "", "modes": ",".join(s.modes)}
        try:
            await self.audit.record(s.supervisor.name, s.supervisor.roles, action, target, address, 200)
        except Exception as exc:  # noqa: BLE001 - Redis down: the session goes on; say so in the log
            log.error("audit entry not written", action=action, call_id=s.call_id, error=str(exc))


async def _first(s: Session, sup: Leg, caller: Leg, agent: Leg) -> str:
    """Wait for the session's end: stopped, the supervisor hung up, or the monitored call ended."""
    waits = {asyncio.ensure_future(s.stop.wait()): "stopped",
             asyncio.ensure_future(sup.wait_ended()): "supervisor_hangup",
             asyncio.ensure_future(caller.wait_ended()): "call_ended",
             asyncio.ensure_future(agent.wait_ended()): "call_ended"}
    try:
        done, _ = await asyncio.wait(list(waits), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return next(waits[d] for d in waits if d in done)
