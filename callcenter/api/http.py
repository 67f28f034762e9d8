"""The one way HTTP endpoints are written: async handlers that take a Request and return JSON.

    async def queue(req: Request) -> Response: ...
    router.add("GET /queues/{name}", queue, roles=SUPERVISORS)     # every route names its roles

Handlers are asyncio coroutines; twisted.web sees Deferreds (the asyncio reactor runs both).
Errors raised as ``HttpError(status, message)`` become ``{"error": message}`` with that status;
any other exception is logged and becomes 500 without leaking internals.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol
from urllib.parse import parse_qs

from twisted.internet.defer import Deferred
from twisted.web import server
from twisted.web.resource import Resource

from callcenter import logs
from callcenter.auth.roles import PUBLIC

log = logs.get("api")

JSON_MAX_BODY = 64 * 1024       # a route's body cap unless it says otherwise (add(..., max_body=N))
JSON_INLINE = 8 * 1024          # bigger JSON bodies are parsed in a thread, not on the loop
CALL_PARAM = "call_id"          # a route with this path param is call-scoped (HttpRouter, api/forward.py)
FORWARDED = "x-callcenter-forwarded"   # a worker's signed assertion of who asked (api/forward.py)
_UNPARSED: Any = object()


class HttpError(Exception):
    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]            # from the route pattern
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    remote: str = ""                  # the client's address (the TCP peer; no proxy header is believed)
    principal: Any = None             # who is asking (callcenter.api.guard.Principal), set by the guard
    parsed: Any = field(default=_UNPARSED, repr=False)   # json()'s result (or error), once parsed
    stream: Any = None                # the body as a binary file, for routes added with stream=True
    forwarded_by: str | None = None   # the worker that admitted this request and forwarded it here (api/forward.py)

    def json(self) -> Any:
        if self.parsed is _UNPARSED:
            try:
                self.parsed = self._parse_json()
            except HttpError as exc:
                self.parsed = exc
        if isinstance(self.parsed, HttpError):
            raise self.parsed
        return self.parsed

    def _parse_json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise HttpError(400, "request body is not valid JSON: nested too deeply") from None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def param(self, name: str, limit: int) -> str:
        """The path param ``name``, 400 when longer than ``limit`` characters."""
        value = self.params[name]
        if len(value) > limit:
            raise HttpError(400, f"{name.replace('_', ' ')} too long")
        return value


@dataclass
class Response:
    body: Any = None
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class Streamed:
    """A Response body written to the client as it comes, never whole in memory: a file (FileBody), another
    worker's answer (api/forward.py). Set content-length yourself."""

    def send(self, request: server.Request) -> None:
        """Write the body to ``request`` and finish it (now or as the data comes)."""
        raise NotImplementedError

    def discard(self) -> None:
        """The client went away before the answer: release what the body holds."""
        raise NotImplementedError


@dataclass(frozen=True)
class FileBody(Streamed):
    """A Response body sent from an open file in chunks as the client takes them (twisted's pull
    producer, _FileProducer: 64 KiB a read): ``size`` bytes from ``offset``. Never read whole into memory; the
    response closes the file (a client gone before the answer too)."""

    file: BinaryIO
    offset: int
    size: int

    def send(self, request: server.Request) -> None:
        _FileProducer(request, self).start()

    def discard(self) -> None:
        self.file.close()


class _FileProducer:
    """A FileBody to the request, a chunk each time the transport asks for more (as the client reads):
    a pull producer (twisted's IPullProducer, not declared: zope's declarations are not visible to mypy)."""

    CHUNK = 65536

    def __init__(self, request: server.Request, body: FileBody) -> None:
        self.request: server.Request | None = request
        self.body = body
        self.left = body.size

    def start(self) -> None:
        assert self.request is not None
        self.body.file.seek(self.body.offset)
        self.request.registerProducer(self, False)

    def resumeProducing(self) -> None:  # noqa: N802 - twisted's name
        if self.request is None:
            return
        data = self.body.file.read(min(self.CHUNK, self.left)) if self.left > 0 else b""
        self.left -= len(data)
        if data:
            self.request.write(data)        # may call resumeProducing again before it returns
        if self.request is not None and (self.left <= 0 or not data):   # done, or the file was cut short
            request = self.request
            request.unregisterProducer()
            request.finish()
            self.stopProducing()

    def stopProducing(self) -> None:  # noqa: N802 - twisted's name
        self.body.file.close()
        self.request = None


class ChunksBody(Streamed):
    """A Response body made as it is sent (HTTP chunked): each chunk of ``chunks`` is written as it comes and the
    next one asked for only while the client keeps up (a push producer the transport pauses when its buffer is
    full), so a big answer (a campaign's results CSV) is never whole in memory. A client gone stops it; a failing
    iterator is logged and the connection dropped (the client sees a cut transfer, not a short file)."""

    def __init__(self, chunks: AsyncGenerator[bytes, None]) -> None:
        self.chunks = chunks
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.gone = False
        self.pump: asyncio.Future[None] | None = None      # held: the loop keeps only a weak reference

    def send(self, request: server.Request) -> None:
        request.registerProducer(self, True)
        self.pump = asyncio.ensure_future(self._pump(request))

    async def _pump(self, request: server.Request) -> None:
        try:
            async for chunk in self.chunks:
                await self.flowing.wait()
                if self.gone:
                    return
                request.write(chunk)
        except Exception:
            log.exception("streamed answer failed", uri=request.uri.decode(errors="replace"))
            if not self.gone:
                request.unregisterProducer()
                request.loseConnection()
            return
        finally:
            await self.chunks.aclose()
        if not self.gone:
            request.unregisterProducer()
            request.finish()

    def pauseProducing(self) -> None:  # noqa: N802 - twisted's name
        self.flowing.clear()

    def resumeProducing(self) -> None:  # noqa: N802 - twisted's name
        self.flowing.set()

    def stopProducing(self) -> None:  # noqa: N802 - twisted's name
        self.gone = True
        self.flowing.set()

    def discard(self) -> None:
        asyncio.ensure_future(self.chunks.aclose())


Reply = Response | dict[str, Any]    # what a handler returns: a Response, or a JSON object answered 200
Handler = Callable[[Request], Awaitable[Reply]]
Locate = Callable[[Request], Awaitable[str | None]]   # the worker id a call-scoped request belongs to (None: any)


@dataclass(frozen=True)
class Route:
    """One endpoint and who may call it (see :mod:`callcenter.auth.roles` and ``api/guard.py``)."""

    method: str
    pattern: str                      # "POST /agents/{id}/login": what the audit log names
    regex: re.Pattern[str]
    handler: Handler
    roles: frozenset[str]             # roles allowed; callcenter.auth.roles.PUBLIC for the login only
    own: str | None = None            # path param or query arg an agent-only user must own (its agent id)
    audit: bool = False               # audit a read too (contact data); state changes always are
    max_body: int | None = None       # this route's body cap (None: the router's)
    stream: bool = False              # the handler reads the body from req.stream (a file), body is b""
    call: str | None = None           # the path param naming a call: answered by the worker holding it
    locate: Locate | None = None      # the worker to answer it, if not the one holding the call's media

    @property
    def located(self) -> bool:
        """Answered by one worker (the call's, or the one ``locate`` names), not by whichever it reaches."""
        return self.call is not None or self.locate is not None


class Guard(Protocol):
    """Who may call a route (``api/guard.py``): a denial Response, or None with req.principal set."""

    async def admit(self, route: Route, req: Request) -> Response | None: ...

    async def audit(self, route: Route, req: Request, resp: Response) -> None: ...


class Forwarder(Protocol):
    """Call-scoped requests to the worker holding the call (``api/forward.py``)."""

    async def owner(self, route: Route, req: Request) -> str | None:
        """The other worker that must answer this admitted request; None: this one."""
        ...

    async def forward(self, route: Route, req: Request, owner: str) -> tuple[Response, bool]:
        """The owner's answer (streamed through), and whether the owner answered (and audited) it."""
        ...


class HttpRouter(Resource):
    """A twisted.web leaf resource dispatching ``"METHOD /path/{param}"`` patterns to async handlers.

    Every route declares its roles (``add(..., roles=...)``, no default); with a ``guard`` (the worker
    always passes one unless ``http.auth`` is off on loopback) each request is authenticated, checked
    against them and audited before/after its handler runs.

    A route with a ``{call_id}`` path param is call-scoped: with a ``forwarder``, once admitted here the
    request is answered by the worker holding that call; ``locate=`` names the worker otherwise (the one
    whose disk holds a recording or a voice message)."""

    isLeaf = True

    def __init__(self, max_body: int = JSON_MAX_BODY, guard: Guard | None = None,
                 forwarder: Forwarder | None = None) -> None:
        super().__init__()
        self._routes: list[Route] = []
        self.max_body = max_body
        self.guard = guard
        self.forwarder = forwarder

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def add(self, pattern: str, handler: Handler, *, roles: frozenset[str], own: str | None = None,
            audit: bool = False, max_body: int | None = None, stream: bool = False,
            locate: Locate | None = None) -> None:
        if not isinstance(roles, frozenset) or not roles and roles is not PUBLIC:
            raise ValueError(f"{pattern}: roles must be a non-empty frozenset of role names (or PUBLIC)")
        method, _, path = pattern.partition(" ")
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path.rstrip("/") or "/") + "/?$"
        call = CALL_PARAM if f"{{{CALL_PARAM}}}" in path else None
        if stream and (call or locate):
            raise ValueError(f"{pattern}: a streamed upload is not forwarded to another worker (no call-scoped route "
                             f"takes one)")
        self._routes.append(Route(method.upper(), f"{method.upper()} {path}", re.compile(regex), handler,
                                  roles, own, audit, max_body, stream, call, locate))

    def body_limit(self, method: str, path: str) -> int:
        """The body cap of the route serving ``method path`` (the router's if none does): the site
        refuses a longer body before reading it (:mod:`callcenter.api.bodylimit`)."""
        for route in self._routes:
            if route.method == method and route.regex.match(path):
                return route.max_body or self.max_body
        return self.max_body

    @property
    def largest_body(self) -> int:
        return max([self.max_body, *(r.max_body or 0 for r in self._routes)])

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route serving ``method path`` and its path params (LookupError if none)."""
        for route in self._routes:
            m = route.regex.match(path)
            if m and route.method == method:
                return route, m.groupdict()
        raise LookupError(f"no route {method} {path}")

    async def admit_headers(self, method: str, target: str, headers: dict[str, str],
                            remote: str) -> tuple[int, dict[str, Any]] | None:
        """The guard's verdict on a request from its headers alone (before a large body is read):
        None to go on, or (status, JSON error). The full check runs again with the body."""
        path, _, query = target.partition("?")
        try:
            route, params = self.match(method, path)
        except LookupError:
            return None        # 404/405 come later; such a body is capped at the router's default
        if self.guard is None or FORWARDED in headers:   # an assertion is checked once, with the body it signs
            return None
        denied = await self.guard.admit(route, Request(method, path, params, parse_qs(query), headers, b"",
                                                       remote))
        return None if denied is None else (denied.status, denied.body)

    def render(self, request: server.Request) -> int:
        path = request.path.decode("utf-8", "replace")
        method = request.method.decode("ascii", "replace").upper()
        allowed = False
        for route in self._routes:
            m = route.regex.match(path)
            if not m:
                continue
            allowed = True
            if route.method != method:
                continue
            cap = route.max_body or self.max_body
            content = request.content
            # twisted keeps small bodies in memory and spools big ones to a temp file: read those in a thread
            # (a streaming route gets the file itself: its handler reads it in a thread, once)
            spooled = content if content is not None and (route.stream or not isinstance(content, io.BytesIO)) \
                else None
            body = content.read(cap + 1) if content is not None and spooled is None else b""
            req = Request(method, path, m.groupdict(), parse_qs(request.uri.decode().partition("?")[2]),
                          {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()},
                          body, getattr(request.getClientAddress(), "host", ""))
            if len(body) > cap:
                self._finish(request, Response({"error": f"request body over {cap} bytes"}, 413))
                return server.NOT_DONE_YET
            d = Deferred.fromFuture(asyncio.ensure_future(self._read_and_serve(route, req, spooled, cap)))
            d.addCallback(lambda resp: self._finish(request, resp))
            d.addErrback(lambda f: log.error("http handler crashed", error=f.getErrorMessage()))
            return server.NOT_DONE_YET
        status = 405 if allowed else 404
        self._finish(request, Response({"error": "method not allowed" if allowed else "not found"}, status))
        return server.NOT_DONE_YET

    async def _read_and_serve(self, route: Route, req: Request, spooled: Any, cap: int) -> Response:
        if spooled is not None and route.stream:
            req.stream = spooled
        elif spooled is not None:
            try:
                req.body = await asyncio.to_thread(spooled.read, cap + 1)
            except (OSError, ValueError):       # the client went away and twisted closed the file
                return Response({"error": "request body could not be read"}, 400)
            if len(req.body) > cap:
                return Response({"error": f"request body over {cap} bytes"}, 413)
        if len(req.body) > JSON_INLINE and "json" in req.headers.get("content-type", ""):
            await asyncio.to_thread(req.json)     # parsed once, off the loop; handlers get the result
        return await self._serve(route, req)

    async def _serve(self, route: Route, req: Request) -> Response:
        denied = await self.guard.admit(route, req) if self.guard is not None else None
        answered_there = False
        if denied is not None:
            resp = denied
        else:
            owner = await self._owner(route, req)
            if owner is not None:
                assert self.forwarder is not None
                resp, answered_there = await self.forwarder.forward(route, req, owner)
            else:
                resp = await self._run(route.handler, req)
        if self.guard is not None and not answered_there:     # the owner audited what it answered
            await self.guard.audit(route, req, resp)
        return resp

    async def _owner(self, route: Route, req: Request) -> str | None:
        """The worker that must answer a call-scoped request, if not this one. A request another worker
        forwarded is never forwarded again (no loops: the owner answers it, 404 if the call is gone)."""
        if self.forwarder is None or not route.located or FORWARDED in req.headers:
            return None
        try:
            return await self.forwarder.owner(route, req)
        except Exception:  # Redis away: answer here (404 for a call held elsewhere)
            log.exception("call owner lookup failed", method=req.method, path=req.path)
            return None

    async def _run(self, handler: Handler, req: Request) -> Response:
        try:
            result = await handler(req)
        except HttpError as exc:
            body: dict[str, Any] = {"error": exc.message}
            if exc.detail is not None:
                body["detail"] = exc.detail
            return Response(body, exc.status)
        except Exception:  # a bad request must never take the service down
            log.exception("http handler failed", method=req.method, path=req.path)
            return Response({"error": "internal error"}, 500)
        return result if isinstance(result, Response) else Response(result)

    @staticmethod
    def _finish(request: server.Request, resp: Response) -> None:
        if request.finished or request._disconnected:
            if isinstance(resp.body, Streamed):
                resp.body.discard()
            return
        request.setResponseCode(resp.status)
        request.setHeader(b"content-type", resp.content_type.encode())
        for k, v in resp.headers.items():
            request.setHeader(k.encode(), v.encode())
        if isinstance(resp.body, Streamed):
            resp.body.send(request)
            return
        if resp.content_type == "application/json":
            payload = json.dumps(resp.body, ensure_ascii=False, default=str).encode()
        elif isinstance(resp.body, bytes):
            payload = resp.body
        else:
            payload = str(resp.body or "").encode()
        request.write(payload)
        request.finish()
