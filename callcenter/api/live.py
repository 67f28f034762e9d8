"""The live agent calls (the console's live calls page: who to listen to).

    GET /calls    {"calls": [{call_id, agent, agent_name, queue, caller, talk_seconds, held, worker}],
                   "queues": [the queues the user sees; [] = every queue]}

Every agent on a call, from routing's state in Redis (so the calls of every worker, not only this one's),
oldest answer first. Supervisors (and admins); a supervisor with a ``queues`` list sees the calls of those
queues only. The caller's number is masked but for admins (as on the event stream, docs/EVENTS.md).
``held``: the hold state of a call this worker carries (true/false), null for another worker's call (the
page follows ``call.held`` / ``call.unheld`` events).
"""

from __future__ import annotations

from typing import Any, cast

from callcenter.api.http import HttpError, HttpRouter, Reply, Request
from callcenter.auth.roles import ADMIN, SUPERVISORS
from callcenter.auth.users import UserStore
from callcenter.calls.queueing import Queueing
from callcenter.privacy import mask_number
from callcenter.routing.router import Router as RoutingRouter

CALL_FIELDS = ("caller", "offer_queue", "owner")


async def live_calls(rt: RoutingRouter, queueing: Queueing | None) -> list[dict[str, Any]]:
    """Every agent call in progress, the caller's number in clear."""
    talking = [a for a in await rt.agents() if a["state"] == "on_call" and a["call_id"]]
    pipe = rt.redis.pipeline(transaction=False)
    for a in talking:
        pipe.hmget(rt.keys.call(a["call_id"]), *CALL_FIELDS)
    rows = cast(list[list[str | None]], await pipe.execute()) if talking else []
    out: list[dict[str, Any]] = []
    for a, (caller, queue, owner) in zip(talking, rows, strict=True):
        if queue is None:            # ended between the two reads
            continue
        talk = queueing.talk(a["call_id"]) if queueing is not None else None
        out.append({"call_id": a["call_id"], "agent": a["id"], "agent_name": a["name"], "queue": queue,
                    "caller": caller or "", "talk_seconds": a["state_seconds"],
                    "held": talk.held if talk is not None else None, "worker": owner})
    out.sort(key=lambda c: -float(c["talk_seconds"]))
    return out


def install_routes(router: HttpRouter, rt: RoutingRouter, queueing: Queueing | None,
                   users: UserStore | None) -> None:
    """``users``: the API's user store, for a supervisor's queues (None with ``http.auth`` off: all)."""

    async def calls(req: Request) -> Reply:
        who = req.principal
        queues: frozenset[str] = frozenset()
        if who is not None and ADMIN not in who.roles and users is not None:
            user = await users.get(who.name)
            if user is None:
                raise HttpError(403, "no such user")
            queues = user.queues
        clear = who is None or ADMIN in who.roles
        shown = [c for c in await live_calls(rt, queueing) if not queues or c["queue"] in queues]
        return {"calls": [c if clear else {**c, "caller": mask_number(c["caller"])} for c in shown],
                "queues": sorted(queues)}

    router.add("GET /calls", calls, roles=SUPERVISORS)
