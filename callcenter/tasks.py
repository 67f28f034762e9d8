"""Background tasks that are never lost: every failure is logged, every task is tracked.

One place for what the softswitch, the queue service, the dialer and the worker all need:
fire-and-forget work whose exceptions still reach the log, and periodic loops that outlive
a failing iteration (Redis restarting) and stop promptly when asked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from callcenter import logs

log = logs.get("tasks")


class TaskSet:
    """Tasks started with `spawn`; a failure is logged with the task's name and context."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Awaitable[Any], what: str, **context: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("task failed", task=what, exc_info=t.exception(), **context)

        task.add_done_callback(done)
        return task

    async def drain(self, grace: float) -> None:
        """Let running tasks finish for up to `grace` seconds, then cancel the rest."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def every(seconds: float, fn: Callable[[], Awaitable[Any]], stop: asyncio.Event, name: str) -> None:
    """Run fn every `seconds` until stop is set; a failing run is logged and the loop goes on."""
    while not stop.is_set():
        try:
            await fn()
        except Exception:  # e.g. Redis restarting: the client retries, so do we
            log.exception("periodic task failed", task=name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
