"""Another party rung onto a live bridged call of this worker: a supervisor listening in (calls/monitor.py), a
conference guest (calls/conference.py), the target of a transfer (calls/transfer.py).

    class Conferences(ExtraParties[Conference]): ...
    talk = self.bridged(call_id, "conferenced")          # the caller<->agent bridge, or CallControlError
    uri, prev = await self.reserve_agent("1002", "conference")   # paused while rung and connected
    uri = await self.number_uri(call_id, "0901234567", talk.queue, "conference")   # the dial policy first
    leg = await self.ring(uri, headers, talk.caller.wait_ended())   # answered leg | why not | None (a stop)
    await self.release_agent("1002", prev)

Each user keeps its per-call state in ``sessions`` (call id -> its session) and its background work in
``tasks``. Errors are ``CallControlError``: an HTTP status and, for a number the dial policy refused, its rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from typing import Generic, Protocol, TypeVar, runtime_checkable

from callcenter.calls.outcome import ring_until
from callcenter.calls.queueing import Queueing, Talk
from callcenter.cdr.buffer import CdrBuffer
from callcenter.exceptions import CallcenterError
from callcenter.tasks import TaskSet
from callcenter.telephony.api import Leg, Softswitch

S = TypeVar("S")


class CallControlError(CallcenterError):
    """A request on a live call that cannot be done; ``status`` is the HTTP status that says why, ``rule`` the
    dial policy's reason when it refused a number (invalid, premium, dnc, ...)."""

    def __init__(self, status: int, message: str, rule: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule


@runtime_checkable
class AudioTap(Protocol):
    """A leg whose audio can be sent one way to another leg (PjLeg.send_audio)."""

    async def send_audio(self, to: Leg, on: bool = True) -> None: ...


class ExtraParties(Generic[S]):
    """What rings an extra party onto this worker's bridged calls; ``S`` is one call's session."""

    def __init__(self, queueing: Queueing, switch: Softswitch, cdr: CdrBuffer, *,
                 ring_timeout: float = 20.0, caller_id: str = "callcenter") -> None:
        self.queueing = queueing
        self.switch = switch
        self.cdr = cdr
        self.ring_timeout = ring_timeout
        self.caller_id = caller_id
        self.sessions: dict[str, S] = {}
        self.tasks = TaskSet()

    def bridged(self, call_id: str, what: str) -> Talk:
        """The bridge of this worker's caller ``call_id`` to an agent (404 no such call here, 409 not talking
        to an agent); ``what`` the call would be ("monitored", ...) when its legs cannot be tapped."""
        t = self.queueing.talk(call_id)
        if t is None or t.over or t.caller.ended or t.agent.ended:
            raise CallControlError(404 if call_id not in self.queueing.waiting else 409,
                                   "no call of this worker talking to an agent" if t is None else
                                   "the call is not talking to an agent")
        if not isinstance(t.caller, AudioTap) or not isinstance(t.agent, AudioTap):
            raise CallControlError(409, f"this call's legs cannot be {what}")
        return t

    async def reserve_agent(self, agent_id: str, reason: str) -> tuple[str, str]:
        """Another agent for the call: its phone's URI and its routing state before (available or paused).
        An available agent is paused ``reason`` so the router offers it nothing meanwhile; 404 unknown agent,
        409 busy (talking, ringing, wrapping up, logged out) or just offered a call."""
        info = await self.queueing.router.agent_info(agent_id)
        if info is None or not info.get("uri"):
            raise CallControlError(404, f"unknown agent {agent_id}")
        state = str(info.get("state") or "logged_out")
        if state not in ("available", "paused"):
            raise CallControlError(409, f"agent {agent_id} is {state}")
        if state == "available" and await self.queueing.router.agent_pause(agent_id, reason) != "paused":
            with contextlib.suppress(Exception):
                await self.queueing.router.agent_ready(agent_id)
            raise CallControlError(409, f"agent {agent_id} was just offered a call")
        return str(info["uri"]), state

    async def release_agent(self, agent_id: str, prev_state: str) -> None:
        """An agent reserve_agent paused is made ready again if it was available before."""
        if prev_state == "available":
            with contextlib.suppress(Exception):
                await self.queueing.router.agent_ready(agent_id)

    async def number_uri(self, call_id: str, number: str, queue: str, purpose: str) -> str:
        """The trunk URI of a number the dial policy allows for ``purpose`` (normalised to E.164, classes,
        DNC: like every dial); 403 with the policy's rule when it refuses, nothing dialed."""
        d = await self.queueing.policy.check(number, purpose, call_id=call_id, queue=queue)
        if not d.ok or d.e164 is None:
            raise CallControlError(403, f"the dial policy refused the number: {d.reason}", d.reason)
        return f"sip:{d.e164}@{self.queueing.trunk or '127.0.0.1'}"

    async def ring(self, uri: str, headers: dict[str, str], *stops: Awaitable[object]) -> Leg | str | None:
        """calls.outcome.ring_until with this user's caller id and ring timeout."""
        return await ring_until(self.switch, uri, self.caller_id, self.ring_timeout, headers, *stops)
