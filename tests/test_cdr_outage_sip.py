"""The production store goes down while calls are made: callers are served as usual, the records wait
in the Redis stream, and when PostgreSQL is back every call and leg is in the store exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sipp
from pg import PgServer
from worker_proc import new_worker

from callcenter.cdr.writer import open_store

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

NUMBERS = [f"090500000{i}" for i in range(4)]


def test_postgres_down_during_calls_loses_and_duplicates_nothing(tmp_path: Path, redis_url: str, pg_dsn: str,
                                                                 pg_server: PgServer) -> None:
    w = new_worker(tmp_path, redis_url)
    w.write_config()
    w.config.write_text(w.config.read_text().replace(w.store_url, pg_dsn))
    w.start()
    try:
        first = sipp.caller(w.target, [("pause", 1500), ("hangup",)], number=NUMBERS[0])
        assert first.wait(30) == 0, first.errors()
        pg_server.stop("immediate")
        # While the store is down: calls go on as usual.
        callers = [sipp.caller(w.target, [("pause", 1500 + 300 * i), ("hangup",)], number=n)
                   for i, n in enumerate(NUMBERS[1:])]
        assert sipp.wait_all(*callers) == [0] * len(callers), "\n".join(c.errors() for c in callers)
        time.sleep(2.0)
        pg_server.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                store = open_store(pg_dsn)
                calls = [c for c in store.calls() if c.caller in NUMBERS and c.end]
                legs = [leg for c in calls for leg in store.legs(c.call_id)]
                store.close()
            except Exception:  # noqa: BLE001 - still starting
                calls, legs = [], []
            if len(calls) >= len(NUMBERS) and len(legs) >= len(NUMBERS):
                break
            assert time.monotonic() < deadline, f"{len(calls)} calls, {len(legs)} legs:\n{w.tail()}"
            time.sleep(0.5)
        time.sleep(2.0)   # anything re-delivered would show up as a second row by now
        store = open_store(pg_dsn)
        calls = [c for c in store.calls() if c.caller in NUMBERS]
        store.close()
        assert sorted(c.caller for c in calls) == sorted(NUMBERS)   # each exactly once
        assert all(c.end and c.answer and c.ivr_path.startswith("hotline.welcome") for c in calls)
        assert w.proc is not None and w.proc.poll() is None
    finally:
        if not pg_server.running():
            pg_server.start()
        w.stop()
