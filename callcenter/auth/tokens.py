"""API tokens for machines (``Authorization: Bearer cc_...``).

A token is shown once, when issued; Redis keeps only its SHA-256 (a random 256-bit secret needs no
slow hash). Each token has a short public id (the digest's first 12 hex digits) to list and revoke it.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from callcenter.auth.keys import AuthKeys
from callcenter.auth.sessions import digest
from callcenter.auth.users import UserError

PREFIX = "cc_"


class TokenStore:
    def __init__(self, redis: Any, keys: AuthKeys) -> None:
        self.redis = redis
        self.keys = keys

    async def issue(self, user: str, label: str = "") -> tuple[str, str]:
        """(token, token id) for an existing user; the token itself is not stored."""
        if not await self.redis.exists(self.keys.user(user)):
            raise UserError(f"no user {user!r}")
        token = PREFIX + secrets.token_urlsafe(32)
        d = digest(token)
        tid = d[:12]
        async with self.redis.pipeline(transaction=True) as p:
            p.hset(self.keys.token(d), mapping={"user": user, "id": tid, "label": label[:100],
                                                "created": repr(time.time())})
            p.hset(self.keys.user_tokens(user), tid, d)
            await p.execute()
        return token, tid

    async def user(self, token: str) -> str | None:
        if not token.startswith(PREFIX) or len(token) > 128:
            return None
        name: str | None = await self.redis.hget(self.keys.token(digest(token)), "user")
        return name or None

    async def list(self, user: str) -> list[dict[str, Any]]:
        out = []
        for d in (await self.redis.hgetall(self.keys.user_tokens(user))).values():
            raw = await self.redis.hgetall(self.keys.token(d))
            if raw:
                info: dict[str, str] = raw
                out.append({"id": info["id"], "label": info.get("label", ""),
                            "created": float(info.get("created") or 0)})
        return sorted(out, key=lambda t: t["created"])

    async def revoke(self, user: str, token_id: str) -> bool:
        d = await self.redis.hget(self.keys.user_tokens(user), token_id)
        if not d:
            return False
        async with self.redis.pipeline(transaction=True) as p:
            p.delete(self.keys.token(d))
            p.hdel(self.keys.user_tokens(user), token_id)
            await p.execute()
        return True
