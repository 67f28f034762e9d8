"""Operational ends of the ACD: pause limits (overdue flag, auto-ready), max_offers, the parsed
queue-config cache across rule reloads and deployments, and pruning of old Function libraries."""

from __future__ import annotations

import asyncio

import pytest
from routing_helpers import Clock, call, make, offers, one_offer, rules_text

from callcenter.exceptions import ConfigError
from callcenter.redisconn import connect, connect_sync
from callcenter.routing import rules as R
from callcenter.routing import scripts, wallboard
from callcenter.routing.router import Router


def with_pauses(text: str) -> str:
    return text.replace("service_level: 20}", "service_level: 20,\n  pause_reasons: {break: {max: 900, "
                        "auto_ready: true}, lunch: 1800}}")


def test_pause_reasons_parse_and_round_trip():
    rules = R.loads(with_pauses(rules_text()), "r.yaml")
    assert rules.pause_reasons == {"break": R.PauseRule("break", 900.0, True), "lunch": R.PauseRule("lunch", 1800.0)}
    again = R.parse(rules.to_json(), R.yamlsrc.Located("<json>"))
    assert again.pause_reasons == rules.pause_reasons and again.queues == rules.queues


@pytest.mark.parametrize("text, key, message", [
    ("defaults:\n  pause_reasons: {nap: 60}\nqueues:\n  sales: {}\n", "defaults.pause_reasons.nap",
     "unknown key (known: break, lunch"),
    ("defaults:\n  pause_reasons: {break: {auto_ready: true}}\nqueues:\n  sales: {}\n",
     "defaults.pause_reasons.break.auto_ready", "needs a max"),
    ("defaults:\n  pause_reasons: {break: {max: -5}}\nqueues:\n  sales: {}\n", "defaults.pause_reasons.break.max",
     "expected a duration of 0-86400 seconds"),
    ("queues:\n  sales: {}\nagents:\n  a1: {uri: 'sip:a1@h', max_offers: 2}\n", "agents.a1.max_offers",
     "only 1 is supported"),
])
def test_invalid_pause_reasons_and_max_offers(text, key, message):
    with pytest.raises(ConfigError) as exc:
        R.loads(text, "routing_rules.yaml")
    assert exc.value.key == key and message in exc.value.message, str(exc.value)


def test_pause_auto_ready_and_overdue_flag(redis_url):
    async def main():
        clock = Clock(1_790_000_000.0)
        rt = await make(redis_url, clock=clock, text=with_pauses(rules_text()))
        for a in ("a1", "a2", "a3"):
            await rt.agent_login(a)
        await rt.agent_pause("a1", "break")
        await rt.agent_pause("a2", "lunch")
        await rt.agent_pause("a3", "break")
        await rt.agent_ready("a3")              # back early: its auto-ready is cancelled ...
        await rt.agent_pause("a3", "training")  # ... so this (unlimited) pause is not ended at 900 s
        await call(rt, "c1")                    # nobody free: waits
        clock.advance(899)
        assert await rt.tick() == []
        assert (await rt.agent_info("a1"))["state"] == "paused"
        clock.advance(2)
        events = await rt.tick()
        assert [(e.kind, e.data["agent_id"], e.data["reason"]) for e in events] == [
            ("agent_auto_ready", "a1", "break")]
        o = await one_offer(rt)                 # the auto-readied agent takes the waiting caller
        assert (o.agent_id, o.call_id) == ("a1", "c1")
        assert (await rt.agent_info("a3"))["state"] == "paused"
        a2 = await rt.agent_info("a2")
        assert a2["pause_limit_seconds"] == 1800.0 and not a2["pause_overdue"]
        clock.advance(1000)                     # lunch: 1901 s > 1800 s, no auto_ready -> flagged
        await rt.tick()
        a2 = await rt.agent_info("a2")
        assert a2["state"] == "paused" and a2["pause_overdue"]
        assert not (await rt.agent_info("a3"))["pause_overdue"]
        assert [a["pause_overdue"] for a in await rt.agents()] == [False, True, False]
        await rt.redis.aclose()
        return clock.t
    now = asyncio.run(main())
    client = connect_sync(redis_url)
    assert wallboard.overdue_agents(client, now=now) == [
        {"agent_id": "a2", "reason": "lunch", "paused_seconds": 1901.0, "limit_seconds": 1800.0}]
    sales = next(s for s in wallboard.queue_stats(client, now=now) if s.queue == "sales")
    assert sales.paused_overdue == 1 and sales.agents_by_state["paused"] == 2


def test_reload_that_adds_auto_ready_ends_running_pauses(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock)
        await rt.agent_login("a1")
        await rt.agent_pause("a1", "break")
        clock.advance(1000)
        await rt.tick()
        assert (await rt.agent_info("a1"))["state"] == "paused"
        await rt.apply_rules(R.loads(with_pauses(rules_text())))
        await rt.tick()
        assert (await rt.agent_info("a1"))["state"] == "available"
        await rt.redis.aclose()
    asyncio.run(main())


def test_queue_config_cache_follows_reloads_and_prefixes(redis_url):
    """Parsed queue configs live across calls in the Lua VM: a reload, and another deployment
    (prefix) with the same queue names on the same server, must each see their own config."""
    async def main():
        rt = await make(redis_url)
        await rt.agent_login("a1")
        await call(rt, "c1")
        assert (await one_offer(rt)).ring_timeout == 10
        await rt.abandon("c1")
        await rt.apply_rules(R.loads(rules_text().replace("ring_timeout: 10", "ring_timeout: 25")))
        await call(rt, "c2")
        assert (await one_offer(rt)).ring_timeout == 25
        other = Router(connect(redis_url), "w9", prefix="other:", clock=Clock())
        await other.apply_rules(R.loads(rules_text().replace("ring_timeout: 10", "ring_timeout: 40")))
        await other.agent_login("a1")
        await call(other, "c3")
        assert [o.ring_timeout for o in await offers(other)] == [40]
        await rt.abandon("c2")
        await call(rt, "c4")
        assert (await one_offer(rt)).ring_timeout == 25
        await rt.redis.aclose()
        await other.redis.aclose()
    asyncio.run(main())


def test_old_function_libraries_are_pruned_once_unused(redis_url):
    client = connect_sync(redis_url)
    lib = scripts.Library(client)
    lib.ensure()
    current = scripts.library()[0]
    for old in ("ccroute_0000000000", "ccroute_1111111111"):
        client.function_load(f"#!lua name={old}\nredis.register_function('{old}_x', function() return 1 end)\n")
    client.function_load("#!lua name=otherlib\nredis.register_function('otherlib_x', function() return 1 end)\n")
    client.zadd(lib.keys.libs(), {"ccroute_1111111111": 1e12})   # a straggler still heartbeating
    assert lib.prune() == ["ccroute_0000000000"]
    names = set(scripts._library_names(client.function_list()))
    assert {current, "ccroute_1111111111", "otherlib"} <= names and "ccroute_0000000000" not in names

    async def main():
        rt = Router(connect(redis_url), "w1", clock=Clock())
        await rt.heartbeat()                  # stamps this library as in use (and prunes: nothing to do)
        stamps = dict(await rt.redis.zrange(rt.keys.libs(), 0, -1, withscores=True))
        assert current in stamps
        client.function_delete(current)       # a straggler pruned ours: the next call reloads it
        await rt.apply_rules(R.loads(rules_text()))
        await rt.redis.aclose()
    asyncio.run(main())
    client.function_delete("otherlib")
    client.function_delete("ccroute_1111111111")


def test_wrap_up_after_an_agents_own_call(redis_url):
    """Router.agent_wrap_up (click-to-call's end): from the 'outbound' pause only, the call counted and
    after-call work for the given seconds or, unset, the longest wrap-up of the agent's queues; then free."""
    async def main():
        clock = Clock(1_790_000_000.0)
        rt = await make(redis_url, clock=clock, text=rules_text(wrapup=30))
        for a in ("a1", "a2", "a3"):
            await rt.agent_login(a)
            await rt.agent_pause(a, "outbound")
        await rt.agent_pause("a3", "break")                 # paused for something else meanwhile: left so
        assert await rt.agent_wrap_up("a1", 42.5) == "wrap_up"
        assert await rt.agent_wrap_up("a2", 10.0, 5.0) == "wrap_up"
        assert await rt.agent_wrap_up("a3", 10.0) == "paused"
        a1 = await rt.agent_info("a1")
        assert (a1["calls"], a1["talk_seconds"]) == (1, 42.5), a1
        clock.advance(6)
        await rt.tick()
        assert [(await rt.agent_info(a))["state"] for a in ("a1", "a2", "a3")] == ["wrap_up", "available", "paused"]
        clock.advance(25)
        await rt.tick()
        assert (await rt.agent_info("a1"))["state"] == "available"
        await call(rt, "c1")                                 # and takes calls again
        assert (await one_offer(rt)).agent_id in ("a1", "a2")
        await rt.redis.aclose()
    asyncio.run(main())
