"""The event bus over HTTP: the push stream pages subscribe to, and the webhooks' dead letters.

    GET /events                      text/event-stream for the caller's user (docs/EVENTS.md): every role;
                                     what each sees is filtered by events.schema.visible. Resumes after
                                     ``Last-Event-ID`` (header, or ?last_event_id= for a first connection).
                                     429 past events.max_streams_per_user, 503 past events.max_streams
    GET /admin/webhooks/dead         the newest dead letters (?count=, at most 500; ?before=<id> pages on)
    POST /admin/webhooks/dead/{id}/retry   that letter's event to its webhook again (202; dead-lettered anew if
                                     it fails again); 404 no such letter, 409 its webhook is not configured
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aredis

from callcenter.api.http import HttpError, HttpRouter, Reply, Request, Response
from callcenter.auth.roles import ADMIN, ADMINS, ANYONE
from callcenter.auth.users import UserStore
from callcenter.events import webhooks
from callcenter.events.bus import Hub, parse_id, tip
from callcenter.events.schema import Viewer
from callcenter.events.settings import EventSettings
from callcenter.events.sse import EventStream

AgentQueues = Callable[[str], Awaitable[frozenset[str]]]   # an agent id -> its queues (routing)
MAX_ID = 40


def install_routes(router: HttpRouter, hub: Hub, redis: aredis.Redis, prefix: str, users: UserStore | None,
                   agent_queues: AgentQueues, limits: EventSettings | None = None,
                   deliverer: webhooks.Deliverer | None = None) -> None:
    """``limits``: resume_max, max_streams, max_streams_per_user (the config's events: section); ``deliverer``:
    this worker's webhook deliverer (None: no webhooks configured)."""
    limits = limits or EventSettings()

    async def viewer(req: Request) -> Viewer:
        who = req.principal
        if who is None:              # http.auth off (loopback only): the API is open, so is this
            return Viewer("anonymous", frozenset({ADMIN}))
        user = await users.get(who.name) if users is not None else None
        queues = user.queues if user is not None else frozenset()
        return Viewer(who.name, who.roles, who.agent, queues,
                      await agent_queues(who.agent) if who.agent else frozenset())

    async def events(req: Request) -> Reply:
        after = req.headers.get("last-event-id") or req.arg("last_event_id")
        if after is not None and (len(after) > MAX_ID or parse_id(after) is None):
            raise HttpError(400, "Last-Event-ID must be an event id like 1732950000123-0")

        who = await viewer(req)
        if len(hub.subscribers) >= limits.max_streams:
            return Response({"error": "this worker serves as many event streams as it may; try again later"}, 503,
                            headers={"Retry-After": "10"})
        mine = sum(1 for s in hub.subscribers if isinstance(s, EventStream) and s.viewer.user == who.user)
        if mine >= limits.max_streams_per_user:
            raise HttpError(429, f"{mine} event streams of this user are open here; close one first")

        async def again() -> Viewer | None:
            """The stream's user as it is now (a long stream is one request: its credentials, roles and
            queues are checked again every heartbeat); None: no longer allowed."""
            if router.guard is not None and await router.guard.admit(router.match("GET", "/events")[0], req):
                return None
            return await viewer(req)

        stream = EventStream(hub, who, after or await tip(redis, prefix), limits.resume_max, again)
        return Response(stream, content_type="text/event-stream; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def dead(req: Request) -> Reply:
        try:
            count = int(req.arg("count", "100") or "100")
        except ValueError:
            raise HttpError(400, "count must be a number") from None
        before = req.arg("before", "+") or "+"
        if before != "+" and (len(before) > MAX_ID or parse_id(before) is None):
            raise HttpError(400, "before must be an event id")
        return {"dead_letters": await webhooks.dead_letters(redis, prefix, max(1, min(count, 500)), before)}

    async def retry(req: Request) -> Reply:
        letter = req.params["id"]
        if len(letter) > MAX_ID or parse_id(letter) is None:
            raise HttpError(400, "a dead letter's id is a stream id like 1732950000123-0")
        if deliverer is None:
            raise HttpError(409, "no webhooks are configured on this worker")
        try:
            event_id, hook = await deliverer.retry(letter)
        except LookupError:
            raise HttpError(404, "no such dead letter") from None
        except ValueError as exc:
            raise HttpError(409, str(exc)) from None
        return Response({"retrying": letter, "event_id": event_id, "webhook": hook}, 202)

    router.add("GET /events", events, roles=ANYONE)
    router.add("GET /admin/webhooks/dead", dead, roles=ADMINS)
    router.add("POST /admin/webhooks/dead/{id}/retry", retry, roles=ADMINS)
