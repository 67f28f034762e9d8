"""Writes kept in memory, in order, while Redis is unreachable, and sent again later.

A call never fails because Redis blinked: the CDR buffer and the voicemail index keep what they could not
write here, bounded (when full the oldest entry goes, counted and logged), and send it again, oldest first,
with their next write or when the worker flushes. Only a worker crash during an outage loses what waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redis.exceptions import RedisError

from callcenter import logs

T = TypeVar("T")

log = logs.get("backlog")


class Backlog(Generic[T]):
    """``what``'s unsent entries; ``send`` writes one entry (and raises when Redis is away)."""

    def __init__(self, what: str, send: Callable[[T], Awaitable[object]], limit: int,
                 dropped_note: str = "") -> None:
        self.what = what
        self.send = send
        self.limit = limit
        self.dropped_note = dropped_note      # what the operator still has of a dropped entry
        self.dropped = 0
        self._entries: deque[T] = deque()
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def keep(self, entry: T) -> None:
        """Queue ``entry`` behind the others; when full, the oldest goes."""
        if len(self._entries) >= self.limit:
            self._entries.popleft()
            self.dropped += 1
            log.error("backlog full; oldest entry dropped", backlog=self.what, dropped=self.dropped,
                      kept=self.dropped_note or None)
        self._entries.append(entry)

    async def flush(self) -> int:
        """Send what waits, oldest first, until one fails; returns how many still wait."""
        async with self._lock:
            while self._entries:
                try:
                    await self.send(self._entries[0])
                except (RedisError, OSError) as exc:
                    log.warning("redis unreachable; entries kept for later", backlog=self.what,
                                waiting=len(self._entries), error=str(exc))
                    break
                self._entries.popleft()
            return len(self._entries)

    async def write(self, entry: T) -> None:
        """Send ``entry`` now, behind whatever waits; keep it for later when Redis is away."""
        if not self._entries:
            try:
                await self.send(entry)
                return
            except (RedisError, OSError) as exc:
                log.warning("redis unreachable; entry kept for later", backlog=self.what, error=str(exc))
                self.keep(entry)
                return
        self.keep(entry)
        await self.flush()
