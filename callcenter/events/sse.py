"""One browser's ``GET /events``: Server-Sent Events filtered for its user.

The stream starts after a stream id (the client's ``Last-Event-ID``, or the newest event when it has
none): it joins the process's :class:`~callcenter.events.bus.Hub` first, holding what arrives live,
sends what was stored after that id (up to ``backlog_max`` events), then what it held, so nothing
between the two is lost or sent twice (ids only go up). Each message::

    id: 1732950000123-0
    event: call.offered
    data: {"type": "call.offered", "ts": 1732950000.12, "call_id": "...", ...}

and a comment (``: hb``) every heartbeat, when the user is also checked again (``again``: a user disabled, a
session ended or a token revoked closes the stream; changed roles or queues apply from then on). A client that stops reading (its socket's buffer full: twisted
pauses the stream as a producer) is disconnected once ``SLOW_CLIENT_BYTES`` more wait for it, so a stuck
page costs a bounded amount of memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from twisted.web import server

from callcenter import logs
from callcenter.api.http import Streamed
from callcenter.events.bus import Hub, StreamId, parse_id, read_after
from callcenter.events.schema import Event, Viewer, visible

log = logs.get("events")

BACKLOG_PAGE = 500
SLOW_CLIENT_BYTES = 1024 * 1024   # written while the client's socket is full: past this it is dropped (it
                                  # reconnects with Last-Event-ID and catches up from the stream)


def message(eid: str, ev: Event) -> bytes:
    data = json.dumps(ev, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"id: {eid}\nevent: {ev['type']}\ndata: {data}\n\n".encode()


class EventStream(Streamed):
    """The body of one ``GET /events`` response: lives until the client goes away."""

    def __init__(self, hub: Hub, viewer: Viewer, after: str, backlog_max: int = 10_000,
                 again: Callable[[], Awaitable[Viewer | None]] | None = None) -> None:
        self.hub = hub
        self.viewer = viewer
        self.again = again
        self.checking: asyncio.Task[None] | None = None
        self.after = after
        self.last: StreamId = parse_id(after) or (0, 0)
        self.backlog_max = backlog_max
        self.request: server.Request | None = None
        self.held: list[tuple[str, Event]] | None = []    # live events that came while the backlog was sent
        self.task: asyncio.Task[None] | None = None
        self.paused = False
        self.unread = 0             # bytes written since the transport said it was full

    def send(self, request: server.Request) -> None:
        self.request = request
        with contextlib.suppress(Exception):     # a push is small and wanted now: no Nagle delay
            request.transport.setTcpNoDelay(True)  # type: ignore[union-attr]
        request.notifyFinish().addBoth(self._gone)
        request.registerProducer(self, True)   # a push producer: told when the client stops reading
        self.hub.subscribe(self)
        request.write(b"retry: 3000\n: connected\n\n")
        self.task = asyncio.ensure_future(self._backlog())

    def discard(self) -> None:
        self.request = None

    async def _backlog(self) -> None:
        after, sent = self.after, 0
        try:
            while sent < self.backlog_max and self.request is not None:
                rows = await read_after(self.hub.redis, self.hub.prefix, after,
                                        min(BACKLOG_PAGE, self.backlog_max - sent))
                for eid, ev in rows:
                    self._send(eid, ev)
                if len(rows) < BACKLOG_PAGE:
                    break
                after, sent = rows[-1][0], sent + len(rows)
        except RedisError as exc:
            log.warning("event backlog not read", after=after, error=str(exc))
        held, self.held = self.held or [], None
        for eid, ev in held:
            self._send(eid, ev)

    def deliver(self, eid: str, ev: Event) -> None:
        if self.held is not None:
            self.held.append((eid, ev))
        else:
            self._send(eid, ev)

    def _send(self, eid: str, ev: Event) -> None:
        sid = parse_id(eid)
        if self.request is None or sid is None or sid <= self.last:
            return
        self.last = sid
        shown = visible(ev, self.viewer)
        if shown is not None:
            self._write(self.hub.encoded(eid, ev, message) if shown is ev else message(eid, shown))

    def ping(self) -> None:
        self._write(b": hb\n\n")
        if self.again is not None and self.request is not None and (self.checking is None or self.checking.done()):
            self.checking = asyncio.ensure_future(self._check())

    async def _check(self) -> None:
        assert self.again is not None
        try:
            viewer = await self.again()
        except Exception:  # noqa: BLE001 - Redis away: the stream goes on; the next heartbeat checks again
            log.warning("event stream's user not checked", user=self.viewer.user)
            return
        if viewer is None:
            log.info("event stream closed: its user is no longer allowed", user=self.viewer.user)
            self.close()
        else:
            self.viewer = viewer

    def close(self) -> None:
        request, self.request = self.request, None
        if request is not None:
            request.loseConnection()

    def _write(self, data: bytes) -> None:
        if self.request is None:
            return
        if self.paused:
            self.unread += len(data)
            if self.unread > SLOW_CLIENT_BYTES:
                log.warning("event stream dropped: the client is not reading", user=self.viewer.user)
                self.close()
                return
        self.request.write(data)

    # twisted's IPushProducer (not declared: zope's declarations are not visible to mypy)
    def pauseProducing(self) -> None:  # noqa: N802 - twisted's name
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802 - twisted's name
        self.paused, self.unread = False, 0

    def stopProducing(self) -> None:  # noqa: N802 - twisted's name
        self.request = None

    def _gone(self, _: Any) -> None:
        self.request = None
        self.hub.unsubscribe(self)
        if self.task is not None and not self.task.done():
            self.task.cancel()
