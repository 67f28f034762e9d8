"""Events delivered to configured webhooks (a CRM): signed, retried, dead-lettered, each once.

    webhooks:
      crm:
        url: https://crm.example.com/hooks/callcenter
        secret_env: CRM_WEBHOOK_SECRET     # the name of an environment variable; the secret is never logged
        events: ["call.*", agent.state]    # types or "prefix.*"; default: every event
        timeout: 5s                        # per attempt
        max_attempts: 6                    # then the event goes to the dead letters
        backoff: 2s                        # first retry delay, doubled per attempt, 50-100% jitter
        max_backoff: 5m

Every worker reads the bus in one consumer group (``webhooks``): each event is handed to one worker,
which posts it to every webhook that wants it and acknowledges it when each took it or was given up on.
A worker that dies holding events leaves them pending; another claims them after ``claim_after``
(longer than any retry delay: a live deliverer touches its events while it waits), and a hook that had
already taken one is not sent it again (``EventKeys.delivered``). The receiver still sees an event twice if a
worker dies between the 2xx and that mark: the ``Idempotency-Key`` (the event id) is what makes that safe.

The request: ``POST`` the event JSON (its fields plus ``id``), with ``Idempotency-Key: <event id>``,
``X-Callcenter-Event: <type>`` and ``X-Callcenter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<body>" keyed with the secret>``; docs/EVENTS.md shows how a receiver verifies it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import json
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aredis
from redis.exceptions import RedisError, ResponseError

from callcenter import logs, metrics
from callcenter.events import keys
from callcenter.events.bus import Entries
from callcenter.events.keys import EventKeys
from callcenter.events.schema import Event, decode
from callcenter.ivr.lookup import HttpLookupError, HttpResponse, send
from callcenter.yamlsrc import Reader

log = logs.get("webhooks")

SIGNATURE = "X-Callcenter-Signature"
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TYPE_PATTERN = re.compile(r"^[a-z_]+(\.[a-z_]+)?$|^[a-z_]+\.\*$|^\*$")
DEAD_MAX = 100_000            # dead letters kept (MAXLEN ~)
DONE_TTL = 7 * 86400          # how long "hook took event" marks live (longer than any claim)
CLAIM_MARGIN = 10.0           # seconds a pending event's idle time must exceed the longest retry step by

Post = Callable[[str, dict[str, str], bytes, float], Awaitable[HttpResponse]]


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...] = ("*",)
    timeout: float = 5.0
    max_attempts: int = 6
    backoff: float = 2.0
    max_backoff: float = 300.0

    def wants(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.events)

    def delay(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1``: exponential, capped, with 50-100% jitter."""
        return min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)


KEYS = ("url", "secret_env", "events", "timeout", "max_attempts", "backoff", "max_backoff")


def parse(r: Reader, env: dict[str, str] | None = None) -> tuple[Webhook, ...]:
    """The ``webhooks`` section (a mapping of name -> settings), validated; errors name file, key, line."""
    env = dict(os.environ) if env is None else env
    hooks = []
    for name, h in r.section("webhooks").sections():
        if not NAME.match(name):
            raise h.fail(None, "a webhook's name is 1-64 letters, digits or _.-")
        h.refuse_unknown(KEYS)
        url = h.text("url", required=True) or ""
        if not re.match(r"^https?://[^/\s?#]+(/\S*)?$", url):
            raise h.fail("url", "must be an http:// or https:// URL")
        var = h.text("secret_env", required=True) or ""
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", var):
            raise h.fail("secret_env", "must name an environment variable (the secret itself never goes in a file)")
        secret = env.get(var, "")
        if len(secret) < 16:
            raise h.fail("secret_env", f"environment variable {var} must hold the secret (16 characters or more)")
        events = h.items("events", ["*"])
        for i, p in enumerate(events):
            if not isinstance(p, str) or not TYPE_PATTERN.match(p):
                raise h.fail(f"events[{i}]", "expected an event type (call.ended) or a family (call.*)")
        hooks.append(Webhook(name, url, secret, tuple(str(p) for p in events),
                             timeout=h.duration("timeout", 5.0, 0.1, 60),
                             max_attempts=h.integer("max_attempts", 6, 1, 50),
                             backoff=h.duration("backoff", 2.0, 0.01, 3600),
                             max_backoff=h.duration("max_backoff", 300.0, 0.01, 86400)))
    return tuple(hooks)


def sign(secret: str, body: bytes, ts: int) -> str:
    """The signature header's value: ``t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>." + body)>``."""
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify(secret: str, body: bytes, header: str, now: float, tolerance: float = 300.0) -> bool:
    """What a receiver does (docs/EVENTS.md): the signature matches and is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts.get("t", ""))
    except ValueError:
        return False
    expected = sign(secret, body, ts).partition(",v1=")[2]
    return abs(now - ts) <= tolerance and hmac.compare_digest(expected, parts.get("v1", ""))


async def _post(url: str, headers: dict[str, str], body: bytes, timeout: float) -> HttpResponse:
    return await send("POST", url, headers, body, timeout)


@dataclass
class Deliverer:
    """This worker's share of webhook delivery: reads the bus in the consumer group, posts, retries."""

    redis: aredis.Redis
    prefix: str
    hooks: tuple[Webhook, ...]
    consumer: str                     # this worker's id: its name in the consumer group
    concurrency: int = 32             # events in delivery at once
    post: Post = _post
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.stream = EventKeys(self.prefix).stream()
        self.slots = asyncio.Semaphore(self.concurrency)
        # A pending event is taken from a silent worker only after it was left untouched longer than a live
        # worker ever leaves one (an attempt, then a retry delay: it touches the entry before each delay), with
        # CLAIM_MARGIN for a stalled loop. Claiming from a live worker would send the event twice (the
        # Idempotency-Key covers that); never claiming from a dead one would lose it.
        self.claim_after = max(((h.max_backoff + h.timeout) * 2 + CLAIM_MARGIN for h in self.hooks), default=60.0)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, keys.WEBHOOK_GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop``; events in flight then stay pending for the next start (or another worker)."""
        next_claim, grouped = 0.0, False
        while not stop.is_set():
            try:
                if not grouped:
                    await self.ensure_group()
                    grouped = True
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + min(30.0, self.claim_after / 4)
                    await self._reclaim()
                reply = cast(list[tuple[str, Entries]], await self.redis.xreadgroup(
                    keys.WEBHOOK_GROUP, self.consumer, {self.stream: ">"}, count=50, block=1000))
            except RedisError as exc:      # the group may be gone too (a FLUSHALL): made again
                grouped = False
                log.warning("webhook stream read failed", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            for _, entries in reply or []:
                for eid, fields in entries:
                    await self._spawn(eid, fields)
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _reclaim(self) -> None:
        """Events a dead worker held (idle past claim_after) become this worker's."""
        start = "0-0"
        while True:
            res = cast(tuple[str, Entries], await self.redis.xautoclaim(
                self.stream, keys.WEBHOOK_GROUP, self.consumer, min_idle_time=int(self.claim_after * 1000),
                start_id=start, count=50))
            start, entries = res[0], res[1]
            for eid, fields in entries:
                if fields is not None:     # None: trimmed from the stream meanwhile
                    await self._spawn(eid, fields)
            if start == "0-0" or not entries:
                return

    async def _spawn(self, eid: str, fields: dict[str, str]) -> None:
        await self.slots.acquire()
        task = asyncio.ensure_future(self._handle(eid, fields))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, eid: str, fields: dict[str, str]) -> None:
        try:
            ev = decode(fields)
            if ev is not None:
                await asyncio.gather(*(self.deliver(h, eid, ev) for h in self.hooks if h.wants(ev["type"])))
            await self.redis.xack(self.stream, keys.WEBHOOK_GROUP, eid)
        except RedisError as exc:   # left pending: delivered again after claim_after (the done marks hold)
            log.warning("webhook event left pending", event_id=eid, error=str(exc))
        except Exception:
            log.exception("webhook event handling failed", event_id=eid)
        finally:
            self.slots.release()

    async def deliver(self, hook: Webhook, eid: str, ev: Event) -> bool:
        """Post one event to one hook until it takes it (True) or max_attempts fail (dead letter, False)."""
        done = EventKeys(self.prefix).delivered(hook.name, eid)
        if await self.redis.exists(done):
            return True
        body = json.dumps({"id": eid, **ev}, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        error = ""
        for attempt in range(1, hook.max_attempts + 1):
            ts = int(time.time())
            headers = {"Idempotency-Key": eid, "X-Callcenter-Event": str(ev["type"]),
                       SIGNATURE: sign(hook.secret, body, ts), "User-Agent": "callcenter-webhooks"}
            try:
                resp = await self.post(hook.url, headers, body, hook.timeout)
                error = f"HTTP {resp.status}"
                ok = 200 <= resp.status < 300
            except HttpLookupError as exc:
                error, ok = str(exc), False
            if ok:
                await self.redis.set(done, "1", ex=DONE_TTL)
                metrics.WEBHOOK_DELIVERIES_TOTAL.labels(webhook=hook.name, result="delivered").inc()
                metrics.WEBHOOK_DELIVERY_SECONDS.labels(webhook=hook.name).observe(
                    max(0.0, time.time() - float(ev.get("ts") or time.time())))
                log.info("webhook delivered", webhook=hook.name, event_id=eid, event_type=ev["type"], attempt=attempt)
                return True
            metrics.WEBHOOK_DELIVERIES_TOTAL.labels(webhook=hook.name, result="failed").inc()
            log.warning("webhook attempt failed", webhook=hook.name, event_id=eid, attempt=attempt, error=error)
            if attempt < hook.max_attempts:
                await self._touch(eid)
                await asyncio.sleep(hook.delay(attempt))
        await self.redis.xadd(EventKeys(self.prefix).dead_letters(),
                              {"webhook": hook.name, "event_id": eid, "type": str(ev["type"]),
                               "attempts": str(hook.max_attempts), "error": error[:500], "at": f"{time.time():.3f}",
                               "event": body.decode()},
                              maxlen=DEAD_MAX, approximate=True)
        metrics.WEBHOOK_DELIVERIES_TOTAL.labels(webhook=hook.name, result="dead").inc()
        metrics.WEBHOOK_DEAD_LETTERS_TOTAL.labels(webhook=hook.name).inc()
        log.error("webhook gave up: dead letter", webhook=hook.name, event_id=eid, attempts=hook.max_attempts,
                  error=error)
        return False

    async def retry(self, letter_id: str) -> tuple[str, str]:
        """Take a dead letter out and deliver its event to its webhook again, in the background (dead-lettered
        anew if it fails again); its (event id, webhook). LookupError: no such letter (or another request
        took it); ValueError: its webhook is not configured here."""
        dead = EventKeys(self.prefix).dead_letters()
        rows = cast(Entries, await self.redis.xrange(dead, min=letter_id, max=letter_id))
        if not rows:
            raise LookupError(letter_id)
        letter = rows[0][1]
        hook = next((h for h in self.hooks if h.name == letter.get("webhook")), None)
        if hook is None:
            raise ValueError(f"webhook {letter.get('webhook')!r} is not configured on this worker")
        ev = json.loads(letter["event"])
        eid = str(ev.pop("id", letter["event_id"]))
        if not await self.redis.xdel(dead, letter_id):
            raise LookupError(letter_id)
        task = asyncio.ensure_future(self._redeliver(hook, eid, ev))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return eid, hook.name

    async def _redeliver(self, hook: Webhook, eid: str, ev: Event) -> None:
        try:
            await self.deliver(hook, eid, ev)
        except Exception:  # Redis away meanwhile: the letter is gone, the failure is logged
            log.exception("webhook retry of a dead letter failed", webhook=hook.name, event_id=eid)

    async def _touch(self, eid: str) -> None:
        """Still working on it: reset the entry's idle time so no other worker claims it meanwhile."""
        try:
            await self.redis.xclaim(self.stream, keys.WEBHOOK_GROUP, self.consumer, min_idle_time=0,
                                    message_ids=[eid], justid=True)
        except RedisError as exc:
            log.warning("webhook pending entry not touched", event_id=eid, error=str(exc))


async def dead_letters(redis: aredis.Redis, prefix: str, count: int = 100, before: str = "+") -> list[dict[str, Any]]:
    """The newest dead letters (newest first), for the admin API."""
    rows = cast(Entries, await redis.xrevrange(EventKeys(prefix).dead_letters(), max=before if before == "+" else f"({before}",
                                               min="-", count=count))
    out = []
    for eid, f in rows:
        entry: dict[str, Any] = {"id": eid, **{k: v for k, v in f.items() if k != "event"}}
        try:
            entry["event"] = json.loads(f.get("event", "null"))
        except ValueError:
            entry["event"] = None
        out.append(entry)
    return out
