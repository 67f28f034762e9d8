"""Call-scoped requests are answered by the worker that holds the call, whichever worker they reach.

Operators run several workers behind one load balancer on one Redis (README "Scaling out"); a call's media
lives in one of them. A route with a ``{call_id}`` path param is call-scoped (``HttpRouter``): the worker a
request lands on authenticates and authorises it as for any route (``api/guard.py``: roles, an agent's own
call), then, when the call is held by another worker, forwards it to that worker's HTTP API (each worker
advertises its address, ``http.advertise``) with who asked asserted in one signed header::

    X-Callcenter-Forwarded: <base64url JSON claims>.<hex HMAC-SHA256 of them>

The claims name the user (roles, agent, the agent id it may act on), the client's address, the forwarding
and the receiving worker, the method, path and query, the body's SHA-256, the time and a nonce. The key is a
secret made once per deployment and kept in Redis (never logged). The owner refuses (403) an assertion not
signed with it, meant for another worker or another request, older than ``ASSERTION_TTL`` or seen before
(its nonce is kept that long), and never forwards a forwarded request again (no loops: it answers itself,
404 when the call is not there). Where a call is: this worker's live calls, else routing's record of the
call (its ``owner``, while the call is queued, ringing or talking). A route may name the worker itself
(``add(..., locate=)``, which makes any route forwarded, ``{call_id}`` or not): a finished call's recording,
or a voice message, is on the disk of the worker the call's CDR names.

The owner's answer streams back as it comes (a recording's 206 range is never held in memory). The owner
audits what it answers (the entry names it and the forwarding worker); the forwarding worker audits only
what never reached it: the owner is dead (410), unreachable (502), or silent for ``http.forward_timeout``
(504).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from io import BytesIO
from typing import Any, cast
from urllib.parse import quote

import redis.asyncio as aredis
from twisted.internet import error as net_error
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.client import Agent, FileBodyProducer, ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse

from callcenter import logs, metrics
from callcenter.api.http import FORWARDED, Request, Response, Route, Streamed
from callcenter.keyspace import KeySpace, key0, key1

log = logs.get("forward")

ASSERTION_TTL = 30.0        # seconds an assertion is good for (clocks agree within a second or two: NTP)
MAX_CALL_ID = 64
MAX_ASSERTION = 4096        # bytes of the header; a longer one is refused unread
# the request headers the owner needs; credentials (Authorization, Cookie) never leave the worker they reached
PASSED_ON = ("content-type", "accept", "range", "if-range")
PASSED_BACK = ("content-range", "accept-ranges", "content-disposition", "retry-after",
               "www-authenticate")


class ForwardKeys(KeySpace):
    """The Redis keys of forwarding."""

    addresses = key0("http:workers", "hash", "worker id -> the base URL of its HTTP API (http.advertise)")
    secret = key0("http:forward_secret", "string", "the deployment's key of forwarding assertions (the first "
                                                   "worker to start makes it; never logged)")
    nonce = key1("http:forward_nonce:{n}", "string", "an assertion's nonce, seen (expires after ASSERTION_TTL)")


class AssertionRefused(Exception):
    """An X-Callcenter-Forwarded header that is not believed (the message says why; never the secret)."""


@dataclass(frozen=True)
class Claims:
    """Who asked, as the worker that admitted the request asserts it to the owner."""

    user: str | None                  # None: a worker with http.auth off (loopback only)
    roles: list[str]
    agent: str | None
    via: str
    only_agent: str | None            # the agent id an agent-only user may act on (the guard's own check)
    client: str                       # the client's address
    origin: str                       # the forwarding worker
    to: str                           # the owner
    method: str
    target: str                       # path and query
    body: str                         # SHA-256 hex of the body
    at: float
    nonce: str


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def target_of(req: Request) -> str:
    """The request's path and query as the owner will see them."""
    query = "&".join(f"{_quote(k)}={_quote(v)}" for k, vs in sorted(req.query.items()) for v in vs)
    return f"{req.path}?{query}" if query else req.path


def _quote(value: str) -> str:
    return quote(value, safe="")


def sign(secret: bytes, claims: Claims) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(asdict(claims), separators=(",", ":")).encode()).decode()
    return f"{payload}.{hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()}"


def read(secret: bytes, header: str) -> Claims:
    """The claims of a header signed with ``secret``; AssertionRefused if it is not."""
    if len(header) > MAX_ASSERTION:
        raise AssertionRefused("assertion too long")
    payload, _, mac = header.strip().partition(".")
    expected = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    if not mac or not hmac.compare_digest(mac.encode(), expected.encode()):
        raise AssertionRefused("assertion not signed with this deployment's key")
    try:
        return Claims(**json.loads(base64.urlsafe_b64decode(payload.encode())))
    except (ValueError, TypeError) as exc:
        raise AssertionRefused(f"malformed assertion: {exc}") from None


def check(claims: Claims, me: str, req: Request, now: float) -> None:
    """The claims are for this worker, this request, and fresh (the nonce is checked apart: Redis)."""
    if claims.to != me:
        raise AssertionRefused(f"assertion for worker {claims.to}, not {me}")
    if claims.method != req.method or claims.target != target_of(req) or claims.body != body_digest(req.body):
        raise AssertionRefused("assertion for another request")
    if not now - ASSERTION_TTL <= claims.at <= now + 5.0:
        raise AssertionRefused("assertion expired")


class _Relay(Protocol):
    """The owner's answer body, written to our client as it arrives; the client's pace pauses the owner's
    connection (a streaming producer), the client leaving closes it."""

    def __init__(self, request: server.Request, call_id: str) -> None:
        self.request = request
        self.call_id = call_id

    def connectionMade(self) -> None:  # noqa: N802 - twisted's name
        self.request.registerProducer(self.transport, True)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - twisted's name
        if not self.request.finished and not self.request._disconnected:
            self.request.write(data)

    def connectionLost(self, reason: Failure = ResponseDone()) -> None:  # type: ignore[assignment]  # noqa: N802, B008
        request = self.request
        if request._disconnected or request.finished:
            return          # the client went away (a player seeking): nothing to tell
        request.unregisterProducer()
        if reason.check(ResponseDone, PotentialDataLoss):
            request.finish()
        else:        # cut short: the client must not take a truncated body for a whole one
            log.warning("forwarded answer cut short", call_id=self.call_id or None, error=reason.getErrorMessage())
            request.loseConnection()


class _Drain(Protocol):
    def connectionMade(self) -> None:  # noqa: N802 - twisted's name
        assert self.transport is not None
        self.transport.stopProducing()


@dataclass(frozen=True)
class RelayBody(Streamed):
    """The owner's answer body, streamed through."""

    response: Any                     # twisted.web.iweb.IResponse
    call_id: str

    def send(self, request: server.Request) -> None:
        self.response.deliverBody(_Relay(request, self.call_id))

    def discard(self) -> None:
        self.response.deliverBody(_Drain())


class Forwarder:
    """This worker's side of forwarding: where a call is, the signed forward and its streamed answer, and the
    check of the assertions other workers send (``Guard``)."""

    def __init__(self, redis: aredis.Redis, worker_id: str, advertise: str, *, prefix: str,
                 is_local: Callable[[str], bool], call_owner: Callable[[str], Awaitable[str | None]],
                 alive: Callable[[str], Awaitable[bool]], timeout: float = 10.0) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self.advertise = advertise.rstrip("/")
        self.keys = ForwardKeys(prefix)
        self.is_local = is_local
        self.call_owner = call_owner
        self.alive = alive
        self.timeout = timeout
        self._secret: bytes | None = None
        self._agent = Agent(reactor, connectTimeout=timeout)

    async def refresh(self) -> None:
        """At start and every few seconds: advertise this worker's API; make the deployment's key if no
        worker has yet (a flushed Redis too), and use the one Redis holds."""
        mine = (self._secret or secrets.token_hex(32).encode()).decode()
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.addresses(), self.worker_id, self.advertise)
        pipe.set(self.keys.secret(), mine, nx=True)
        pipe.get(self.keys.secret())
        held = (await pipe.execute())[2]
        self._secret = str(held or mine).encode()

    async def withdraw(self) -> None:
        """At a clean stop: other workers answer 410 at once for what this one held or stored (not 502 until
        its heartbeat is stale)."""
        await self.redis.hdel(self.keys.addresses(), self.worker_id)

    async def _key(self) -> bytes:
        if self._secret is None:
            await self.refresh()
        assert self._secret is not None
        return self._secret

    # -- the forwarding worker -------------------------------------------------------------------

    async def owner(self, route: Route, req: Request) -> str | None:
        if route.locate is not None:
            where = await route.locate(req)
        else:
            call_id = req.params.get(route.call or "", "")
            if not call_id or len(call_id) > MAX_CALL_ID or self.is_local(call_id):
                return None             # (a call id too long: the handler answers 400)
            where = await self.call_owner(call_id)
        return where if where and where != self.worker_id else None

    async def forward(self, route: Route, req: Request, owner: str) -> tuple[Response, bool]:
        call_id = req.params.get(route.call or "", "")
        what = f"worker {owner}, which holds {f'call {call_id}' if call_id else req.path},"
        flog = log.bind(call_id=call_id or None, path=req.path, route=route.pattern, owner=owner)
        found = await self.redis.hget(self.keys.addresses(), owner)
        address = found.decode() if isinstance(found, bytes) else found
        if address is None or not await self.alive(owner):
            return self._failed(flog, route, "gone", 410, f"{what} stopped"), False
        who = req.principal
        claims = Claims(user=who.name if who else None, roles=sorted(who.roles) if who else [],
                        agent=who.agent if who else None, via=who.via if who else "none",
                        only_agent=who.only_agent if who else None, client=req.remote, origin=self.worker_id,
                        to=owner, method=req.method, target=target_of(req), body=body_digest(req.body),
                        at=time.time(), nonce=secrets.token_hex(16))
        headers = Headers({FORWARDED.encode(): [sign(await self._key(), claims).encode()]})
        for name in PASSED_ON:
            if name in req.headers:
                headers.setRawHeaders(name.encode(), [req.headers[name].encode()])
        body = cast(IBodyProducer, FileBodyProducer(BytesIO(req.body))) if req.body else None
        d: Deferred[IResponse] = self._agent.request(req.method.encode(), f"{address}{claims.target}".encode(),
                                                     headers, body)
        timed_out = False

        def on_timeout(result: object, seconds: float) -> object:
            nonlocal timed_out
            timed_out = True        # the cancel surfaces as ResponseNeverReceived or a CancelledError
            return result

        d.addTimeout(self.timeout, reactor, onTimeoutCancel=on_timeout)
        try:
            resp = await d.asFuture(asyncio.get_running_loop())
        except (DeferredTimeout, CancelledError, net_error.ConnectError, net_error.ConnectionClosed, ResponseFailed,
                net_error.DNSLookupError) as exc:
            if timed_out:
                return self._failed(flog, route, "timeout", 504, f"{what} did not answer in {self.timeout:g} s"), False
            gone = not await self.alive(owner)
            flog.warning("forward failed", error=repr(exc))
            return self._failed(flog, route, "gone" if gone else "unreachable", 410 if gone else 502,
                                f"{what} {'stopped' if gone else 'is unreachable'}"), False
        metrics.HTTP_FORWARDED_TOTAL.labels(route=route.pattern, result="answered").inc()
        flog.info("request forwarded", method=req.method, status=resp.code)
        out: dict[str, str] = {}
        for name in PASSED_BACK:
            values = resp.headers.getRawHeaders(name.encode())
            if values:
                out[name] = values[0].decode("latin-1")
        if isinstance(resp.length, int):      # twisted's client moves it out of the headers
            out["content-length"] = str(resp.length)
        types = resp.headers.getRawHeaders(b"content-type") or [b"application/octet-stream"]
        return Response(RelayBody(resp, call_id), resp.code, types[0].decode("latin-1"), out), True

    @staticmethod
    def _failed(flog: Any, route: Route, result: str, status: int, message: str) -> Response:
        metrics.HTTP_FORWARDED_TOTAL.labels(route=route.pattern, result=result).inc()
        flog.warning("request not forwarded", result=result, status=status)
        return Response({"error": message}, status)

    # -- the owner -------------------------------------------------------------------------------

    async def verify(self, req: Request) -> Claims:
        """The claims of a forwarded request's assertion, once: AssertionRefused unless signed with the
        deployment's key, for this worker and this request, fresh and never seen before."""
        header = req.headers.get(FORWARDED, "")
        try:
            claims = read(await self._key(), header)
        except AssertionRefused:
            await self.refresh()         # the key changed (a flushed Redis): read it again once
            claims = read(await self._key(), header)
        check(claims, self.worker_id, req, time.time())
        if not await self.redis.set(self.keys.nonce(claims.nonce), "1", nx=True, px=int(ASSERTION_TTL * 1000) + 5000):
            raise AssertionRefused("assertion replayed")
        return claims
