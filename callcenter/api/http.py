"""The one way HTTP endpoints are written: async handlers that take a Request and return JSON.

    class QueuesResource(JsonResource):
        async def get(self, request: Request) -> Response: ...
        routes = {"GET /queues/{name}": get}

Handlers are asyncio coroutines; twisted.web sees Deferreds (the asyncio reactor runs both).
Errors raised as ``HttpError(status, message)`` become ``{"error": message}`` with that status;
any other exception is logged and becomes 500 without leaking internals.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from twisted.internet.defer import Deferred
from twisted.web import server
from twisted.web.resource import Resource

from callcenter import logs

log = logs.get("api")


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

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    body: Any = None
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response | Any]]


class Router(Resource):
    """A twisted.web leaf resource dispatching ``"METHOD /path/{param}"`` patterns to async handlers."""

    isLeaf = True

    def __init__(self, max_body: int = 64 * 1024 * 1024) -> None:
        super().__init__()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.max_body = max_body

    def add(self, pattern: str, handler: Handler) -> None:
        method, _, path = pattern.partition(" ")
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path.rstrip("/") or "/") + "/?$"
        self._routes.append((method.upper(), re.compile(regex), handler))

    def render(self, request: server.Request) -> int:
        path = request.path.decode("utf-8", "replace")
        method = request.method.decode("ascii", "replace").upper()
        allowed = False
        for route_method, regex, handler in self._routes:
            m = regex.match(path)
            if not m:
                continue
            allowed = True
            if route_method != method:
                continue
            body = request.content.read(self.max_body + 1) if request.content else b""
            req = Request(method, path, m.groupdict(), parse_qs(request.uri.decode().partition("?")[2]),
                          {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()},
                          body)
            if len(body) > self.max_body:
                self._finish(request, Response({"error": f"request body over {self.max_body} bytes"}, 413))
                return server.NOT_DONE_YET
            d = Deferred.fromFuture(asyncio.ensure_future(self._run(handler, req)))
            d.addCallback(lambda resp: self._finish(request, resp))
            d.addErrback(lambda f: log.error("http handler crashed", error=f.getErrorMessage()))
            return server.NOT_DONE_YET
        status = 405 if allowed else 404
        self._finish(request, Response({"error": "method not allowed" if allowed else "not found"}, status))
        return server.NOT_DONE_YET

    async def _run(self, handler: Handler, req: Request) -> Response:
        try:
            result = await handler(req)
        except HttpError as exc:
            body: dict[str, Any] = {"error": exc.message}
            if exc.detail is not None:
                body["detail"] = exc.detail
            return Response(body, exc.status)
        except Exception:  # noqa: BLE001 - a bad request must never take the service down
            log.exception("http handler failed", method=req.method, path=req.path)
            return Response({"error": "internal error"}, 500)
        return result if isinstance(result, Response) else Response(result)

    @staticmethod
    def _finish(request: server.Request, resp: Response) -> None:
        if request.finished or request._disconnected:  # type: ignore[attr-defined]
            return
        request.setResponseCode(resp.status)
        request.setHeader(b"content-type", resp.content_type.encode())
        for k, v in resp.headers.items():
            request.setHeader(k.encode(), v.encode())
        if resp.content_type == "application/json":
            payload = json.dumps(resp.body, ensure_ascii=False, default=str).encode()
        elif isinstance(resp.body, bytes):
            payload = resp.body
        else:
            payload = str(resp.body or "").encode()
        request.write(payload)
        request.finish()
