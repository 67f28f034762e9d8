"""Several worker processes race on one Redis: no agent ever holds two calls, no call is lost or
duplicated. Plus a hypothesis property check of the service order."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routing_helpers import AUDIT, Clock, call, make, serve

from callcenter.redisconn import connect, connect_sync
from callcenter.routing import rules as R
from callcenter.routing.router import QueuedCall, Router

N_AGENTS = 20
PROCS = 4
CALLS_PER_PROC = 1000


def _rules() -> str:
    lines = ["defaults: {ring_timeout: 5, wrapup: 0, miss_limit: 100}", "queues:",
             "  sales: {skills: {sales: 1}, strategy: longest_idle}",
             "  support: {skills: {support: 1}, strategy: fewest_calls}", "agents:"]
    for i in range(N_AGENTS):
        lvl = 10 if i < 4 else 1 + i % 10
        queues = "{sales: 1, support: 2}" if i % 3 else "{sales: 3}"
        lines.append(f"  ag{i}: {{uri: 'sip:ag{i}@127.0.0.1:5070', skills: {{sales: {lvl}, support: {lvl}}}, "
                     f"queues: {queues}}}")
    return "\n".join(lines) + "\n"


async def _worker(url: str, wid: str, seed: int) -> None:
    rng = random.Random(seed)
    rt = Router(connect(url), wid)
    check = rt.redis
    mine = [f"{wid}-c{i}" for i in range(CALLS_PER_PROC)]
    resolved: set[str] = set()
    done = asyncio.Event()

    async def produce() -> None:
        for cid in mine:
            queue = "support" if rng.random() < 0.3 else "sales"
            await rt.enqueue(QueuedCall(cid, queue, {queue: rng.randint(1, 5)}, rng.randint(0, 3), "", {}))
            if rng.random() < 0.03:
                await rt.abandon(cid)
                await check.rpush("test:abandoned", cid)
                resolved.add(cid)
            if rng.random() < 0.2:
                await asyncio.sleep(0)

    async def consume() -> None:
        last_tick = 0.0
        while len(resolved) < len(mine):
            for o in await rt.next_offers(timeout=0.05):
                if rng.random() < 0.1:
                    await rt.offer_failed(o, rng.choice(["no_answer", "busy", "rejected"]))
                    continue
                # an offer for a call abandoned meanwhile is stale: answering it must fail
                if await rt.offer_answered(o):
                    if not await check.set(f"test:hold:{o.agent_id}", o.call_id, nx=True):
                        await check.rpush("test:violations", f"{o.agent_id} holds two calls")
                    await check.rpush("test:answered", o.call_id)
                    resolved.add(o.call_id)
                    await check.delete(f"test:hold:{o.agent_id}")
                    await rt.call_finished(o.call_id, o.agent_id, rng.random() * 5)
                if rng.random() < 0.03:   # an agent takes a short break through the agent API
                    a = f"ag{rng.randrange(N_AGENTS)}"
                    await rt.agent_pause(a, "break")
                    await rt.agent_ready(a)
            if time.monotonic() - last_tick > 0.2:
                last_tick = time.monotonic()
                await rt.heartbeat()
                await rt.tick()
        done.set()

    await rt.heartbeat()
    await asyncio.wait_for(asyncio.gather(produce(), consume()), timeout=120)


def _proc(url: str, wid: str, seed: int) -> None:
    asyncio.run(_worker(url, wid, seed))


def test_processes_racing_never_double_book(redis_url):
    async def setup():
        rt = Router(connect(redis_url), "setup")
        await rt.apply_rules(R.loads(_rules()))
        for i in range(N_AGENTS):
            await rt.agent_login(f"ag{i}")
    asyncio.run(setup())
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_proc, args=(redis_url, f"w{i}", i)) for i in range(PROCS)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    r = connect_sync(redis_url)
    audits, broken = 0, []
    while any(p.is_alive() for p in procs) and time.monotonic() - t0 < 180:
        broken += r.eval(AUDIT, 0)
        audits += 1
        time.sleep(0.02)
    for p in procs:
        p.join(10)
    elapsed = time.monotonic() - t0
    assert [p.exitcode for p in procs] == [0] * PROCS
    assert broken == [], broken[:10]
    assert audits > 10
    assert r.lrange("test:violations", 0, -1) == []
    answered = r.lrange("test:answered", 0, -1)
    abandoned = r.lrange("test:abandoned", 0, -1)
    assert len(answered) == len(set(answered)), "a call was connected twice"
    everyone = {f"w{p}-c{i}" for p in range(PROCS) for i in range(CALLS_PER_PROC)}
    assert set(answered) | set(abandoned) == everyone
    assert not set(answered) & set(abandoned)
    # Redis is consistent and idle again
    assert r.zcard("cc:rt:q:sales:waiting") == 0 and r.zcard("cc:rt:q:support:waiting") == 0
    assert r.zcard("cc:rt:leases") == 0
    assert list(r.scan_iter("cc:rt:c:*")) == []
    assert all(not r.hget(f"cc:rt:a:ag{i}", "offer") for i in range(N_AGENTS)), "an offer outlived its call"
    states = {r.hget(f"cc:rt:a:ag{i}", "state") for i in range(N_AGENTS)}
    assert states == {"available"}
    assert r.zcard("cc:rt:q:sales:free") == N_AGENTS
    print(f"{len(everyone)} calls, {len(answered)} answered by {PROCS} processes in {elapsed:.1f}s, "
          f"{audits} invariant audits")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=12))
def test_service_order_is_priority_then_arrival(redis_url, priorities):
    connect_sync(redis_url).flushall()

    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock)
        for i, prio in enumerate(priorities):
            clock.advance(0.5)
            await call(rt, f"c{i}", prio=prio)
        await rt.agent_login("a1")
        return [(await serve(rt)).call_id for _ in priorities]

    served = asyncio.run(main())
    expected = [f"c{i}" for i, _ in sorted(enumerate(priorities), key=lambda x: (-x[1], x[0]))]
    assert served == expected
