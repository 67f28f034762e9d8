"""Admin API for users, their API tokens, and the audit log (role admin only).

    GET    /admin/users                      users (never a password hash)
    POST   /admin/users                      {"name", "roles": [...], "agent": "1001", "password"} -> 201
    GET    /admin/users/{name}
    PATCH  /admin/users/{name}               any of {"roles", "agent", "disabled", "password", "sip_uri",
                                             "queues"}: a supervisor's phone and the queues it may monitor
    DELETE /admin/users/{name}               with its sessions and tokens
    GET    /admin/users/{name}/tokens        ids and labels
    POST   /admin/users/{name}/tokens        {"label"} -> 201 {"token", "id"}: the token is shown this once
    DELETE /admin/users/{name}/tokens/{id}
    GET    /admin/audit?user=&action=&since=&until=&limit=&before=   newest first; since/until are epoch
                                             seconds; before: an entry's id (the next page: older ones)
    GET    /admin/routes                     every route with the roles it allows (what the guard enforces)
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any, TypeVar

from callcenter.api.http import HttpError, HttpRouter, Reply, Request, Response
from callcenter.auth import Auth
from callcenter.auth.roles import ADMINS, PUBLIC
from callcenter.auth.users import UserError

AUDIT_ID = re.compile(r"\d{1,20}-\d{1,20}")


def _object(req: Request) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise HttpError(400, "request body must be a JSON object")
    return body


def _roles(body: dict[str, Any]) -> list[str] | None:
    roles = body.get("roles")
    if roles is not None and (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)):
        raise HttpError(400, "roles: must be a list of role names")
    return roles


def _float(req: Request, name: str) -> float | None:
    value = req.arg(name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        raise HttpError(400, f"{name}: must be epoch seconds") from None


_T = TypeVar("_T")


def _monitoring(body: dict[str, Any]) -> tuple[str | None, list[str] | None]:
    """A supervisor's ``sip_uri`` (the phone monitor sessions ring) and ``queues`` (whose calls it may
    monitor; [] = all), when the body gives them."""
    sip_uri, queues = body.get("sip_uri"), body.get("queues")
    if sip_uri is not None and not isinstance(sip_uri, str):
        raise HttpError(400, "sip_uri: must be a string")
    if queues is not None and not (isinstance(queues, list) and all(isinstance(q, str) for q in queues)):
        raise HttpError(400, "queues: must be a list of queue names")
    return sip_uri, queues


def install_routes(router: HttpRouter, auth: Auth) -> None:
    async def guarded(coro: Awaitable[_T]) -> _T:
        try:
            return await coro
        except (UserError, ValueError) as exc:
            raise HttpError(404 if str(exc).startswith("no user") else 400, str(exc)) from None

    async def list_users(req: Request) -> Reply:
        return {"users": [u.as_dict() for u in await auth.users.list()]}

    async def create(req: Request) -> Reply:
        body = _object(req)
        name, password, agent = body.get("name"), body.get("password"), body.get("agent")
        if not isinstance(name, str) or not isinstance(password, str):
            raise HttpError(400, "body needs 'name' and 'password' strings")
        if agent is not None and not isinstance(agent, str):
            raise HttpError(400, "agent: must be a string")
        sip_uri, queues = _monitoring(body)
        user = await guarded(auth.users.create(name, _roles(body) or [], password, agent))
        if sip_uri is not None or queues is not None:
            user = await guarded(auth.users.set_monitoring(name, sip_uri, queues))
        return Response(user.as_dict(), 201)

    async def get_user(req: Request) -> Reply:
        user = await auth.users.get(req.params["name"])
        if user is None:
            raise HttpError(404, f"no user {req.params['name']!r}")
        return user.as_dict()

    async def update(req: Request) -> Reply:
        body = _object(req)
        name = req.params["name"]
        disabled, agent, password = body.get("disabled"), body.get("agent"), body.get("password")
        if disabled is not None and not isinstance(disabled, bool):
            raise HttpError(400, "disabled: must be true or false")
        if agent is not None and not isinstance(agent, str) or password is not None and not isinstance(password, str):
            raise HttpError(400, "agent and password must be strings")
        sip_uri, queues = _monitoring(body)
        user = await guarded(auth.users.update(name, _roles(body), agent, disabled))
        if sip_uri is not None or queues is not None:
            user = await guarded(auth.users.set_monitoring(name, sip_uri, queues))
        if password is not None:
            await guarded(auth.users.set_password(name, password))
        return user.as_dict()

    async def delete(req: Request) -> Reply:
        await guarded(auth.users.delete(req.params["name"]))
        return {"deleted": req.params["name"]}

    async def tokens(req: Request) -> Reply:
        await get_user(req)
        return {"tokens": await auth.tokens.list(req.params["name"])}

    async def issue(req: Request) -> Reply:
        body = _object(req) if req.body else {}
        label = body.get("label", "")
        if not isinstance(label, str):
            raise HttpError(400, "label: must be a string")
        token, tid = await guarded(auth.tokens.issue(req.params["name"], label))
        return Response({"user": req.params["name"], "id": tid, "label": label, "token": token}, 201)

    async def revoke(req: Request) -> Reply:
        if not await auth.tokens.revoke(req.params["name"], req.params["token_id"]):
            raise HttpError(404, "no such token for that user")
        return {"revoked": req.params["token_id"]}

    async def audit(req: Request) -> Reply:
        try:
            limit = int(req.arg("limit", "100") or "100")
        except ValueError:
            raise HttpError(400, "limit: must be an integer") from None
        if not 1 <= limit <= 10_000:
            raise HttpError(400, "limit: must be between 1 and 10000")
        before = req.arg("before")
        if before is not None and not AUDIT_ID.fullmatch(before):
            raise HttpError(400, "before: must be an entry's id")
        entries = await auth.audit.query(req.arg("user"), req.arg("action"), _float(req, "since"),
                                         _float(req, "until"), limit, before)
        return {"entries": [e.as_dict() for e in entries]}

    router.add("GET /admin/users", list_users, roles=ADMINS)
    router.add("POST /admin/users", create, roles=ADMINS)
    router.add("GET /admin/users/{name}", get_user, roles=ADMINS)
    router.add("PATCH /admin/users/{name}", update, roles=ADMINS)
    router.add("DELETE /admin/users/{name}", delete, roles=ADMINS)
    router.add("GET /admin/users/{name}/tokens", tokens, roles=ADMINS)
    router.add("POST /admin/users/{name}/tokens", issue, roles=ADMINS)
    router.add("DELETE /admin/users/{name}/tokens/{token_id}", revoke, roles=ADMINS)
    async def routes(req: Request) -> Reply:
        return {"routes": [{"method": r.method, "pattern": r.pattern, "roles": sorted(r.roles),
                            "public": r.roles is PUBLIC, "own": r.own, "audit": r.audit} for r in router.routes]}

    router.add("GET /admin/audit", audit, roles=ADMINS)
    router.add("GET /admin/routes", routes, roles=ADMINS)
