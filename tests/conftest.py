"""Shared fixtures: a real redis-server per test session (AOF on, unix socket)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from callcenter.redis_server import EmbeddedRedis

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """URL of a flushed database on the session's redis-server (restarted if a test stopped it)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture(autouse=True, scope="module")
def no_worker_outlives_its_module() -> Iterator[None]:
    """Torn down after the module's own fixtures: stops any worker process a failed test left running."""
    yield
    from worker_proc import stop_leftovers

    stop_leftovers()
