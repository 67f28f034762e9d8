"""The package's Redis clients under Sentinel (callcenter.redisconn with a redis+sentinel:// URL), against a
real master + replica + 3 sentinels (tests/sentinel_helpers.py): commands in flight when the master is
killed are retried on the new one, asyncio and sync clients alike; a durable write is on the replica
when it returns; with the replica gone it stands, unacknowledged, and the site goes on."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import ports
import pytest
from routing_helpers import call, make
from sentinel_helpers import SentinelSite

from callcenter.redisconn import SentinelLoopPool, connect, connect_sync, durable
from callcenter.redisurl import Durability
from callcenter.routing.keys import Keys
from callcenter.routing.router import Router

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSite]:
    s = SentinelSite(Path(tmp_path_factory.mktemp("sentinel")), ports.block(5)).start()
    yield s
    s.stop()


def test_commands_in_flight_ride_out_a_killed_master(site: SentinelSite) -> None:
    """A writer keeps incrementing while the master is SIGKILLed: no command fails (each is retried on the
    master the sentinels elect), and afterwards both kinds of client write to the new master."""
    async def main() -> None:
        client = connect(site.url())
        assert isinstance(client.connection_pool, SentinelLoopPool)
        sync = connect_sync(site.url())
        try:
            await client.set("n", 0)
            old = site.master_port()
            killing = asyncio.ensure_future(asyncio.to_thread(site.kill_master, restart=False))
            done = 0
            while not killing.done() or done < 50:
                await client.incr("n")
                done += 1
                await asyncio.sleep(0.005)
            new = await killing
            assert new != old
            assert (await client.execute_command("ROLE"))[0] == "master"
            assert client.connection_pool.master_address == ("127.0.0.1", new)
            assert sync.incr("n") >= 1 and sync.execute_command("ROLE")[0] == "master"
            for node in site.stopped():
                site.restart(node)
        finally:
            await client.aclose()
            sync.close()
    asyncio.run(main())


def test_a_durable_write_is_on_the_replica_when_it_returns(site: SentinelSite) -> None:
    site.wait_replicated()

    async def main() -> None:   # WAIT returns at the replica's ack, well within wait_ms
        client = connect(site.url(Durability(1, 500)))
        try:
            for i in range(20):
                assert await durable(client, "SET", f"d{i}", str(i))
                # WAIT said a replica has it: read there, no sleep
                assert site.replica().client().get(f"d{i}") == str(i)
            replica = site.replica()
            replica.stop()
            try:   # no replica: the writes stand once the master has them (the first after wait_ms)
                for i in range(3):
                    assert await durable(client, "SET", f"alone{i}", "1")
                    assert await client.get(f"alone{i}") == "1"
            finally:
                site.restart(replica)
            again = connect(site.url(Durability(1, 500)))
            try:   # the replica back: a write waited for is on it
                assert await durable(again, "SET", "back", "1")
                assert site.replica().client().get("back") == "1"
            finally:
                await again.aclose()
        finally:
            await client.aclose()
    asyncio.run(main())


def test_an_offer_handed_out_again_is_not_rung_twice(redis_url: str) -> None:
    """A failover may give the worker again an offer whose pop the old master never replicated: the Router
    takes it once."""
    async def main() -> None:
        client = connect(redis_url)
        try:
            rt = Router(client, "w1")
            offer = json.dumps({"offer_id": "o1", "call_id": "c1", "agent_id": "1001", "queue": "sales",
                                "ring_timeout": 15})
            key = Keys("cc:").worker_offers("w1")
            await client.rpush(key, offer)
            assert [o.offer_id for o in await rt.next_offers(timeout=0)] == ["o1"]
            await client.rpush(key, offer)       # the same offer, as the new master still has it
            assert await rt.next_offers(timeout=0) == []
        finally:
            await client.aclose()
    asyncio.run(main())


def test_the_durable_routing_scripts_run_twice_change_nothing_twice(redis_url: str) -> None:
    """What a retry after a lost reply, or a durable call run again on a new master, does (scripts.RERUN):
    the second run of each durable script leaves the state and the answer as the first did."""
    async def main() -> None:
        rt = await make(redis_url)
        try:
            await call(rt, "c1")
            await call(rt, "c1")                       # enqueue again: the same owner, done
            await call(rt, "c2")
            assert [await rt.position(c) for c in ("c1", "c2")] == [1, 2]
            assert await rt.request_callback("c2", "0902000002")
            assert await rt.request_callback("c2", "0902000002")   # callback again: still 'ok'
            await rt.agent_login("a1", ready=True)
            await rt.agent_login("a1", ready=True)     # agent again: the same state
            offers = await rt.next_offers(timeout=0)
            assert [o.call_id for o in offers] == ["c1"]
            assert await rt.offer_answered(offers[0])
            assert await rt.offer_answered(offers[0])  # answered again: still connected by this offer
            await rt.call_finished("c1", "a1", 3.0)
            await rt.call_finished("c1", "a1", 3.0)    # finished again: no-op
            states = {a["id"]: a["state"] for a in await rt.agents()}
            assert states["a1"] == "reserved"          # free once, and offered the next caller, c2, once
            assert [o.call_id for o in await rt.next_offers(timeout=0)] == ["c2"]
        finally:
            await rt.redis.aclose()
    asyncio.run(main())


def _failing_over(site: SentinelSite, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a test's coroutine that fails the master over without waiting for the old one to rejoin; the site
    whole (agreed, replicated; a killed master back as a replica) before and after it."""
    site.wait_agreed()
    try:
        asyncio.run(main())
    finally:
        for node in site.stopped():
            site.restart(node)
        site.wait_agreed()


async def _until(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``check`` on the running loop (other tasks go on meanwhile) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("fault", ["sentinel_failover", "sigkill_master"])
def test_durable_appends_through_a_failover_are_all_on_the_new_master(site: SentinelSite, fault: str) -> None:
    """Tasks append (group-committed XADDs, as the CDR buffer's) while SENTINEL FAILOVER runs or the master is
    SIGKILLed: every append whose await returned is in the new master's stream afterwards. In the planned
    failover the old master takes appends for ~1 s after the replica's promotion, before the sentinels name
    the new one: their WAIT falls short, and the batch goes again to the new master once the failover under
    way has named it. In the crash, an append returns only once the replica (the next master) has it."""
    site.wait_replicated()

    async def main() -> None:
        client = connect(site.url(Durability(1, 500)))
        acked: list[str] = []
        stop = asyncio.Event()

        async def appender(n: int) -> None:
            for i in itertools.count():
                if stop.is_set():
                    return
                await client.xadd("durable-appends", {"n": str(n), "i": str(i)})
                acked.append(f"{n}:{i}")
                await asyncio.sleep(0.005)
        try:
            tasks = [asyncio.ensure_future(appender(n)) for n in range(8)]
            await _until("appends under way", lambda: len(acked) > 100)
            old = site.master_port()
            if fault == "sentinel_failover":
                new = await asyncio.to_thread(site.failover, whole=False)
            else:
                new = await asyncio.to_thread(site.kill_master, restart=False)
            assert new != old
            after = len(acked)
            await _until("appends on the new master", lambda: len(acked) > after + 100)
            stop.set()
            await asyncio.gather(*tasks)
            stored = {f"{f['n']}:{f['i']}" for _, f in site.master().client().xrange("durable-appends")}
            missing = sorted(set(acked) - stored)
            assert not missing, f"{len(missing)} of {len(acked)} acknowledged appends lost: {missing[:10]}"
        finally:
            stop.set()
            await client.aclose()
    _failing_over(site, main)


def test_both_kinds_of_client_leave_the_old_master_when_the_switch_is_announced(site: SentinelSite) -> None:
    """Neither client sends a command after SENTINEL FAILOVER, yet both name the new master as soon as the
    sentinels announce it (the old one still takes writes until Sentinel reconfigures it, up to ~10 s, and
    drops them then): the next write of each goes to the new master."""
    async def main() -> None:
        client = connect(site.url())
        sync = connect_sync(site.url())
        try:
            await client.set("announced", "async")
            assert sync.set("announced", "sync")
            new = await asyncio.to_thread(site.failover, whole=False)
            where = ("127.0.0.1", new)
            await _until("the asyncio pool follows", lambda: client.connection_pool.master_address == where)
            await _until("the sync pool follows", lambda: sync.connection_pool.master_address == where)
            await client.set("after-async", "1")
            assert sync.set("after-sync", "1")
            master = site.master().client()
            assert master.get("after-async") == "1" and master.get("after-sync") == "1"
        finally:
            sync.close()
            await client.aclose()
    _failing_over(site, main)
