"""Crash safety: a worker killed with SIGKILL while holding reservations; a Redis restart (AOF)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import time

import pytest
from routing_helpers import rules_text

from callcenter.redisconn import connect, connect_sync
from callcenter.routing import rules as R
from callcenter.routing.router import QueuedCall, Router, RoutingError

AGENTS = """
  a1: {uri: "sip:a1@127.0.0.1:5070", skills: {sales: 5}, queues: {sales: 1}}
  a2: {uri: "sip:a2@127.0.0.1:5070", skills: {sales: 7}, queues: {sales: 1}}
  a3: {uri: "sip:a3@127.0.0.1:5070", skills: {sales: 9}, queues: {sales: 1}}
"""


def _victim(url: str, ready: mp.synchronize.Event) -> None:
    async def main() -> None:
        rt = Router(connect(url), "victim", dead_after=2.0)
        await rt.heartbeat()
        for i in range(6):
            await rt.enqueue(QueuedCall(f"v{i}", "sales", {}, 0, "0901234567", {}))
        got = await rt.next_offers(timeout=1)
        assert len(got) == 3
        assert await rt.offer_answered(got[0])                 # one agent on the call
        assert await rt.request_callback("v5", "0909111222")   # a callback survives its worker
        ready.set()
        while True:                                            # the others ring; heartbeats go on
            await rt.heartbeat()
            await asyncio.sleep(0.5)
    asyncio.run(main())


def _staff_then_kill_the_victim(redis_url: str) -> tuple[Router, float]:
    """a1-a3 logged in (by "survivor", whose Router is returned), the victim worker queues callers and
    holds reservations, then is SIGKILLed; also returns when (time.monotonic())."""
    async def setup() -> Router:
        rt = Router(connect(redis_url), "survivor", dead_after=6.0)
        await rt.apply_rules(R.loads(rules_text(agents=AGENTS, wrapup=5)))
        for a in ("a1", "a2", "a3"):
            await rt.agent_login(a)
        return rt
    survivor = asyncio.run(setup())
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_victim, args=(redis_url, ready))
    proc.start()
    try:
        assert ready.wait(20)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.join(5)
    finally:
        if proc.is_alive():
            proc.kill()
    return survivor, killed_at


def test_sigkilled_worker_frees_agents_within_bound(redis_url):
    survivor, killed_at = _staff_then_kill_the_victim(redis_url)

    async def watch():
        rt = Router(connect(redis_url), "survivor", dead_after=6.0)
        closed: list[str] = []
        callback_offer = None
        while time.monotonic() - killed_at < 15:
            await rt.heartbeat()
            await rt.tick()
            closed += rt.closed_out
            for o in await rt.next_offers(timeout=0):
                callback_offer = o
            states = {a["id"]: a["state"] for a in await rt.agents()}
            if callback_offer is not None and len(closed) == 5:
                return time.monotonic() - killed_at, closed, callback_offer, states
            await asyncio.sleep(0.25)
        raise AssertionError(f"not recovered: closed={closed} states={states}")

    took, closed, cb, states = asyncio.run(watch())
    assert took < 10.0, took
    print(f"agents free and calls closed out {took:.1f} s after SIGKILL")
    assert sorted(closed) == ["v0", "v1", "v2", "v3", "v4"]
    # the freed agents took the adopted callback at once; nobody is stuck reserved for a dead worker
    assert (cb.call_id, cb.kind, cb.callback_number) == ("v5", "callback", "0909111222")
    assert list(states.values()).count("reserved") == 1 and "on_call" not in states.values()
    r = connect_sync(redis_url)
    stream = [f["call_id"] for _, f in r.xrange("cc:rt:closed_calls")]
    assert sorted(stream) == sorted(closed)
    assert r.zcard("cc:rt:q:sales:waiting") == 0
    assert r.zscore("cc:rt:workers", "victim") is None
    assert r.smembers("cc:rt:w:survivor:calls") == {"v5"}
    survivor.redis  # noqa: B018 - keep the setup client alive until here


@pytest.mark.timeout(60)
def test_redis_restart_loses_no_queue_state_and_router_reconnects(redis_server, redis_url):
    async def before():
        rt = Router(connect(redis_url), "w1")
        await rt.apply_rules(R.loads(rules_text(agents=AGENTS)))
        for i in range(5):
            await rt.enqueue(QueuedCall(f"c{i}", "sales", {}, i % 2, "0901234567", {}))
        await rt.agent_login("a1")
        return [await rt.position(f"c{i}") for i in range(5)], rt

    positions, _ = asyncio.run(before())
    redis_server.restart()   # SIGTERM: AOF flushed, then a fresh process reads it back

    async def after():
        rt = Router(connect(redis_url), "w1")
        assert [await rt.position(f"c{i}") for i in range(5)] == positions
        offers = await rt.next_offers(timeout=0)       # the offer made before the restart
        assert len(offers) == 1 and offers[0].agent_id == "a1"
        assert await rt.offer_answered(offers[0])      # scripts reload themselves (NOSCRIPT)
        await rt.enqueue(QueuedCall("c9", "sales", {}, 0, "0901234567", {}))
        assert await rt.position("c9") == 5
    asyncio.run(after())


def test_router_rides_out_a_restart_mid_flight(redis_server, redis_url):
    """The same client object keeps working across a restart (redis-py retry settings)."""
    async def main():
        rt = Router(connect(redis_url), "w1")
        await rt.apply_rules(R.loads(rules_text(agents=AGENTS)))
        await rt.enqueue(QueuedCall("c1", "sales", {}, 0, "", {}))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, redis_server.restart)
        await rt.enqueue(QueuedCall("c2", "sales", {}, 0, "", {}))
        assert await rt.position("c2") == 2
    asyncio.run(main())


def test_restart_under_the_same_worker_id_closes_out_its_previous_run(redis_url):
    """systemd restarts a crashed worker under its id within seconds: the new process must not inherit
    the dead one's callers as live ones (their media died) nor leave their agents on phantom calls."""
    _, killed_at = _staff_then_kill_the_victim(redis_url)

    async def restart():
        rt = Router(connect(redis_url), "victim", dead_after=2.0)
        closed = await rt.claim(poll=0.1)       # waits out the dead run's claim (2 s), then reaps it
        took = time.monotonic() - killed_at
        offers = await rt.next_offers(timeout=0)
        states = {a["id"]: a["state"] for a in await rt.agents()}
        return took, closed, offers, states
    took, closed, offers, states = asyncio.run(restart())
    assert took < 4.0, took
    assert sorted(closed) == ["v0", "v1", "v2", "v3", "v4"]
    # the callback is kept (adopted by the new run) and offered to a freed agent; nobody else is busy
    assert [(o.call_id, o.kind) for o in offers] == [("v5", "callback")]
    assert list(states.values()).count("reserved") == 1 and "on_call" not in states.values()
    r = connect_sync(redis_url)
    assert sorted(f["call_id"] for _, f in r.xrange("cc:rt:closed_calls")) == sorted(closed)
    assert r.smembers("cc:rt:w:victim:calls") == {"v5"}
    assert r.zscore("cc:rt:workers", "victim") is not None     # registered again


def test_a_live_process_keeps_its_worker_id_and_a_clean_stop_hands_it_over(redis_url):
    async def main():
        first = Router(connect(redis_url), "w7", dead_after=1.0)
        await first.apply_rules(R.loads(rules_text(agents=AGENTS)))
        assert await first.claim() == {}

        async def beat():
            while True:
                await first.heartbeat()
                await asyncio.sleep(0.3)
        beating = asyncio.ensure_future(beat())
        second = Router(connect(redis_url), "w7", dead_after=1.0)
        started = time.monotonic()
        with pytest.raises(RoutingError, match="in use by another live process"):
            await second.claim(poll=0.1)
        assert 1.5 < time.monotonic() - started < 4.0
        beating.cancel()
        await first.release()                   # a clean stop: the id is free at once
        started = time.monotonic()
        assert await second.claim(poll=0.1) == {}
        assert time.monotonic() - started < 0.5
    asyncio.run(main())
