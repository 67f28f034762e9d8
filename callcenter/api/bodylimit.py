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
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from twisted.web import server
from twisted.web.resource import Resource

from callcenter import logs

log = logs.get("api")

LINGER = 2.0

BodyLimit = Callable[[str, str], int]


class LimitedRequest(server.Request):
    _refused = False
    _received = 0
    _cap = 0

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - twisted name
        self._cap = self._limit()
        if length is not None and length > self._cap:
            self.content = io.BytesIO()
            # allHeadersReceived would otherwise send "100 Continue" after our answer
            self.requestHeaders.removeHeader(b"expect")
            self._refuse(length)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - twisted name
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._cap:
            self._refuse(None)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if not self._refused:
            super().requestReceived(command, path, version)

    def _limit(self) -> int:
        # Method and target are the channel's until the body is in (twisted sets them on the request
        # only then); without them the largest cap applies and the router checks again.
        site = self.channel.site
        method = getattr(self.channel, "_command", None)
        target = getattr(self.channel, "_path", None)
        if not isinstance(method, bytes) or not isinstance(target, bytes):
            return site.largest_body
        path = target.split(b"?", 1)[0]
        return int(site.body_limit(method.decode("ascii", "replace").upper(), path.decode("utf-8", "replace")))

    def _refuse(self, length: int | None) -> None:
        self._refused = True
        transport = self.channel.transport
        body = json.dumps({"error": f"request body over {self._cap} bytes"}).encode()
        transport.write(b"HTTP/1.1 413 Content Too Large\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        log.warning("http body too large", length=length, limit=self._cap,
                    remote=getattr(transport.getPeer(), "host", ""))
        transport.pauseProducing()
        transport.loseWriteConnection()
        from twisted.internet import reactor

        reactor.callLater(LINGER, transport.abortConnection)  # type: ignore[attr-defined]


class LimitedSite(server.Site):
    """A Site whose requests are capped by ``body_limit(method, path)`` (largest_body if unknown)."""

    def __init__(self, root: Resource, body_limit: BodyLimit, largest_body: int, **kw: Any) -> None:
        super().__init__(root, requestFactory=LimitedRequest, **kw)
        self.body_limit = body_limit
        self.largest_body = largest_body
