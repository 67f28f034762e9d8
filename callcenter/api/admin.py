"""Admin API for routing rules: read them, and replace them live (YAML or JSON body).

    GET /admin/rules          the rules in force (JSON)
    GET /admin/rules/text     the rules in force as YAML text (the console's editor): the worker's
                              routing_rules.yaml, comments and all, while it is what is in force; else
                              the rules in force written out as YAML
    POST /admin/rules/validate  body = a rules document: {"valid": true, queues, agents} or {"valid": false,
                              "errors": [{"message", "key", "line"}, ...]} (in line order, at most 100; "error":
                              the first); nothing applied
    PUT /admin/rules          body = a routing_rules.yaml document (YAML or JSON); validated, then
                              applied without dropping waiting callers. 400 names key and line;
                              409 if it would remove a queue with callers or an agent on a call.
                              At most 1 MiB; anchors and aliases are refused (a few hundred bytes of
                              them expand to billions of values); parsed in a thread, off the loop.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml

from callcenter.api.http import HttpError, HttpRouter, Reply, Request
from callcenter.auth.roles import ADMINS
from callcenter.exceptions import ConfigError
from callcenter.routing import rules as routing_rules
from callcenter.routing.router import Router as RoutingRouter
from callcenter.routing.router import RoutingError

RULES_MAX_BODY = 1024 * 1024
MAX_PROBLEMS = 100          # the validator's answer lists at most these


def _text(req: Request) -> str:
    try:
        return req.body.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "body is not UTF-8") from None


def rules_text(source: Path | None, current: dict[str, Any] | None) -> dict[str, Any]:
    """The YAML text of the rules in force: ``source`` (the worker's rules file) while its rules are the
    ones in force (or none are yet), else ``current`` written out as YAML (it parses back the same)."""
    if source is not None and source.is_file():
        text = source.read_text(encoding="utf-8")
        try:
            same = current is None or json.loads(json.dumps(routing_rules.loads(text, source.name).to_json())) == current
        except ConfigError:
            same = False
        if same:
            return {"text": text, "file": source.name, "from": "file"}
    if current is None:
        raise HttpError(404, "no routing rules applied yet")
    return {"text": yaml.safe_dump(current, sort_keys=False, allow_unicode=True),
            "file": source.name if source is not None else "routing_rules.yaml", "from": "applied"}


def install_routes(router: HttpRouter, rt: RoutingRouter, source: Path | None = None) -> None:
    """``source``: the worker's routing_rules.yaml (GET /admin/rules/text shows it while it is in force)."""
    name = source.name if source is not None else "routing_rules.yaml"

    async def parsed(text: str) -> routing_rules.RoutingRules:
        return await asyncio.to_thread(routing_rules.loads, text, name, allow_aliases=False)

    async def get_rules(req: Request) -> Reply:
        current = await rt.current_rules()
        if current is None:
            raise HttpError(404, "no routing rules applied yet")
        return current

    async def put_rules(req: Request) -> Reply:
        try:
            new = await parsed(_text(req))
        except ConfigError as exc:
            raise HttpError(400, str(exc), {"key": exc.key, "line": exc.line}) from None
        try:
            await rt.apply_rules(new)
        except RoutingError as exc:
            raise HttpError(409, str(exc)) from None
        return {"applied": True, "queues": sorted(new.queues), "agents": len(new.agents)}

    async def get_text(req: Request) -> Reply:
        return await asyncio.to_thread(rules_text, source, await rt.current_rules())

    async def validate(req: Request) -> Reply:
        text = _text(req)
        found = await asyncio.to_thread(routing_rules.problems, text, name)
        if found:
            errors = [{"message": str(e), "key": e.key, "line": e.line} for e in found[:MAX_PROBLEMS]]
            return {"valid": False, "error": errors[0], "errors": errors}
        new = await parsed(text)
        return {"valid": True, "queues": sorted(new.queues), "agents": len(new.agents)}

    router.add("GET /admin/rules", get_rules, roles=ADMINS)
    router.add("GET /admin/rules/text", get_text, roles=ADMINS)
    router.add("POST /admin/rules/validate", validate, roles=ADMINS, max_body=RULES_MAX_BODY)
    router.add("PUT /admin/rules", put_rules, roles=ADMINS, max_body=RULES_MAX_BODY)
