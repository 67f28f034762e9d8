"""Conference API: up to 5 parties on a bridged caller<->agent call (calls/conference.py).

    POST /calls/{call_id}/conference/add             {"agent": "1002"} or {"number": "0901234567"} -> 202:
                                                     that party rings; on answer everyone hears everyone
    POST /calls/{call_id}/conference/{party}/mute    the party is heard by nobody (it still hears everyone)
    POST /calls/{call_id}/conference/{party}/unmute
    POST /calls/{call_id}/conference/{party}/hold    an added party hears the hold music, heard by nobody
    POST /calls/{call_id}/conference/{party}/unhold  (the caller and the agent: the call's own hold, 409 here)
    POST /calls/{call_id}/conference/leave           the call's agent hangs up; the others stay connected
    GET  /calls/{call_id}/conference                 the parties: id, kind, agent, state, muted, held

`call_id` is the caller's call id (the CDR's) on the worker that carries the call; parties are "caller",
"agent" (the call's agent), an added agent's id, or ``p<n>`` for an added number. Supervisors and admins act
on any call; an agent-only user passes its own agent id (``?agent=1001``) and acts only on the call it is
talking on (403 otherwise). Answers: 400 a bad body, 403 the dial policy refused the number (``rule`` says
which: invalid, premium, dnc, ...; nothing is dialed), 404 no such call / party / agent, 409 the call is not
talking to an agent, 5 parties already, the agent to add is busy or already in the call, leave with nobody
added connected. Every POST is in the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.api.calls import by, own_call
from callcenter.api.http import Handler, HttpError, HttpRouter, Reply, Request, Response
from callcenter.auth.roles import SELF_AGENT
from callcenter.calls.conference import ConferenceError, Conferences, Party

MAX_TARGET = 32


def install_routes(router: HttpRouter, conferences: Conferences) -> None:
    def call_id(req: Request) -> str:
        return own_call(req, conferences.queueing)

    async def add(req: Request) -> Reply:
        cid = call_id(req)
        body = req.json()
        if not isinstance(body, dict) or len([k for k in ("agent", "number") if k in body]) != 1:
            raise HttpError(400, 'the body must be {"agent": id} or {"number": "..."}')
        kind = "agent" if "agent" in body else "number"
        target = body[kind]
        if not isinstance(target, str) or not target or len(target) > MAX_TARGET:
            raise HttpError(400, f"{kind} must be a non-empty string of at most {MAX_TARGET} characters")
        try:
            party = await conferences.add(cid, kind, target, by(req))
        except ConferenceError as exc:
            raise HttpError(exc.status, str(exc), {"rule": exc.rule} if exc.rule else None) from None
        return Response({"call_id": cid} | party.as_dict(), status=202)

    def party_change(change: Callable[[str, str, bool, str], Awaitable[Party]], on: bool) -> Handler:
        """A route that mutes/unmutes or holds/unholds the party its path names."""
        async def handle(req: Request) -> Reply:
            cid, party = call_id(req), req.param("party", MAX_TARGET)
            try:
                p = await change(cid, party, on, by(req))
            except ConferenceError as exc:
                raise HttpError(exc.status, str(exc)) from None
            out: dict[str, Any] = {"call_id": cid} | p.as_dict()
            return out
        return handle

    async def leave(req: Request) -> Reply:
        cid = call_id(req)
        try:
            c = await conferences.leave(cid, by(req))
        except ConferenceError as exc:
            raise HttpError(exc.status, str(exc)) from None
        return c.as_dict()

    async def show(req: Request) -> Reply:
        cid = call_id(req)
        c = conferences.get(cid)
        if c is None:
            raise HttpError(404, "the call has no conference")
        return c.as_dict()

    router.add("POST /calls/{call_id}/conference/add", add, roles=SELF_AGENT, own="agent", max_body=4096)
    for action, change, on in (("mute", conferences.mute, True), ("unmute", conferences.mute, False),
                               ("hold", conferences.hold, True), ("unhold", conferences.hold, False)):
        router.add(f"POST /calls/{{call_id}}/conference/{{party}}/{action}", party_change(change, on),
                   roles=SELF_AGENT, own="agent", max_body=4096)
    router.add("POST /calls/{call_id}/conference/leave", leave, roles=SELF_AGENT, own="agent", max_body=4096)
    router.add("GET /calls/{call_id}/conference", show, roles=SELF_AGENT, own="agent")
