"""Agent click-to-call (``calls/click_to_call.py``):

    POST /agents/{id}/dial   {"number": "0901234567", "caller_id": "<one of click_to_call.caller_ids>"}

202 once the agent's phone is ringing (the customer is dialed when the agent answers); 400 a bad
number or a caller id not in the list, 403 the dial policy or the calling window refused the number (the
body's ``rule`` names which), 404 unknown agent, 409 the agent logged out or on a call.
"""

from __future__ import annotations

from callcenter.api.http import HttpError, HttpRouter, Reply, Request, Response
from callcenter.auth.roles import SELF_AGENT
from callcenter.calls.click_to_call import ClickToCall, Refused
from callcenter.dialer import phone


def install_routes(router: HttpRouter, c2c: ClickToCall) -> None:
    async def dial(req: Request) -> Reply:
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object")
        try:
            job = await c2c.dial(req.params["id"], body.get("number"), body.get("caller_id"))
        except Refused as exc:
            raise HttpError(exc.status, str(exc), {"rule": exc.rule}) from None
        return Response({"dial_id": job.id, "agent": job.agent, "number": phone.national(job.e164),
                     "caller_id": job.caller_id, "state": "ringing_agent"}, status=202)

    router.add("POST /agents/{id}/dial", dial, roles=SELF_AGENT, own="id", audit=True, max_body=4096)
