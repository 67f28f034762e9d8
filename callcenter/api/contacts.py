"""The offered caller's recent contacts, for the agent's screen pop.

    GET /calls/{call_id}/contacts?agent=1001
    -> {"call_id", "days": 7, "contacts": [{"call_id", "start_ts", "direction", "queue", "campaign", "agent_id",
                                            "outcome", "disposition", "resolved"}, ...]}

The customer's calls (by its CRM id, else its number: the CDR's ``cust_key``) of the last ``DAYS`` days before
this one, newest first, at most ``LIMIT``. The page asks as soon as ``call.offered`` pops the call (the pop
itself needs no request); the store is read in a thread, never on the loop, bounded by ``TIMEOUT`` (503 past
it: the pop shows without its history) and the answer kept ``CACHE_SECONDS`` per call (a reload asks again).
An agent-only user asks only for the call offered to it or that it is talking on; supervisors and admins for
any live call. The call is this worker's (a ``{call_id}`` route: another worker's is forwarded there); 404
when it is not queued, ringing or talking here. No phone numbers in the answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from callcenter.api.http import HttpError, HttpRouter, Reply, Request
from callcenter.auth.roles import SELF_AGENT
from callcenter.calls.queueing import Queueing
from callcenter.cdr.store import SqlStore, StoreUnavailable

MAX_CALL_ID = 64
DAYS = 7
LIMIT = 20
TIMEOUT = 2.0            # seconds the store may take
CACHE_SECONDS = 60.0
CACHE_MAX = 1024         # calls remembered


def install_routes(router: HttpRouter, queueing: Queueing, store: SqlStore | None) -> None:
    cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    async def contacts(req: Request) -> Reply:
        call_id = req.param("call_id", MAX_CALL_ID)
        w = queueing.waiting.get(call_id)
        talk = queueing.talk(call_id)
        agent = talk.agent_id if talk is not None else queueing.reserved_agent(call_id)
        if w is None:
            raise HttpError(404, "no such call offered on this worker")
        who = req.principal
        if who is not None and who.only_agent is not None and agent != who.only_agent:
            raise HttpError(403, "not a call of yours")
        if store is None:
            raise HttpError(503, "CDR store unavailable")
        now = time.monotonic()
        hit = cache.get(call_id)
        if hit is None or hit[0] < now:
            customer = w.request.variables.get("customer_id")
            start = w.record.start
            try:
                rows = await asyncio.wait_for(asyncio.to_thread(
                    store.contacts, str(customer) if customer else None, w.leg.caller or None, start - DAYS * 86400.0,
                    start, call_id, LIMIT), TIMEOUT)
            except (StoreUnavailable, TimeoutError) as exc:
                raise HttpError(503, f"CDR store unavailable: {exc or 'timeout'}") from None
            if len(cache) >= CACHE_MAX:
                for key in [k for k, (until, _) in cache.items() if until < now] or list(cache)[:CACHE_MAX // 4]:
                    cache.pop(key, None)
            hit = cache[call_id] = (now + CACHE_SECONDS, rows)
        return {"call_id": call_id, "days": DAYS, "contacts": hit[1]}

    router.add("GET /calls/{call_id}/contacts", contacts, roles=SELF_AGENT, own="agent")
