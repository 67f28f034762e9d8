"""Supervisor monitoring API: listen to, whisper to, or barge into a live agent call (calls/monitor.py).

    POST   /calls/{call_id}/monitor        {"mode": "listen"|"whisper"|"barge"} -> 202: the supervisor's
                                           phone (its user's sip_uri) rings; on answer it joins the call
    POST   /calls/{call_id}/monitor/mode   {"mode": ...} switches the mode of the running session
    GET    /calls/{call_id}/monitor        the session: state ringing|connected, mode, modes used
    DELETE /calls/{call_id}/monitor        ends it (the supervisor hanging up does too); the call goes on

`call_id` is the caller's call id (the CDR's), on the worker that carries the call. Supervisors (and
admins) only; a supervisor user with a ``queues`` list monitors calls of those queues only (403
otherwise), and switches or ends only its own sessions. Answers 404 (no such call here / not monitored),
409 (not talking to an agent, already monitored, the user has no sip_uri). The session's start, each mode
switch and its end are in the audit log (``monitor start`` / ``monitor mode`` / ``monitor end``, with the
call id, mode, queue and agent), beside the requests themselves.
"""

from __future__ import annotations

from typing import Any

from callcenter.api.http import HttpError, HttpRouter, Reply, Request, Response
from callcenter.auth.roles import SUPERVISORS
from callcenter.auth.users import UserStore
from callcenter.calls.monitor import Mode, MonitorError, Monitoring, Supervisor, check_mode

MAX_CALL_ID = 64


async def supervisor_of(req: Request, users: UserStore | None) -> Supervisor | None:
    """The user asking, as a supervisor (its phone, the queues it may see: ``may_see``); None with ``http.auth``
    off. 403 when its user is gone."""
    who = req.principal
    if who is None or users is None:
        return None
    user = await users.get(who.name)
    if user is None:
        raise HttpError(403, "no such user")
    return Supervisor(user.name, user.roles, user.sip_uri, user.queues)


def install_routes(router: HttpRouter, monitoring: Monitoring, users: UserStore | None) -> None:
    """``users``: the API's user store (None with ``http.auth`` off: nobody can be a supervisor then)."""

    async def supervisor(req: Request) -> Supervisor:
        sup = await supervisor_of(req, users)
        if sup is None:
            raise HttpError(403, "monitoring needs http.auth: the supervisor's user names its phone")
        return sup

    def call_id(req: Request) -> str:
        cid = req.params["call_id"]
        if len(cid) > MAX_CALL_ID:
            raise HttpError(400, "call id too long")
        return cid

    def mode(req: Request) -> Mode:
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object")
        try:
            return check_mode(body.get("mode", "listen"))
        except MonitorError as exc:
            raise HttpError(exc.status, str(exc)) from None

    async def run(work: Any) -> dict[str, Any]:
        try:
            session = await work
        except MonitorError as exc:
            raise HttpError(exc.status, str(exc)) from None
        out: dict[str, Any] = session.as_dict()
        return out

    async def start(req: Request) -> Reply:
        cid, m, sup = call_id(req), mode(req), await supervisor(req)
        return Response(await run(monitoring.start(cid, sup, m, req.remote)), 202)

    async def switch(req: Request) -> Reply:
        cid, m, sup = call_id(req), mode(req), await supervisor(req)
        return await run(monitoring.set_mode(cid, sup, m, req.remote))

    async def stop(req: Request) -> Reply:
        cid, sup = call_id(req), await supervisor(req)
        return await run(monitoring.stop(cid, sup, req.remote))

    async def show(req: Request) -> Reply:
        cid, sup = call_id(req), await supervisor(req)
        s = monitoring.get(cid)
        if s is None or not sup.may_see(s.queue):
            raise HttpError(404, "the call is not monitored")
        return s.as_dict()

    router.add("POST /calls/{call_id}/monitor", start, roles=SUPERVISORS)
    router.add("POST /calls/{call_id}/monitor/mode", switch, roles=SUPERVISORS)
    router.add("GET /calls/{call_id}/monitor", show, roles=SUPERVISORS)
    router.add("DELETE /calls/{call_id}/monitor", stop, roles=SUPERVISORS)
