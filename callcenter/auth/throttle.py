"""Login throttling: after ``limit`` failures in ``window`` seconds, per user name and per source
address, logins from there answer 429 with Retry-After until the window ends.

Both counters matter: per user stops guessing one account from many addresses, per address stops
one source spraying many accounts. A success clears the user's counter, not the address's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callcenter import metrics
from callcenter.auth.keys import AuthKeys

_SCRIPT = (Path(__file__).parent / "lua" / "throttle.lua").read_text()


class Throttle:
    def __init__(self, redis: Any, keys: AuthKeys, limit: int = 5, window: int = 300) -> None:
        self.redis = redis
        self.keys = keys
        self.limit = limit
        self.window = window
        self._count = redis.register_script(_SCRIPT)

    def _keys(self, user: str, address: str) -> list[str]:
        return [self.keys.fail_user(user[:64]), self.keys.fail_address(address)]

    async def retry_after(self, user: str, address: str) -> int:
        """Seconds until a login for ``user`` from ``address`` is accepted again (0: now)."""
        wait = 0
        for key in self._keys(user, address):
            n = await self.redis.get(key)
            if n is not None and int(n) >= self.limit:
                wait = max(wait, int(await self.redis.ttl(key)), 1)
        if wait:
            metrics.AUTH_LOGINS_TOTAL.labels(result="throttled").inc()
        return wait

    async def failed(self, user: str, address: str) -> None:
        metrics.AUTH_LOGINS_TOTAL.labels(result="failed").inc()
        await self._count(keys=self._keys(user, address), args=[self.window])

    async def succeeded(self, user: str) -> None:
        metrics.AUTH_LOGINS_TOTAL.labels(result="ok").inc()
        await self.redis.delete(self.keys.fail_user(user))
