"""Request bodies are refused by size before they are read: the HTTP site's request factory.

twisted.web reads every request body into memory or a temp file before a resource sees the request,
so a cap checked in the resource comes too late (a 20 MB body has been received and spooled by then).
:class:`LimitedRequest` asks the site for the cap of the route as soon as the headers are in
(``body_limit(method, path)``, the route table's per-route ``max_body``):

- a Content-Length over the cap is answered at once with 413 and a JSON error; the body is not read;
- a chunked body (no Content-Length) is counted as it streams and answered 413 the moment it passes
  the cap; what it sent so far is dropped.

After a 413 the connection reads nothing more and closes its sending side; it is aborted after
``LINGER`` seconds, long enough for the client to read the answer before the reset that unread data
causes on close.

A body that may be larger than a JSON body (Content-Length over ``ADMIT_FIRST_OVER``, or chunked) is only
read once its sender is admitted: the connection stops reading, the site's ``admit(method, target,
headers, remote)`` runs the route's authentication and role check on the headers, and then reading
resumes (and "100 Continue" is sent if asked for) or the refusal is sent and the connection closed.
Otherwise anyone who reaches the port could make the worker spool 50 MiB list uploads to disk.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from twisted.web import server
from twisted.web.resource import Resource

from callcenter import logs

log = logs.get("api")

LINGER = 2.0
ADMIT_FIRST_OVER = 64 * 1024     # bodies over this (or chunked) wait for the sender's admission

BodyLimit = Callable[[str, str], int]
# (method, target with query, lower-cased headers, remote address) -> None, or (status, JSON body) refusing
Admit = Callable[[str, str, dict[str, str], str], Awaitable[tuple[int, dict[str, Any]] | None]]


class _Transport(Protocol):
    """The connection's TCP transport as this module uses it (twisted declares transports as zope
    interfaces, whose methods mypy reads without ``self``)."""

    def write(self, data: bytes) -> None: ...
    def pauseProducing(self) -> None: ...  # noqa: N802 - twisted name
    def resumeProducing(self) -> None: ...  # noqa: N802
    def loseWriteConnection(self) -> None: ...  # noqa: N802
    def abortConnection(self) -> None: ...  # noqa: N802
    def getPeer(self) -> object: ...  # noqa: N802


class _Channel(Protocol):
    """The request's HTTP channel while it reads a request (twisted's annotations lack ``site``, which
    the Site that built the channel sets)."""

    site: LimitedSite
    transport: _Transport


class _Clock(Protocol):
    def callLater(self, delay: float, fn: Callable[[], None]) -> object: ...  # noqa: N802 - twisted name


class LimitedRequest(server.Request):
    _refused = False
    _received = 0
    _cap = 0
    _gated = False              # waiting for the sender's admission; the body is not read meanwhile
    _complete_while_gated: tuple[bytes, bytes, bytes] | None = None   # the request line, once the body is in
    _continue = False           # the client asked for "100 Continue": sent once admitted

    def _wire(self) -> _Channel:
        return cast(_Channel, self.channel)

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - twisted name
        self._cap = self._limit()
        if length is not None and length > self._cap:
            self.content = io.BytesIO()  # type: ignore[assignment]  # twisted annotates it as always None
            # allHeadersReceived would otherwise send "100 Continue" after our answer
            self.requestHeaders.removeHeader(b"expect")
            self._refuse(length)
            return
        super().gotLength(length)
        admit = self._wire().site.admit
        if admit is not None and (length is None or length > ADMIT_FIRST_OVER):
            self._admit_first(admit)

    def _admit_first(self, admit: Admit) -> None:
        self._gated = True
        expect = self.requestHeaders.getRawHeaders(b"expect") or []
        self._continue = bool(expect) and expect[0].lower() == b"100-continue"
        self.requestHeaders.removeHeader(b"expect")
        transport = self._wire().transport
        transport.pauseProducing()
        method = getattr(self.channel, "_command", b"")
        target = getattr(self.channel, "_path", b"")
        headers = {k.decode("latin-1").lower(): v[0].decode("latin-1")
                   for k, v in self.requestHeaders.getAllRawHeaders()}
        remote = getattr(transport.getPeer(), "host", "")
        fut = asyncio.ensure_future(admit(method.decode("ascii", "replace").upper(),
                                          target.decode("utf-8", "replace"), headers, remote))
        fut.add_done_callback(self._admitted)

    def _admitted(self, fut: asyncio.Future[tuple[int, dict[str, Any]] | None]) -> None:
        if self._refused or self.channel is None or self.channel.transport is None:
            return
        try:
            refusal = fut.result()
        except Exception as exc:  # noqa: BLE001 - Redis down: refuse rather than read an unchecked body
            log.error("http admission failed", error=str(exc))
            refusal = (503, {"error": "authentication is unavailable, try again"})
        if refusal is not None:
            self._refuse(None, *refusal)
            return
        self._gated = False
        transport = self._wire().transport
        if self._continue:
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        transport.resumeProducing()
        if self._complete_while_gated is not None:
            command, path, version = self._complete_while_gated
            self._complete_while_gated = None
            super().requestReceived(command, path, version)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - twisted name
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._cap:
            self._refuse(None)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if self._refused:
            return
        if self._gated:         # the whole (small) body came in one read: serve it once admitted
            self._complete_while_gated = (command, path, version)
            return
        super().requestReceived(command, path, version)

    def _limit(self) -> int:
        # Method and target are the channel's until the body is in (twisted sets them on the request
        # only then); without them the largest cap applies and the router checks again.
        site = self._wire().site
        method = getattr(self.channel, "_command", None)
        target = getattr(self.channel, "_path", None)
        if not isinstance(method, bytes) or not isinstance(target, bytes):
            return site.largest_body
        path = target.split(b"?", 1)[0]
        return site.body_limit(method.decode("ascii", "replace").upper(), path.decode("utf-8", "replace"))

    def _refuse(self, length: int | None, status: int = 413, error: dict[str, Any] | None = None) -> None:
        self._refused = True
        transport = self._wire().transport
        body = json.dumps(error or {"error": f"request body over {self._cap} bytes"}).encode()
        reason = _REASONS.get(status, b"Refused")
        extra = b'www-authenticate: Bearer realm="callcenter"\r\n' if status == 401 else b""
        transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n%s"
                        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, reason, extra,
                                                                                  len(body), body))
        if status == 413:
            log.warning("http body too large", length=length, limit=self._cap,
                        remote=getattr(transport.getPeer(), "host", ""))
        transport.pauseProducing()
        transport.loseWriteConnection()
        from twisted.internet import reactor

        cast(_Clock, reactor).callLater(LINGER, transport.abortConnection)


_REASONS = {401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Content Too Large", 503: b"Service Unavailable"}


class LimitedSite(server.Site):
    """A Site whose requests are capped by ``body_limit(method, path)`` (largest_body if unknown), and
    whose large bodies are read only after ``admit`` (when given) lets their sender in."""

    def __init__(self, root: Resource, body_limit: BodyLimit, largest_body: int, admit: Admit | None = None,
                 **kw: Any) -> None:
        super().__init__(root, requestFactory=LimitedRequest, **kw)
        self.body_limit = body_limit
        self.largest_body = largest_body
        self.admit = admit
