"""Who is asking, may they, and what the audit log says about it: the HTTP side of callcenter.auth.

For each request to a route (``HttpRouter.add(..., roles=, own=)``):
1. identify: ``Authorization: Bearer <API token>`` (machines) or the session cookie (browsers); the user
   is read again on every request, so a disabled user stops at once. None -> 401 + WWW-Authenticate.
2. CSRF, for cookie-authenticated state changes only (a browser attaches cookies to cross-site requests;
   it cannot attach a bearer token): a JSON/CSV/YAML content type (an HTML form cannot send one without
   a CORS preflight) and an Origin (or Referer) in ``http.allowed_origins``. Otherwise 403.
3. roles: the user's roles must meet the route's; with ``own``, a user whose only matching role is
   ``agent`` may act only when that path param / query arg is its own agent id. Otherwise 403.
4. after the handler: state changes and audited reads (contacts) go to the audit log.

A call-scoped request another worker admitted reaches the worker holding the call with who asked in a signed
header instead of credentials (``api/forward.py``): believed only when it verifies, then checked as above.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.web import server
from twisted.web.resource import Resource

from callcenter import logs, metrics
from callcenter.api.forward import AssertionRefused, Forwarder
from callcenter.api.http import FORWARDED, JSON_MAX_BODY, HttpError, Request, Response, Route
from callcenter.auth import Auth
from callcenter.auth.roles import ADMIN, AGENT, PUBLIC
from callcenter.auth.sessions import COOKIE

log = logs.get("auth")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODY_TYPES = frozenset({"application/json", "text/csv", "application/yaml", "application/x-yaml", "text/yaml"})
# body fields worth naming as the target of a change (never a password or a whole list)
TARGET_FIELDS = ("name", "user", "agent", "campaign", "number", "disposition", "reason", "label")


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    agent: str | None
    via: str                          # "session" | "token"
    session: str | None = None        # the cookie's id (logout ends it)
    only_agent: str | None = None     # set per request: this request may act on this agent id only

    def as_dict(self) -> dict[str, Any]:
        return {"user": self.name, "roles": sorted(self.roles), "agent": self.agent, "via": self.via}


def default_origins(bind: str, port: int) -> frozenset[str]:
    """The worker's own origins: the pages it would serve itself."""
    hosts = {bind} if bind not in ("0.0.0.0", "::", "") else set()
    if bind in ("127.0.0.1", "0.0.0.0", "::", "", "localhost", "::1"):
        hosts |= {"127.0.0.1", "localhost"}
    return frozenset(f"http://{h if ':' not in h else f'[{h}]'}:{port}" for h in hosts)


def cookie(headers: dict[str, str], name: str = COOKIE) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def bearer(headers: dict[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def origin_of(headers: dict[str, str]) -> str | None:
    if headers.get("origin"):
        return headers["origin"].rstrip("/")
    ref = headers.get("referer")
    if ref:
        parts = urlsplit(ref)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return None


def content_type(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _deny(status: int, reason: str, message: str) -> Response:
    metrics.AUTH_DENIED_TOTAL.labels(reason=reason).inc()
    headers = {"WWW-Authenticate": 'Bearer realm="callcenter"'} if status == 401 else {}
    return Response({"error": message}, status, headers=headers)


class Guard:
    def __init__(self, auth: Auth, allowed_origins: frozenset[str], forwarder: Forwarder | None = None) -> None:
        self.auth = auth
        self.allowed_origins = allowed_origins
        self.forwarder = forwarder          # checks forwarded requests' assertions (None: none is believed)

    async def identify(self, req: Request) -> Principal | None:
        token = bearer(req.headers)
        if token is not None:
            name, via, sid = await self.auth.tokens.user(token), "token", None
        else:
            sid = cookie(req.headers)
            name, via = (await self.auth.sessions.user(sid) if sid else None), "session"
        user = await self.auth.users.get(name) if name else None
        if user is None or user.disabled:
            return None
        return Principal(user.name, user.roles, user.agent, via, sid)

    def csrf_refusal(self, req: Request) -> str | None:
        if content_type(req.headers) not in BODY_TYPES:
            return ("state changes with a session cookie need Content-Type application/json "
                    "(text/csv for lists, application/yaml for rules): CSRF protection")
        origin = origin_of(req.headers)
        if origin is None:
            return "state changes with a session cookie need an Origin (or Referer) header: CSRF protection"
        if origin not in self.allowed_origins:
            return f"origin {origin} is not in http.allowed_origins: CSRF protection"
        return None

    async def forwarded(self, req: Request) -> Principal | Response:
        """Who asked, as the worker that forwarded the request asserts it; a 403 if not believed."""
        if self.forwarder is None:
            return _deny(403, "assertion", "forwarded request refused: forwarding is off on this worker")
        try:
            claims = await self.forwarder.verify(req)
        except AssertionRefused as exc:
            log.warning("forwarded request refused", reason=str(exc), path=req.path, address=req.remote)
            return _deny(403, "assertion", f"forwarded request refused: {exc}")
        if claims.user is None:
            return _deny(403, "assertion", "forwarded request refused: no user asserted")
        req.forwarded_by, req.remote = claims.origin, claims.client
        return Principal(claims.user, frozenset(claims.roles), claims.agent, claims.via, None, claims.only_agent)

    async def admit(self, route: Route, req: Request) -> Response | None:
        if route.roles is PUBLIC:
            return None
        if FORWARDED in req.headers:     # authenticated (and CSRF-checked) by the worker that forwarded it
            asserted = await self.forwarded(req)
            if isinstance(asserted, Response):
                return asserted
            who = asserted
        else:
            found = await self.identify(req)
            if found is None:
                return _deny(401, "unauthenticated", "authentication required (session cookie or Bearer token)")
            who = found
            if who.via == "session" and req.method in STATE_CHANGING:
                refusal = self.csrf_refusal(req)
                if refusal:
                    req.principal = who
                    return _deny(403, "csrf", refusal)
        req.principal = who
        matching = who.roles & route.roles
        if not matching:
            return _deny(403, "forbidden", f"{route.pattern} needs one of the roles "
                                           f"{', '.join(sorted(route.roles))}")
        if route.own and matching == {AGENT}:
            value = req.params.get(route.own) if route.own in req.params else req.arg(route.own)
            if not who.agent or value != who.agent:
                where = f"{{{route.own}}}" if route.own in req.params else f"?{route.own}="
                return _deny(403, "forbidden", f"an agent acts only on its own agent id ({where} must be "
                                               f"{who.agent})")
            req.principal = Principal(who.name, who.roles, who.agent, who.via, who.session, who.agent)
        return None

    async def audit(self, route: Route, req: Request, resp: Response) -> None:
        if route.roles is PUBLIC or req.principal is None:
            return          # the login audits itself; anonymous refusals are only counted (metrics)
        if req.method not in STATE_CHANGING and not route.audit:
            return
        who: Principal = req.principal
        target: dict[str, Any] = dict(req.params)
        if route.located and self.forwarder is not None:    # which worker acted, and who sent it there
            target["worker"] = self.forwarder.worker_id
            if req.forwarded_by is not None:
                target["forwarded_by"] = req.forwarded_by
        for name in ("agent", "campaign"):
            if req.arg(name) is not None:
                target.setdefault(name, req.arg(name))
        if content_type(req.headers) == "application/json" and 0 < len(req.body) <= JSON_MAX_BODY:
            try:
                body = req.json()       # the handler's parse, cached on the request
            except HttpError:
                body = None
            if isinstance(body, dict):
                for name in TARGET_FIELDS:
                    if isinstance(body.get(name), str | int | float) and not isinstance(body.get(name), bool):
                        target.setdefault(name, body[name])
        try:
            await self.auth.audit.record(who.name, who.roles, route.pattern, target, req.remote, resp.status)
        except Exception as exc:  # noqa: BLE001 - Redis down: the request happened; say so in the log
            log.error("audit entry not written", action=route.pattern, user=who.name, error=str(exc))


class MetricsGuard(Resource):
    """/metrics behind ``Authorization: Bearer <http.metrics_token>``, or an admin's credentials."""

    isLeaf = True

    def __init__(self, inner: Resource, token: str, guard: Guard | None) -> None:
        super().__init__()
        self.inner = inner
        self.token = token
        self.guard = guard

    def render(self, request: server.Request) -> bytes | int:
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        given = bearer(headers)
        if self.token and given and hmac.compare_digest(given.encode(), self.token.encode()):
            body: bytes | int = self.inner.render(request)   # twisted's render is untyped
            return body
        if self.guard is None:
            return self._refuse(request)
        import asyncio

        from twisted.internet.defer import Deferred

        req = Request("GET", "/metrics", {}, {}, headers, b"")

        def done(who: Principal | None) -> None:
            if request.finished or request._disconnected:
                return
            if who is not None and ADMIN in who.roles:
                out = self.inner.render(request)
                if out != server.NOT_DONE_YET:
                    request.write(out)
                    request.finish()
            else:
                self._refuse(request, finish=True)

        d = Deferred.fromFuture(asyncio.ensure_future(self.guard.identify(req)))
        d.addCallback(done)
        d.addErrback(lambda f: (log.error("metrics auth failed", error=f.getErrorMessage()),
                                self._refuse(request, finish=True)))
        return server.NOT_DONE_YET

    @staticmethod
    def _refuse(request: server.Request, finish: bool = False) -> bytes:
        metrics.AUTH_DENIED_TOTAL.labels(reason="unauthenticated").inc()
        request.setResponseCode(401)
        request.setHeader(b"www-authenticate", b'Bearer realm="callcenter"')
        request.setHeader(b"content-type", b"text/plain")
        if finish:
            request.write(b"authentication required\n")
            request.finish()
            return b""
        return b"authentication required\n"
