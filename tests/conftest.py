"""Every fixture more than one test module uses: a real redis-server per test session (AOF on, unix
socket) and its flushed database, a real PostgreSQL (tests/pg.py), a worker that runs the dialer
(tests/dialer_worker.py), a headless chromium for the console's pages (tests/browser.py); and the guard that
stops a worker a failed test left running.

Tests share code only through this file and the helper modules beside it (names without `test_`):
repo.py (REPO), ports.py (every port), sipp.py (every sipp scenario), worker_proc.py, edge_proc.py,
pg.py, redis_helpers.py, routing_helpers.py, dialer_helpers.py, dialer_worker.py, alias_bomb.py,
rtp_pcap.py, browser.py, crm_stub.py. No test module imports another."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg import PgServer, pg_missing_reason

from callcenter.redis_server import EmbeddedRedis
from callcenter.redisconn import connect_sync


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
    client = connect_sync(redis_server.url, ride_out_restarts=False)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture(autouse=True, scope="module")
def no_worker_outlives_its_module() -> Iterator[None]:
    """Torn down after the module's own fixtures: stops any worker process a failed test left running."""
    yield
    from worker_proc import stop_leftovers

    stop_leftovers()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    reason = pg_missing_reason()
    if reason:
        pytest.skip(reason)
    server = PgServer().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """DSN of a running server with no CDR tables (restarted if a test stopped it)."""
    if not pg_server.running():
        pg_server.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            pg_server.reset()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return pg_server.dsn


@pytest.fixture
def dialer(tmp_path: Path, redis_url: str) -> Iterator[tuple]:
    """A worker that runs the dialer (not started yet), its IVR and campaigns directories, and a list of
    sipp processes stopped afterwards (tests/dialer_worker.py)."""
    from dialer_worker import dialer_worker

    w, ivr, campaigns = dialer_worker(tmp_path, redis_url)
    procs: list = []
    yield w, ivr, campaigns, procs
    for p in procs:
        p.stop()
    assert w.stop() == 0, w.tail()


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[object]:
    """A headless chromium (tests/browser.py) for the console's tests. It saves a last screenshot and
    fails the test if a page logged an error the test did not expect."""
    from browser import Browser, missing_reason

    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    b = Browser(request.node.name)
    try:
        yield b
        b.shot("end")
        errors = b.errors()
        assert not errors, f"the browser's console logged errors: {errors}"
    finally:
        b.close()
