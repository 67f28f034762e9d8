"""Redis clients: every one the package (and its tests and benchmarks) makes comes from here, and every
one decodes replies to ``str``.

Nothing the package keeps in Redis is binary: keys, hash fields, stream entries, Lua replies are UTF-8
text (JSON where structured). So one kind of client serves every module, and no module needs to ask
whether a reply is bytes or str. A value that must ever be binary (raw audio, a pickle) gets a client of
its own, made here and named for it.

    client = connect(url)        # asyncio: the worker, the API, the CLIs
    sync = connect_sync(url)     # threads: wallboard and /metrics reads at scrape time, tools, tests

By default both ride out a Redis restart (commands retry with backoff for ~40 s, AOF keeps the state).
Tools that should say at once that Redis is not there pass ``ride_out_restarts=False``.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aredis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

# A worker's calls share one asyncio pool. Past this many connections a command *waits* for a free one
# (up to POOL_WAIT s) instead of failing at once, which is what redis-py's default pool does.
POOL_SIZE = 256
POOL_WAIT = 10.0


def retry_kwargs() -> dict[str, Any]:
    """redis-py settings under which a client rides out a Redis restart (AOF keeps the state)."""
    return {
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=40),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError],
        "health_check_interval": 10,
        "socket_connect_timeout": 2.0,
    }


def _settings(ride_out_restarts: bool, options: dict[str, Any]) -> dict[str, Any]:
    return {**(retry_kwargs() if ride_out_restarts else {}), **options, "decode_responses": True}


def connect(url: str, *, ride_out_restarts: bool = True, max_connections: int = POOL_SIZE,
            **options: Any) -> aredis.Redis:
    """An asyncio client on a blocking pool of ``max_connections``; closing the client closes the pool.
    ``options`` are redis-py connection settings (``socket_timeout=1``...)."""
    pool = aredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=POOL_WAIT,
                                                  **_settings(ride_out_restarts, options))
    return aredis.Redis.from_pool(pool)


def connect_sync(url: str, *, ride_out_restarts: bool = True, **options: Any) -> redis.Redis:
    """A synchronous client (thread-safe pool: the /metrics collector reads from Twisted's threads)."""
    return redis.Redis.from_url(url, **_settings(ride_out_restarts, options))
