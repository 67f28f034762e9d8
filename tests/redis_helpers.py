"""Run one async body against a test's Redis from a plain (sync) test function."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from callcenter.redisconn import connect

T = TypeVar("T")


def run_with_redis(redis_url: str, body: Callable[[Any], Awaitable[T]]) -> T:
    """``body(client)`` on a fresh asyncio client (the package's: str replies) that is closed afterwards."""
    async def go() -> T:
        r = connect(redis_url)
        try:
            return await body(r)
        finally:
            await r.aclose()
    return asyncio.run(go())
