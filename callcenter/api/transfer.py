"""Transfer API: blind and attended transfers of a bridged caller (calls/transfer.py).

    POST /calls/{call_id}/transfer             {"agent": "1002"} | {"queue": "support"} | {"number": "0901234567"},
                                               optional "mode": "blind" (default) | "attended" -> 202
    GET  /calls/{call_id}/transfer             the attended transfer under way: kind, to, agent, state
    POST /calls/{call_id}/transfer/complete    the caller is bridged to the consulted target, the agent released
    POST /calls/{call_id}/transfer/cancel      the target is hung up; back to the caller
    POST /calls/{call_id}/transfer/conference  the caller, the agent and the target: a three-way call

Blind: the agent's leg is hung up at once; the caller hears "your call is being transferred" while the target
rings (a queue: it waits there at its original priority and place), and goes back to its queue if the target
does not answer. Attended: the caller is put on hold while the agent talks to the target (an agent, a number,
or a queue's free agent idle the longest; the agent's own phone may complete it by hanging up). `call_id` is the caller's call id (the CDR's).
Admins act on any call, supervisors on the calls of the queues they may see (a user's ``queues`` list, as for
monitoring; empty: every queue; 403 otherwise); an agent-only user passes its own agent id (``?agent=1001``) and
acts only on the call it is talking on. Answers: 400 a bad body, 403 the dial policy refused the number (``rule``
says which: invalid, premium, dnc, ...; nothing is dialed), 404 no such call / agent / queue / transfer, 409 the
call is not talking to an agent, a transfer is already under way, the target agent is busy, or (complete,
conference) the target has not answered yet. Every POST is in the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.api.calls import by
from callcenter.api.calls import own_call as _own_call
from callcenter.api.http import HttpError, HttpRouter, Reply, Request, Response
from callcenter.api.monitor import supervisor_of
from callcenter.auth.roles import SELF_AGENT
from callcenter.auth.users import UserStore
from callcenter.calls.extra_party import CallControlError
from callcenter.calls.transfer import KINDS, Consult, Transfers

MAX_TARGET = 32
MAX_BODY = 4096


async def _run(work: Awaitable[Any]) -> Any:
    try:
        return await work
    except CallControlError as exc:
        raise HttpError(exc.status, str(exc), {"rule": exc.rule} if exc.rule else None) from None


def install_routes(router: HttpRouter, transfers: Transfers, users: UserStore | None) -> None:
    """``users``: the API's user store, for a supervisor's queues (None with ``http.auth`` off: every call)."""

    async def own_call(req: Request) -> str:
        """The request's call, after the agent-only user's own-call check and a supervisor's queue scope."""
        cid = _own_call(req, transfers.queueing)
        talk = transfers.queueing.talk(cid)
        who = req.principal
        if talk is not None and who is not None and who.only_agent is None:
            sup = await supervisor_of(req, users)
            if sup is not None and not sup.may_see(talk.queue):
                raise HttpError(403, f"queue {talk.queue!r} is not one of the supervisor's queues")
        return cid

    async def transfer(req: Request) -> Reply:
        cid = await own_call(req)
        body = req.json()
        if not isinstance(body, dict) or len([k for k in KINDS if k in body]) != 1:
            raise HttpError(400, 'the body must be {"agent": id}, {"queue": name} or {"number": "..."}')
        kind = next(k for k in KINDS if k in body)
        target, mode = body[kind], body.get("mode", "blind")
        if not isinstance(target, str) or not target or len(target) > MAX_TARGET:
            raise HttpError(400, f"{kind} must be a non-empty string of at most {MAX_TARGET} characters")
        if mode not in ("blind", "attended"):
            raise HttpError(400, 'mode must be "blind" or "attended"')
        if mode == "blind":
            return Response(await _run(transfers.blind(cid, kind, target, by(req))), status=202)
        c: Consult = await _run(transfers.consult(cid, kind, target, by(req)))
        return Response(c.as_dict() | {"mode": "attended"}, status=202)

    def action(act: Callable[[Transfers, str, str], Awaitable[Consult]]) -> Callable[[Request], Awaitable[Reply]]:
        async def handler(req: Request) -> Reply:
            cid = await own_call(req)
            c: Consult = await _run(act(transfers, cid, by(req)))
            out: dict[str, Any] = c.as_dict()
            return out
        return handler

    async def show(req: Request) -> Reply:
        cid = await own_call(req)
        c = transfers.get(cid)
        if c is None:
            raise HttpError(404, "no transfer under way on this call")
        out: dict[str, Any] = c.as_dict()
        return out

    router.add("POST /calls/{call_id}/transfer", transfer, roles=SELF_AGENT, own="agent", max_body=MAX_BODY)
    router.add("GET /calls/{call_id}/transfer", show, roles=SELF_AGENT, own="agent")
    for name, act in (("complete", Transfers.complete), ("cancel", Transfers.cancel),
                      ("conference", Transfers.conference)):
        router.add(f"POST /calls/{{call_id}}/transfer/{name}", action(act), roles=SELF_AGENT, own="agent",
                   max_body=MAX_BODY)
