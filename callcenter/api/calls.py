"""Call control API: live calls of this worker's callers bridged to an agent.

    POST /calls/{call_id}/hold      the caller hears the queue's music, the agent is no longer heard
    POST /calls/{call_id}/unhold    the bridge again
    POST /calls/{call_id}/hangup    the agent's side ends, as when its phone hangs up (the agent desk's button):
                                    the caller's flow goes on (a survey) or ends; 200 {"call_id", "hung_up"};
                                    the CDR's hangup_side is "agent"

`call_id` is the caller's call id (the CDR's). Supervisors and admins act on any call; an agent-only user
passes its own agent id (`?agent=1001`) and acts only on the call it is talking on. Answers: 200
`{"call_id", "held", "changed"}`, 404 no such call on this worker, 409 a caller not bridged to an agent
(still queued). Every request is in the audit log (a state change).
"""

from __future__ import annotations

from callcenter.api.http import HttpError, HttpRouter, Reply, Request
from callcenter.auth.roles import SELF_AGENT
from callcenter.calls.queueing import HoldResult, Queueing

MAX_CALL_ID = 64


def own_call(req: Request, queueing: Queueing) -> str:
    """The request's ``{call_id}``, after the own-call check of an agent-only user: it acts only on the call it
    is talking on (404 no such call here, 403 another agent's: it learns nothing of the others)."""
    call_id = req.params["call_id"]
    if len(call_id) > MAX_CALL_ID:
        raise HttpError(400, "call id too long")
    who = req.principal
    if who is not None and who.only_agent is not None:
        talk = queueing.talk(call_id)
        if talk is None or talk.agent_id != who.only_agent:
            raise HttpError(404 if talk is None else 403, "not a call of yours")
    return call_id


def by(req: Request) -> str:
    """Who asked, for the queue log: ``api:<user>``."""
    return f"api:{req.principal.name}" if req.principal is not None else "api"


def install_routes(router: HttpRouter, queueing: Queueing) -> None:
    async def hold(req: Request, on: bool) -> Reply:
        call_id = own_call(req, queueing)
        result = await queueing.hold(call_id, on, by(req))
        if result is HoldResult.UNKNOWN:
            raise HttpError(404, "no such call on this worker")
        if result is HoldResult.NOT_BRIDGED:
            raise HttpError(409, "the caller is not talking to an agent")
        return {"call_id": call_id, "held": on, "changed": result is HoldResult.DONE}

    async def hold_call(req: Request) -> Reply:
        return await hold(req, True)

    async def unhold_call(req: Request) -> Reply:
        return await hold(req, False)

    router.add("POST /calls/{call_id}/hold", hold_call, roles=SELF_AGENT, own="agent")
    router.add("POST /calls/{call_id}/unhold", unhold_call, roles=SELF_AGENT, own="agent")

    async def hangup(req: Request) -> Reply:
        call_id = own_call(req, queueing)
        talk = queueing.talk(call_id)
        if talk is None:
            raise HttpError(404, "no such call on this worker")
        talk.desk_hangup = True          # the CDR's hangup_side: "agent", not "system"
        await talk.agent.hangup()
        return {"call_id": call_id, "hung_up": True}

    router.add("POST /calls/{call_id}/hangup", hangup, roles=SELF_AGENT, own="agent")
