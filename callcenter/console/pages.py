"""The console's pages on the worker's HTTP port, routes of the API's router with roles like every route.

    GET /console                 home: the pages the user's roles open (any signed-in user)
    GET /console/agent/{id}      the agent desktop (the agent itself; supervisors, admins)
    GET /console/wallboard       the supervisor wallboard (supervisors, campaign managers, admins)
    GET /console/campaigns       campaigns: state, figures, start / pause / stop, list upload (managers, admins)
    GET /console/admin           users and roles, the routing rules' editor, the audit log (admins)
    GET /console/calls           live agent calls with listen / whisper / barge, agents' state and skills
                                 (supervisors, admins)
    GET /console/login           the sign-in page (public; it posts to POST /auth/login)
    GET /console/static/{file}   the console's own scripts and styles (public)
    GET /console/vendor/{file}   the third-party ones (public; web/assets.json, npm ci)

A page is a small HTML shell: its words and the user go in a JSON data block, its scripts are loaded with
Subresource Integrity and run under a Content-Security-Policy allowing this origin only. A refused page is a
page (:class:`PageGuard`): without a session the sign-in form (401), without the role "not allowed" with a
link home (403), never the API's JSON.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from callcenter import logs
from callcenter.api.guard import Principal, cookie
from callcenter.api.http import Guard, HttpError, HttpRouter, Reply, Request, Response, Route
from callcenter.auth.roles import (
    ADMINS,
    ANYONE,
    CAMPAIGNS,
    FLOOR_VIEW,
    PUBLIC,
    ROLES,
    SELF_AGENT,
    SUPERVISORS,
)
from callcenter.console import i18n
from callcenter.console.assets import Asset, AssetError, own_files, vendor_files
from callcenter.routing.rules import PAUSE_REASONS

log = logs.get("console")

PREFIX = "/console"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
SYSTEM_PAUSES = frozenset({"missed_offers", "no_phone"})    # set by the router, not chosen by an agent


@dataclass
class Console:
    """What the pages show besides the API's live data: the pause reasons agents choose from and the
    wrap-up codes (``callcenter.wrapup``), as the page's boot data."""

    pause_reasons: tuple[str, ...]
    wrapup: dict[str, Any] = field(default_factory=dict)
    own: dict[str, Asset] = field(default_factory=own_files)
    vendor: dict[str, Asset] = field(default_factory=dict)
    problem: str | None = None            # why there is no console (its assets are missing or altered)
    events: bool = False                  # the worker serves GET /events (the pages listen to it)
    caller_ids: tuple[str, ...] = ()      # what an agent's click-to-call shows the customer (POST /agents/{id}/dial)
    previews: tuple[tuple[str, str], ...] = ()   # (id, name) of the preview campaigns the desk takes records of
    phone: str | None = None              # the edge's WebSocket URL: the agent desk's browser phone (phone.js)

    @classmethod
    def load(cls, pause_reasons: Iterable[str], wrapup: dict[str, Any], caller_ids: Iterable[str] = (),
             previews: Iterable[tuple[str, str]] = ()) -> Console:
        """``pause_reasons``: the routing rules' (``defaults.pause_reasons``), else every reason the API takes;
        ``caller_ids``: click-to-call's (none: the desk has no dial box); ``previews``: the preview campaigns
        this worker dials (none: no preview box)."""
        reasons = tuple(r for r in (tuple(pause_reasons) or PAUSE_REASONS) if r not in SYSTEM_PAUSES)
        try:
            return cls(reasons, wrapup, vendor=vendor_files(), caller_ids=tuple(caller_ids),
                       previews=tuple(previews))
        except AssetError as exc:
            log.error("web console unavailable", error=str(exc))
            return cls(reasons, wrapup, problem=str(exc))

    # -- rendering ----------------------------------------------------------------------------------

    def language(self, req: Request) -> str:
        return i18n.choose(cookie(req.headers, i18n.COOKIE), req.headers.get("accept-language", ""))

    def page(self, req: Request, name: str, title: str, status: int = 200, **data: Any) -> Response:
        """The shell of page ``name`` (its script static/<name>.js renders into #app)."""
        lang = self.language(req)
        if self.problem is not None:
            return self.message(req, "unavailable.title", self.problem, 503)
        who: Principal | None = req.principal
        boot = {"lang": lang, "languages": list(i18n.LANGUAGES), "t": i18n.TEXTS[lang], "page": name,
                "user": who.as_dict() if who is not None else None, "pause_reasons": list(self.pause_reasons),
                "wrapup": self.wrapup, "events": self.events, "caller_ids": list(self.caller_ids),
                "preview_campaigns": [{"id": i, "name": n} for i, n in self.previews], **data}
        # a JSON data block is never run; "</" is escaped so its text cannot close the element
        text = json.dumps(boot, ensure_ascii=False).replace("</", "<\\/")
        phone = name == "agent" and self.phone is not None and "jssip.js" in self.vendor
        scripts = "".join(self._script(src) for src in ("vendor/htm-preact.js", "static/common.js",
                                                        f"static/{name}.js",
                                                        *(("vendor/jssip.js", "static/phone.js") if phone else ())))
        body = (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
                f"<title>{html.escape(i18n.TEXTS[lang][title])} · callcenter</title>"
                f'<link rel="stylesheet" href="{PREFIX}/static/console.css" '
                f'integrity="{self.own["console.css"].integrity}">'
                f'<script type="application/json" id="cc-boot">{text}</script>{scripts}</head>'
                '<body><div id="app"></div></body></html>')
        headers = dict(HEADERS)
        if phone:       # the browser phone's WebSocket to the edge: that URL only
            csp = headers["Content-Security-Policy"]
            headers["Content-Security-Policy"] = csp.replace("connect-src 'self'", f"connect-src 'self' {self.phone}")
        return Response(body.encode(), status, "text/html; charset=utf-8", headers)

    def _script(self, src: str) -> str:
        kind, _, name = src.partition("/")
        asset = (self.vendor if kind == "vendor" else self.own)[name]
        return f'<script defer src="{PREFIX}/{src}" integrity="{asset.integrity}"></script>'

    def message(self, req: Request, title: str, text: str, status: int) -> Response:
        """A page without scripts: a title, a sentence and the way home (403, 503)."""
        lang = self.language(req)
        t = i18n.TEXTS[lang]
        body = (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
                f"<title>{html.escape(t[title])} · callcenter</title>"
                f'<link rel="stylesheet" href="{PREFIX}/static/console.css" '
                f'integrity="{self.own["console.css"].integrity}"></head>'
                f'<body><main class="message" id="message"><h1>{html.escape(t[title])}</h1>'
                f"<p>{html.escape(text)}</p>"
                f'<p><a href="{PREFIX}" id="home-link">{html.escape(t["forbidden.home"])}</a></p></main></body></html>')
        return Response(body.encode(), status, "text/html; charset=utf-8", dict(HEADERS))

    async def refusal(self, req: Request, denied: Response) -> Response:
        """What a page answers instead of the guard's JSON: the sign-in page, or "not allowed"."""
        if denied.status == 401:
            return self.page(req, "login", "login.title", 401)
        lang = self.language(req)
        return self.message(req, "forbidden.title", i18n.TEXTS[lang]["forbidden.text"], denied.status)


class PageGuard:
    """The API's guard, except that a page's refusal is a page (Console.refusal)."""

    @classmethod
    def around(cls, inner: Guard | None, console: Console) -> PageGuard | None:
        return cls(inner, console) if inner is not None else None

    def __init__(self, inner: Guard, console: Console) -> None:
        self.inner = inner
        self.console = console
        self.pages: set[str] = set()          # the patterns of the page routes

    async def admit(self, route: Route, req: Request) -> Response | None:
        denied = await self.inner.admit(route, req)
        if denied is not None and route.pattern in self.pages:
            return await self.console.refusal(req, denied)
        return denied

    async def audit(self, route: Route, req: Request, resp: Response) -> None:
        await self.inner.audit(route, req, resp)


def install_routes(router: HttpRouter, console: Console) -> None:
    pages = router.guard.pages if isinstance(router.guard, PageGuard) else set()

    def page(pattern: str, handler: Callable[[Request], Response], roles: frozenset[str],
             own: str | None = None) -> None:
        async def serve(req: Request) -> Reply:
            return handler(req)

        pages.add(pattern)
        router.add(pattern, serve, roles=roles, own=own)

    def home(req: Request) -> Response:
        return console.page(req, "home", "home.title")

    def agent(req: Request) -> Response:
        return console.page(req, "agent", "page.agent", agent=req.params["id"])

    def wallboard(req: Request) -> Response:
        return console.page(req, "wallboard", "page.wallboard")

    def campaigns(req: Request) -> Response:
        return console.page(req, "campaigns", "page.campaigns")

    def admin(req: Request) -> Response:
        return console.page(req, "admin", "page.admin", roles=sorted(ROLES))

    def calls(req: Request) -> Response:
        return console.page(req, "calls", "page.calls")

    async def login(req: Request) -> Reply:
        return console.page(req, "login", "login.title")

    def file_route(files: Callable[[], dict[str, Asset]]) -> Callable[[Request], Any]:
        async def serve(req: Request) -> Reply:
            asset = files().get(req.params["file"])
            if asset is None:
                raise HttpError(404, "not found")
            return Response(asset.body, 200, asset.content_type,
                            {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
        return serve

    page(f"GET {PREFIX}", home, ANYONE)
    page(f"GET {PREFIX}/agent/{{id}}", agent, SELF_AGENT, own="id")
    page(f"GET {PREFIX}/wallboard", wallboard, FLOOR_VIEW)
    page(f"GET {PREFIX}/campaigns", campaigns, CAMPAIGNS)
    page(f"GET {PREFIX}/admin", admin, ADMINS)
    page(f"GET {PREFIX}/calls", calls, SUPERVISORS)
    router.add(f"GET {PREFIX}/login", login, roles=PUBLIC)
    router.add(f"GET {PREFIX}/static/{{file}}", file_route(lambda: console.own), roles=PUBLIC)
    router.add(f"GET {PREFIX}/vendor/{{file}}", file_route(lambda: console.vendor), roles=PUBLIC)
    console.events = any(r.pattern == "GET /events" for r in router.routes)
