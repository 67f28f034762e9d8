"""The agent's wrap-up of a call: its disposition code, whether the issue was resolved, notes.

    POST /calls/{call_id}/wrapup?agent=1001   {"disposition": "complaint", "resolved": false, "notes": "..."}

Saved on the call's CDR (the disposition and ``resolved`` columns, through the CDR buffer: an agent's
disposition outranks the one the flow set; FCR counts ``resolved: false``) and a WRAPUPEND line in the queue
log with the notes, which is also ``call.wrapup`` on the event bus (pages, CRM webhooks: docs/EVENTS.md).
The codes are those ``wrapup`` configures for the call's campaign or queue
(``callcenter.wrapup``); a required one must be given. An agent-only user wraps up only calls it talked on:
the live call's record says who, or, once the call is over, its stored CDR (409 while the CDR writer has
not stored it yet: try again). Answers 200 ``{"call_id", "disposition", "resolved"}``.
"""

from __future__ import annotations

import asyncio

from callcenter.api.http import HttpError, HttpRouter, Reply, Request
from callcenter.auth.roles import SELF_AGENT
from callcenter.calls.records import LiveCalls, queue_event
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.record import WRAPUPEND, CallRecord
from callcenter.cdr.store import SqlStore, StoreUnavailable
from callcenter.wrapup import WrapupSettings

MAX_CALL_ID = 64
MAX_NOTES = 2000


def install_routes(router: HttpRouter, settings: WrapupSettings, live: LiveCalls, cdr: CdrBuffer,
                   store: SqlStore | None) -> None:
    async def whose(call_id: str) -> tuple[str | None, str | None, str | None]:
        """The call's agent, queue and campaign: from its record here (up, or among the last ended), else the
        stored CDR."""
        rec: CallRecord | None = live.find(call_id)
        if rec is None and store is not None:
            try:
                rec = await asyncio.to_thread(store.get_call, call_id)
            except StoreUnavailable as exc:
                raise HttpError(503, f"CDR store unavailable: {exc}") from None
            if rec is not None and rec.end is None:
                # Gone from the live calls, its final snapshot not in the store yet (the CDR writer brings it
                # within a round and its linger): an earlier one may name no agent yet. The desk tries again.
                rec = None
        if rec is None:
            raise HttpError(409, "no such call stored yet; try again in a moment")
        return rec.agent_id, rec.queue, rec.campaign

    async def wrapup(req: Request) -> Reply:
        call_id = req.params["call_id"]
        if len(call_id) > MAX_CALL_ID:
            raise HttpError(400, "call id too long")
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object")
        code, resolved, notes = body.get("disposition") or "", body.get("resolved"), body.get("notes") or ""
        if not isinstance(code, str) or resolved is not None and not isinstance(resolved, bool) \
                or not isinstance(notes, str):
            raise HttpError(400, "disposition and notes are text, resolved true, false or null")
        if len(notes) > MAX_NOTES:
            raise HttpError(400, f"notes: at most {MAX_NOTES} characters")
        agent, queue, campaign = await whose(call_id)
        who = req.principal
        if who is not None and who.only_agent is not None and agent != who.only_agent:
            raise HttpError(403, "not a call of yours")
        rule = settings.for_call(queue, campaign)
        if code and rule.codes and code not in rule.codes:
            raise HttpError(400, f"disposition must be one of: {', '.join(rule.codes)}")
        if not code and rule.required:
            raise HttpError(400, "a disposition is required for this call")
        await cdr.disposition(call_id, code, resolved, agent_id=agent)
        await queue_event(cdr, WRAPUPEND, call_id, queue, agent, **({"notes": notes} if notes else {}),
                          push={"disposition": code, "resolved": resolved,
                                **({"campaign": campaign} if campaign else {})})
        return {"call_id": call_id, "disposition": code, "resolved": resolved}

    router.add("POST /calls/{call_id}/wrapup", wrapup, roles=SELF_AGENT, own="agent")
