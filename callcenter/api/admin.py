"""Admin API for routing rules: read them, and replace them live (YAML or JSON body).

    GET /admin/rules          the rules in force (JSON)
    PUT /admin/rules          body = a routing_rules.yaml document (YAML or JSON); validated, then
                              applied without dropping waiting callers. 400 names key and line;
                              409 if it would remove a queue with callers or an agent on a call.
                              At most 1 MiB; anchors and aliases are refused (a few hundred bytes of
                              them expand to billions of values); parsed in a thread, off the loop.
"""

from __future__ import annotations

import asyncio

from callcenter.api.http import HttpError, HttpRouter, Reply, Request
from callcenter.auth.roles import ADMINS
from callcenter.exceptions import ConfigError
from callcenter.routing import rules as routing_rules
from callcenter.routing.router import Router as RoutingRouter
from callcenter.routing.router import RoutingError

RULES_MAX_BODY = 1024 * 1024


def install_routes(router: HttpRouter, rt: RoutingRouter) -> None:
    async def get_rules(req: Request) -> Reply:
        current = await rt.current_rules()
        if current is None:
            raise HttpError(404, "no routing rules applied yet")
        return current

    async def put_rules(req: Request) -> Reply:
        try:
            text = req.body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "body is not UTF-8") from None
        try:
            new = await asyncio.to_thread(routing_rules.loads, text, "PUT /admin/rules", allow_aliases=False)
        except ConfigError as exc:
            raise HttpError(400, str(exc), {"key": exc.key, "line": exc.line}) from None
        try:
            await rt.apply_rules(new)
        except RoutingError as exc:
            raise HttpError(409, str(exc)) from None
        return {"applied": True, "queues": sorted(new.queues), "agents": len(new.agents)}

    router.add("GET /admin/rules", get_rules, roles=ADMINS)
    router.add("PUT /admin/rules", put_rules, roles=ADMINS, max_body=RULES_MAX_BODY)
