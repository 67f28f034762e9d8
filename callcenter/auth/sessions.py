"""Browser sessions: an opaque random id in an HttpOnly cookie, the state in Redis.

Redis holds the session under the SHA-256 of its id (a dump of Redis does not hold usable cookies).
A session ends after ``idle`` seconds without a request (the key's TTL, renewed on use) and at the
latest ``absolute`` seconds after login, whatever the activity.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from callcenter.auth.keys import AuthKeys

COOKIE = "cc_session"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SessionStore:
    def __init__(self, redis: Any, keys: AuthKeys, idle: float = 1800.0, absolute: float = 43200.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.keys = keys
        self.idle = idle
        self.absolute = absolute
        self.clock = clock

    async def create(self, user: str) -> str:
        sid = secrets.token_urlsafe(32)
        d = digest(sid)
        now = self.clock()
        async with self.redis.pipeline(transaction=True) as p:
            p.hset(self.keys.session(d), mapping={"user": user, "created": repr(now), "seen": repr(now)})
            p.expire(self.keys.session(d), max(1, int(self.idle)))
            p.sadd(self.keys.user_sessions(user), d)
            await p.execute()
        await self._prune(user)
        return sid

    async def _prune(self, user: str) -> None:
        """Drop digests of sessions that expired from the user's set (it would grow otherwise)."""
        for d in await self.redis.smembers(self.keys.user_sessions(user)):
            if not await self.redis.exists(self.keys.session(d)):
                await self.redis.srem(self.keys.user_sessions(user), d)

    async def user(self, sid: str) -> str | None:
        """The session's user name, renewing its idle time; None when unknown or expired."""
        if not sid or len(sid) > 128:
            return None
        key = self.keys.session(digest(sid))
        raw = await self.redis.hgetall(key)
        if not raw:
            return None
        d: dict[str, str] = raw
        now = self.clock()
        created = float(d.get("created") or 0)
        if now - created >= self.absolute or now - float(d.get("seen") or 0) >= self.idle:
            await self.end(sid)
            return None
        async with self.redis.pipeline(transaction=True) as p:
            p.hset(key, "seen", repr(now))
            # never past the absolute end: the key goes away on its own then
            p.expire(key, max(1, int(min(self.idle, created + self.absolute - now) + 1)))
            await p.execute()
        return d.get("user")

    async def end(self, sid: str) -> None:
        d = digest(sid)
        raw = await self.redis.hget(self.keys.session(d), "user")
        async with self.redis.pipeline(transaction=True) as p:
            p.delete(self.keys.session(d))
            if raw:
                p.srem(self.keys.user_sessions(raw), d)
            await p.execute()
