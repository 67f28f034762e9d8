"""A worker's life: SIGTERM drains (no new calls, live calls finish), SIGKILL is survived by the others."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import sipp
from worker_proc import new_worker

from callcenter.cdr.writer import open_store
from callcenter.redisconn import connect_sync

pytestmark = [pytest.mark.sip, pytest.mark.timeout(150)]


def test_sigterm_stops_taking_calls_and_lets_live_calls_finish(tmp_path: Path, redis_url: str) -> None:
    w = new_worker(tmp_path, redis_url)
    w.write_config()
    w.config.write_text(w.config.read_text().replace("drain_seconds: 5", "drain_seconds: 20"))
    w.start()
    # A caller in the IVR for ~8 s more.
    live = sipp.caller(w.target, [("pause", 9000), ("hangup",)], number="0902000001")
    deadline = time.monotonic() + 15
    while not any(e.get("event") == "incoming call" for e in w.logs()):
        assert time.monotonic() < deadline, w.tail()
        time.sleep(0.1)
    assert w.proc is not None
    w.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # A new caller while draining is turned away with 503 Service Unavailable.
    late = sipp.caller(w.target, [], number="0902000002", expect_code=503)
    assert late.wait(30) == 0, late.errors()
    assert w.proc.poll() is None, "the worker must wait for the live call"
    assert live.wait(30) == 0, live.errors()     # the live call ran to its own end
    assert w.proc.wait(20) == 0, w.tail()
    log = w.logs()
    assert any(e.get("event") == "draining" and e.get("live_calls") == 1 for e in log)
    assert any(e.get("event") == "worker stopped" for e in log)


def test_caller_keeps_waiting_through_a_redis_restart(tmp_path: Path) -> None:
    """Redis (AOF) restarts while a caller waits in queue: the caller keeps its place, the worker
    reconnects by itself, and an agent who logs in afterwards gets the call; the CDR is written."""
    from callcenter.redis_server import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis").start()
    w = new_worker(tmp_path, server.url)
    rules = (Path(__file__).resolve().parent.parent / "routing_rules.yaml").read_text()
    (tmp_path / "rules.yaml").write_text(rules.replace("sip:1001@127.0.0.1:5070", f"sip:1001@127.0.0.1:{w.agents_port}"))
    w.write_config(rules=tmp_path / "rules.yaml")
    w.start()
    try:
        phone = sipp.agent(w.agents_port, "answer")
        steps = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "1"), ("pause", 20000), ("hangup",)]
        caller = sipp.caller(w.target, steps, number="0902000003")
        deadline = time.monotonic() + 20
        while not any(e.get("event") == "incoming call" for e in w.logs()):
            assert time.monotonic() < deadline, w.tail()
            time.sleep(0.1)
        time.sleep(7.5)           # the caller is in the sales queue now, nobody logged in
        server.stop()
        time.sleep(1.0)
        server.start()
        w.login("1001")
        assert sipp.wait_all(caller, phone, timeout=60) == [0, 0], caller.errors() + phone.errors()
        cdr = next(c for c in w.calls(1, timeout=30) if c.caller == "0902000003")
        assert cdr.agent_id == "1001" and cdr.outcome == "answered" and cdr.queue == "sales"
    finally:
        w.stop()
        server.stop()


def _first_waiting(client: Any, waiting: str, w: Any) -> str:
    """The call id at the head of the waiting set, once a caller is there (within 20 s)."""
    deadline = time.monotonic() + 20
    while not client.zcard(waiting):
        assert time.monotonic() < deadline, w.tail()
        time.sleep(0.2)
    return client.zrange(waiting, 0, 0)[0]


def test_sigkilled_worker_callers_are_closed_out_by_another_worker(tmp_path: Path, redis_url: str) -> None:
    """w1 dies with a caller waiting in queue: w2 reaps it within the bound and the caller's CDR row is
    closed out (worker_crash) instead of staying a phantom in the queue."""

    from callcenter.routing.keys import Keys

    w1 = new_worker(tmp_path, redis_url, "w1")
    w2 = new_worker(tmp_path, redis_url, "w2")
    for w in (w1, w2):
        w.write_config()
        w.start()
    try:
        steps = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "2"), ("pause", 30000), ("hangup",)]
        caller = sipp.caller(w1.target, steps, number="0902000004", timeout_s=40)
        client = connect_sync(redis_url)
        waiting = Keys("cc:").waiting("support")
        call_id = _first_waiting(client, waiting, w1)
        killed = time.monotonic()
        w1.stop(signal.SIGKILL)

        def row_of() -> Any:
            store = open_store(w2.store_url)
            try:
                return store.get_call(call_id)
            finally:
                store.close()

        # w2 reaps the dead worker and writes the close-out within the bound...
        deadline = time.monotonic() + 15
        row = row_of()
        while row is None or row.hangup_cause != "worker_crash":
            assert time.monotonic() < deadline, w2.tail()
            time.sleep(0.3)
            row = row_of()
        assert time.monotonic() - killed < 12
        # ...and the record w1 had started is not lost: entries w1's CDR writer had read but not committed
        # are claimed by w2's writer once idle (claim_idle 30 s), and merge into the same row.
        deadline = time.monotonic() + 60
        while row.caller != "0902000004":
            assert time.monotonic() < deadline, w2.tail()
            time.sleep(0.5)
            row = row_of()
        assert row.end is not None and row.outcome == "failed" and row.hangup_cause == "worker_crash"
        assert client.zcard(waiting) == 0
        caller.stop()
    finally:
        w1.stop(signal.SIGKILL)
        w2.stop()


def test_worker_restarted_under_its_id_closes_out_what_its_crashed_run_left(tmp_path: Path, redis_url: str) -> None:
    """systemd restarts a SIGKILLed worker under the same id: the new run waits out the dead run's claim,
    then closes the caller it had queued out (worker_crash) instead of offering a phantom to agents."""

    from callcenter.routing.keys import Keys

    w1 = new_worker(tmp_path, redis_url, "w1")
    w1.write_config()
    w1.start()
    try:
        steps = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "2"), ("pause", 30000), ("hangup",)]
        caller = sipp.caller(w1.target, steps, number="0902000005", timeout_s=40)
        client = connect_sync(redis_url)
        waiting = Keys("cc:").waiting("support")
        call_id = _first_waiting(client, waiting, w1)
        w1.stop(signal.SIGKILL)
        caller.stop()
        restarted = time.monotonic()
        w1.start()                                   # same config, same worker id
        assert time.monotonic() - restarted < 15
        assert client.zcard(waiting) == 0            # closed out before the new run took calls
        assert call_id in [f["call_id"] for _, f in client.xrange("cc:rt:closed_calls")]
        deadline = time.monotonic() + 20
        store = open_store(w1.store_url)
        try:
            row = store.get_call(call_id)
            while row is None or row.hangup_cause != "worker_crash":
                assert time.monotonic() < deadline, w1.tail()
                time.sleep(0.3)
                row = store.get_call(call_id)
        finally:
            store.close()
        assert '"closed out calls of this worker id\'s previous run"' in w1.log.read_text()
    finally:
        w1.stop()

