"""Login for browsers and who-am-I.

    POST /auth/login   {"user": "ana", "password": "..."}  -> 200 + session cookie (HttpOnly, SameSite=Strict)
                       401 for a wrong name or password (the same answer for both), 429 + Retry-After
                       after too many failures for that user or from that address
    POST /auth/logout  ends the session (cookie cleared)
    GET  /auth/me      {"user", "roles", "agent", "via"}

Machines do not log in: they send ``Authorization: Bearer <token>`` (``callcenter user token NAME``).
"""

from __future__ import annotations

from callcenter.api.guard import Guard, Principal, content_type, origin_of
from callcenter.api.http import HttpError, HttpRouter, Reply, Request, Response
from callcenter.auth import Auth
from callcenter.auth.roles import ANYONE, PUBLIC
from callcenter.auth.sessions import COOKIE

LOGIN_FAILED = "wrong user name or password"


def install_routes(router: HttpRouter, auth: Auth, guard: Guard, secure_cookie: bool = False) -> None:
    flags = "; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if secure_cookie else "")

    async def login(req: Request) -> Reply:
        if content_type(req.headers) != "application/json":
            raise HttpError(415, "login needs Content-Type: application/json")
        origin = origin_of(req.headers)
        if origin is not None and origin not in guard.allowed_origins:   # login CSRF: no foreign page
            raise HttpError(403, f"origin {origin} is not in http.allowed_origins")
        body = req.json()
        name, password = (body.get("user"), body.get("password")) if isinstance(body, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(password, str) or not name or len(password) > 1024:
            raise HttpError(400, "body must be a JSON object with 'user' and 'password'")
        wait = await auth.throttle.retry_after(name, req.remote)
        if wait:
            await auth.audit.record(name, [], "login", {"user": name}, req.remote, 429)
            return Response({"error": f"too many failed logins; try again in {wait} s"}, 429,
                            headers={"Retry-After": str(wait)})
        user = await auth.users.authenticate(name, password)
        if user is None:
            await auth.throttle.failed(name, req.remote)
            await auth.audit.record(name, [], "login", {"user": name}, req.remote, 401)
            raise HttpError(401, LOGIN_FAILED)
        await auth.throttle.succeeded(name)
        sid = await auth.sessions.create(user.name)
        await auth.audit.record(user.name, user.roles, "login", {"user": user.name}, req.remote, 200)
        return Response({"user": user.name, "roles": sorted(user.roles), "agent": user.agent}, 200,
                        headers={"Set-Cookie": f"{COOKIE}={sid}; Max-Age={int(auth.sessions.absolute)}{flags}"})

    async def logout(req: Request) -> Reply:
        who: Principal | None = req.principal
        if who is not None and who.session:
            await auth.sessions.end(who.session)
        return Response({"logged_out": True}, 200, headers={"Set-Cookie": f"{COOKIE}=; Max-Age=0{flags}"})

    async def me(req: Request) -> Reply:
        who: Principal | None = req.principal
        if who is None:
            raise HttpError(404, "authentication is off (http.auth: false)")
        return who.as_dict()

    router.add("POST /auth/login", login, roles=PUBLIC)
    router.add("POST /auth/logout", logout, roles=ANYONE)
    router.add("GET /auth/me", me, roles=ANYONE)
