"""Matching, strategies, priorities, escalation, leases, wrap-up, callbacks, reload — on real Redis."""

from __future__ import annotations

import asyncio

import pytest
from routing_helpers import Clock, call, make, offers, one_offer, rules_text, serve

from callcenter.redisconn import connect_sync
from callcenter.routing import rules as R
from callcenter.routing import wallboard
from callcenter.routing.router import QueueFull, RoutingError


def run(coro):
    return asyncio.run(coro)


def test_priority_then_fifo_within_priority(redis_url):
    async def main():
        rt = await make(redis_url)
        for cid, prio in [("c1", 0), ("c2", 5), ("c3", 0), ("c4", 5), ("c5", 9)]:
            rt.clock.advance(1)
            await call(rt, cid, prio=prio)
        assert [await rt.position(c) for c in ("c5", "c2", "c4", "c1", "c3")] == [1, 2, 3, 4, 5]
        await rt.agent_login("a1")
        served = []
        for _ in range(5):
            served.append((await serve(rt)).call_id)
        assert served == ["c5", "c2", "c4", "c1", "c3"]
        assert await offers(rt) == []
    run(main())


@pytest.mark.parametrize("strategy", ["longest_idle", "fewest_calls", "least_talk_time", "round_robin",
                                      "skill_weighted"])
def test_strategy_order(redis_url, strategy):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=rules_text(strategy))
        for a in ("a1", "a2", "a3"):
            clock.advance(1)
            await rt.agent_login(a)
        picks = []
        for i in range(6):
            clock.advance(1)
            await call(rt, f"c{i}")
            o = await one_offer(rt)
            picks.append(o.agent_id)
            assert await rt.offer_answered(o)
            # a1 talks longest, a3 shortest: shapes least_talk_time
            await rt.call_finished(o.call_id, o.agent_id, {"a1": 100, "a2": 50, "a3": 10}[o.agent_id])
        return picks

    picks = run(main())
    if strategy == "longest_idle":
        assert picks == ["a1", "a2", "a3", "a1", "a2", "a3"]
    elif strategy == "fewest_calls":
        assert picks == ["a1", "a2", "a3", "a1", "a2", "a3"]   # ties broken by idle time
    elif strategy == "least_talk_time":
        # all 0 at first (ties by id), then a3 until its talk time passes a2's 50 s
        assert picks == ["a1", "a2", "a3", "a3", "a3", "a3"]
    elif strategy == "round_robin":
        assert picks == ["a1", "a2", "a3", "a1", "a2", "a3"]
    elif strategy == "skill_weighted":
        assert picks == ["a3"] * 6   # sales 9 beats 7 and 5


def test_round_robin_remembers_position_not_idle_time(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=rules_text("round_robin"))
        for a in ("a1", "a2", "a3"):
            await rt.agent_login(a)
        await call(rt, "c1")
        first = await serve(rt)
        # a1 becomes free last, but round robin continues with the next member anyway
        await call(rt, "c2")
        second = await serve(rt)
        await call(rt, "c3")
        third = await serve(rt)
        await call(rt, "c4")
        fourth = await serve(rt)
        return [first.agent_id, second.agent_id, third.agent_id, fourth.agent_id]

    picks = run(main())
    assert sorted(picks[:3]) == ["a1", "a2", "a3"] and picks[3] == picks[0]


def test_ring_all_offers_everyone_first_answer_wins(redis_url):
    async def main():
        rt = await make(redis_url, text=rules_text("ring_all"))
        for a in ("a1", "a2", "a3"):
            await rt.agent_login(a)
        await call(rt, "c1")
        got = await offers(rt)
        assert sorted(o.agent_id for o in got) == ["a1", "a2", "a3"]
        assert await rt.offer_answered(got[1])
        assert not await rt.offer_answered(got[0])       # lost the race
        events = await rt.tick()
        cancelled = {e.data["agent_id"] for e in events if e.kind == "offer_cancelled"}
        assert cancelled == {got[0].agent_id, got[2].agent_id}
        states = {a["id"]: a["state"] for a in await rt.agents()}
        assert states[got[1].agent_id] == "on_call"
        assert [states[got[0].agent_id], states[got[2].agent_id]] == ["available", "available"]
    run(main())


def test_free_agent_takes_best_call_across_queues_priority_weight_wait(redis_url):
    agents = """
  a1: {uri: "sip:a1@127.0.0.1:5070", skills: {sales: 5, support: 5}, queues: {sales: 1, support: 10}}
"""
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=rules_text(agents=agents))
        await call(rt, "old_sales", "sales")
        clock.advance(5)
        await call(rt, "new_support", "support")
        clock.advance(5)
        await call(rt, "urgent_sales", "sales", prio=3)
        await rt.agent_login("a1")
        order = [(await serve(rt)).call_id for _ in range(3)]
        # priority first, then weight (support 10 > sales 1) before wait time
        assert order == ["urgent_sales", "new_support", "old_sales"]
    run(main())


def test_skill_minimum_and_escalation_relax_overflow_priority_fallback(redis_url):
    esc = """    escalation:
      - {after: 5, relax_skills: {sales: 4}}
      - {after: 10, overflow: [support]}
      - {after: 15, raise_priority: 7}
      - {after: 20, fallback: {action: transfer, target: "+84901234567"}}"""
    agents = """
  a1: {uri: "sip:a1@127.0.0.1:5070", skills: {sales: 5}, queues: {sales: 1}}
  s1: {uri: "sip:s1@127.0.0.1:5070", skills: {sales: 9, support: 5}, queues: {support: 1}}
"""
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=rules_text(escalation=esc, agents=agents))
        await rt.agent_login("a1")
        await call(rt, "c1", sales=8)             # a1 has only sales 5
        await call(rt, "c2", sales=8)
        assert await offers(rt) == []
        clock.advance(4.9)
        await rt.tick()
        assert await offers(rt) == []
        clock.advance(0.2)                        # 5.1 s: minimum relaxed to 4 -> a1 fits
        events = await rt.tick()
        assert any(e.kind == "escalated" and e.call_id == "c1" for e in events)
        o = await one_offer(rt)
        assert (o.call_id, o.agent_id) == ("c1", "a1")
        assert await rt.offer_answered(o)
        # c2 (now also relaxed) waits; at 10 s it overflows into support where s1 waits
        await rt.agent_login("s1")
        assert await offers(rt) == []             # s1 is in support only; c2 is in sales
        clock.advance(5)
        await rt.tick()
        o2 = await one_offer(rt)
        assert (o2.call_id, o2.agent_id, o2.queue) == ("c2", "s1", "support")
        await rt.offer_failed(o2, "busy")
        await rt.agent_pause("s1", "meeting")
        # raise priority at 15 s: a later high-priority caller no longer jumps ahead of c2
        clock.advance(5)
        await rt.tick()
        await call(rt, "c3", prio=5)
        assert await rt.position("c2") == 1 and await rt.position("c3") == 2
        clock.advance(5)                          # 20 s: fallback to a number, event to the owner
        events = await rt.tick()
        fb = [e for e in events if e.kind == "fallback"]
        assert [(e.call_id, e.data["action"], e.data["target"]) for e in fb] == [
            ("c2", "transfer", "+84901234567")]
        assert await rt.position("c2") is None
    run(main())


def test_max_wait_timeout_reports_fallback(redis_url):
    extra = "    max_wait: 30\n    on_timeout: {action: voicemail, target: support}\n"
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=rules_text(extra_queue=extra))
        await call(rt, "c1", "support")
        clock.advance(29)
        assert not [e for e in await rt.tick() if e.kind == "fallback"]
        clock.advance(2)
        fb = [e for e in await rt.tick() if e.kind == "fallback"]
        assert fb and fb[0].data["action"] == "voicemail" and fb[0].data["reason"] == "max_wait"
    run(main())


def test_failed_offer_returns_call_to_its_original_place(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock)
        for c in ("c1", "c2", "c3"):
            clock.advance(1)
            await call(rt, c)
        await rt.agent_login("a1")
        o = await one_offer(rt)
        assert o.call_id == "c1" and await rt.position("c2") == 1
        await rt.agent_pause("a1", "break")      # pending while ringing
        await rt.offer_failed(o, "no_answer")
        assert [await rt.position(c) for c in ("c1", "c2", "c3")] == [1, 2, 3]
        info = await rt.agent_info("a1")
        assert info["misses"] == 1 and info["state"] == "paused" and info["pause_reason"] == "break"
    run(main())


def test_lease_expiry_returns_call_and_counts_miss_auto_pause(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=rules_text(miss_limit=2))
        await rt.agent_login("a1")
        await call(rt, "c1")
        o = await one_offer(rt)
        clock.advance(o.ring_timeout + 1)
        await rt.tick()                            # still within the grace
        assert (await rt.agent_info("a1"))["state"] == "reserved"
        clock.advance(3)
        await rt.tick()                            # lease expired: miss 1, offered again
        assert not await rt.offer_answered(o)
        o2 = await one_offer(rt)
        assert (o2.call_id, o2.agent_id) == ("c1", "a1") and o2.offer_id != o.offer_id
        await rt.offer_failed(o2, "rejected")      # miss 2 in a row -> auto pause
        info = await rt.agent_info("a1")
        assert info["state"] == "paused" and info["pause_reason"] == "missed_offers"
        events = await rt.tick()
        assert any(e.kind == "agent_auto_paused" for e in events)
        assert await rt.position("c1") == 1
        await rt.agent_ready("a1")
        o3 = await one_offer(rt)
        assert await rt.offer_answered(o3)
        assert (await rt.agent_info("a1"))["misses"] == 0
    run(main())


def test_wrap_up_then_next_call(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=rules_text(wrapup=20))
        await rt.agent_login("a1")
        await call(rt, "c1")
        await call(rt, "c2")
        await serve(rt)
        assert (await rt.agent_info("a1"))["state"] == "wrap_up"
        clock.advance(19)
        await rt.tick()
        assert await offers(rt) == []
        clock.advance(2)
        await rt.tick()
        assert (await one_offer(rt)).call_id == "c2"
    run(main())


def test_pause_reasons_keep_durations_and_pending_logout(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock)
        await rt.agent_login("a1")
        await rt.agent_pause("a1", "lunch")
        clock.advance(60)
        await rt.agent_pause("a1", "training")
        clock.advance(30)
        await rt.agent_ready("a1")
        assert (await rt.agent_info("a1"))["pause_seconds"] == {"lunch": 60.0, "training": 30.0}
        await call(rt, "c1")
        o = await one_offer(rt)
        assert await rt.offer_answered(o)
        assert await rt.agent_logout("a1") == "pending"
        await rt.call_finished("c1", "a1", 5)
        assert (await rt.agent_info("a1"))["state"] == "logged_out"
        with pytest.raises(RoutingError):
            await rt.agent_ready("a1")
    run(main())


def test_callback_keeps_place_and_is_offered_agent_first(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock)
        for c in ("c1", "c2", "c3"):
            clock.advance(1)
            await call(rt, c)
        assert await rt.request_callback("c2", "0909000111")
        assert not await rt.request_callback("c3", "0909000111")   # one callback per number
        await rt.abandon("c2")                  # caller hangs up after leaving the number
        assert await rt.position("c2") == 2
        await rt.agent_login("a1")
        await serve(rt)
        o = await one_offer(rt)
        assert (o.call_id, o.kind, o.callback_number) == ("c2", "callback", "0909000111")
        assert await rt.offer_answered(o)
        await rt.call_finished("c2", "a1", 30)
        assert await rt.request_callback("c3", "0909000111")        # the number is free again
    run(main())


def test_abandon_while_ringing_frees_agent_without_miss(redis_url):
    async def main():
        rt = await make(redis_url)
        await rt.agent_login("a1")
        await call(rt, "c1")
        o = await one_offer(rt)
        await rt.abandon("c1")
        assert not await rt.offer_answered(o)
        info = await rt.agent_info("a1")
        assert info["state"] == "available" and info["misses"] == 0
        assert [e.kind for e in await rt.tick()] == ["offer_cancelled"]
    run(main())


def test_reload_rules_keeps_waiting_callers(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock)
        for c in ("c1", "c2", "c3"):
            clock.advance(1)
            await call(rt, c, prio=1 if c == "c3" else 0)
        before = [await rt.position(c) for c in ("c1", "c2", "c3")]
        agents = """
  a1: {uri: "sip:a1@127.0.0.1:5070", skills: {sales: 5}, queues: {sales: 1}}
  a9: {uri: "sip:a9@127.0.0.1:5070", skills: {sales: 3}, queues: {sales: 1}}
"""
        await rt.apply_rules(R.loads(rules_text("fewest_calls", agents=agents)))
        assert [await rt.position(c) for c in ("c1", "c2", "c3")] == before == [2, 3, 1]
        await rt.agent_login("a9")
        assert (await serve(rt)).call_id == "c3"
        # a queue with callers cannot vanish
        with pytest.raises(RoutingError, match="waiting callers"):
            await rt.apply_rules(R.loads(rules_text(agents=" {}").replace("\n  sales:\n", "\n  sales2:\n")))
        assert await rt.position("c2") == 1      # c1 went to a9 when c3 ended; nothing else moved
    run(main())


def test_estimated_wait_and_queue_full(redis_url):
    extra = "    max_length: 2\n"
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=rules_text(extra_queue=extra))
        assert await rt.estimated_wait("sales") is None         # nobody staffed
        await rt.agent_login("a1")
        await rt.agent_login("a2")
        await call(rt, "c1")
        await call(rt, "c2")
        for o in await offers(rt):
            assert await rt.offer_answered(o)
            await rt.call_finished(o.call_id, o.agent_id, 100)  # AHT ~100 s
        await rt.agent_pause("a1", "break")
        await rt.agent_pause("a2", "break")
        await rt.agent_login("a3")
        await rt.agent_pause("a3", "meeting")
        await call(rt, "c3")
        await call(rt, "c4")
        await rt.agent_ready("a3")   # takes c3; staffed = 1 (a3)
        ewt = await rt.estimated_wait("sales", "c4")
        assert ewt is not None and 90 <= ewt <= 110
        await call(rt, "s1", "support")
        await call(rt, "s2", "support")
        with pytest.raises(QueueFull) as exc:
            await call(rt, "s3", "support")
        assert exc.value.fallback.action == "voicemail"
    run(main())


def test_estimated_wait_uses_todays_aht_then_the_day_befores(redis_url):
    async def main():
        clock = Clock(1_790_000_000.0)
        rt = await make(redis_url, clock=clock, text=rules_text(wrapup=5))
        await rt.agent_login("a1")
        for cid, talk in (("c1", 60), ("c2", 120)):
            await call(rt, cid)
            o = await one_offer(rt)
            assert await rt.offer_answered(o)
            await rt.call_finished(cid, "a1", talk)
            clock.advance(6)
            await rt.tick()                         # wrap-up over
        await call(rt, "c3")
        o = await one_offer(rt)
        assert await rt.offer_answered(o)           # a1 on a call, c4 waits first in line
        await call(rt, "c4")
        assert await rt.estimated_wait("sales", "c4") == pytest.approx(95.0)   # (60+120)/2 + 5 wrap-up
        clock.advance(86400)                        # a new day: yesterday's AHT until today has calls
        assert await rt.estimated_wait("sales", "c4") == pytest.approx(95.0)
        await rt.call_finished("c3", "a1", 15)      # a1 in wrap-up: c4 still waits
        assert await rt.estimated_wait("sales", "c4") == pytest.approx(20.0)   # today's only: 15 + 5
    run(main())


def test_offer_id_names_its_agent_and_a_stale_one_is_refused(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock)
        await rt.agent_login("a1")
        await call(rt, "c1")
        o = await one_offer(rt)
        assert o.offer_id.startswith("a1#")
        await rt.offer_failed(o, "busy")
        clock.advance(1)
        await rt.tick()                            # the retry sweep offers it again (no instant ping-pong)
        o2 = await one_offer(rt)                   # same agent, same call, a new offer id
        assert o2.offer_id != o.offer_id
        assert not await rt.offer_answered(o)      # the old offer cannot connect the call
        assert await rt.offer_answered(o2)
        assert await rt.offer_answered(o2)         # a retried answer is idempotent
        info = await rt.agent_info("a1")
        assert info["state"] == "on_call" and not info.get("offer")
    run(main())


def test_empty_skill_requirements_are_pruned_and_come_back(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock)
        sync = connect_sync(redis_url)
        sigset = rt.keys.sigset("sales")
        await call(rt, "c1", sales=7)               # a requirement of its own: sales=7
        await call(rt, "c2")                        # the queue's: sales=1
        assert set(sync.smembers(sigset)) == {"sales=7", "sales=1"}
        await rt.abandon("c1")
        epoch = sync.get(rt.keys.rules_ver())
        clock.advance(61)
        await rt.tick()                             # a minute on: sales=7 has nobody, it goes
        assert set(sync.smembers(sigset)) == {"sales=1"}
        assert sync.get(rt.keys.rules_ver()) != epoch   # a new cache epoch
        await call(rt, "c3", sales=7)               # the requirement is back, and agents find it
        assert set(sync.smembers(sigset)) == {"sales=7", "sales=1"}
        await rt.agent_login("a3")                  # sales 9: takes c2 (first in line), then c3
        assert (await serve(rt)).call_id == "c2"
        assert (await serve(rt)).call_id == "c3"
    run(main())


def test_state_of_an_older_key_layout_is_taken_over_only_when_idle(redis_url):
    async def main():
        rt = await make(redis_url)
        sync = connect_sync(redis_url)
        await call(rt, "c1")
        sync.delete(rt.keys.layout())               # as an older version left it: no layout marker
        with pytest.raises(RoutingError, match="layout 1 with callers waiting in sales"):
            await rt.apply_rules(R.loads(rules_text(), "test_rules.yaml"))
        await rt.abandon("c1")                      # drained: taken over
        await rt.apply_rules(R.loads(rules_text(), "test_rules.yaml"))
        assert sync.get(rt.keys.layout()) == "2"
    run(main())


def test_wallboard_counts_today(redis_url):
    async def main():
        clock = Clock(1_790_000_000.0)
        rt = await make(redis_url, clock=clock, text=rules_text(escalation="    sl_target: 0.95"))
        await rt.agent_login("a1")
        await call(rt, "c1")
        await call(rt, "c2")
        clock.advance(5)
        o1 = await one_offer(rt)
        assert await rt.offer_answered(o1)            # waited 5 s: within the 20 s service level
        clock.advance(30)
        await rt.call_finished("c1", "a1", 30)
        await serve(rt)                               # c2 waited 35 s
        await call(rt, "c3")
        await serve(rt)
        await call(rt, "c4")                          # rings a1
        await call(rt, "c5")
        await rt.abandon("c5")
        return clock.t
    now = run(main())
    client = connect_sync(redis_url)
    sales = next(s for s in wallboard.queue_stats(client, now=now) if s.queue == "sales")
    assert (sales.offered_today, sales.answered_today, sales.abandoned_today) == (5, 3, 1)
    assert sales.answered_within_sl_today == 2 and sales.service_level == 0.5
    assert (sales.sl_target, sales.sl_seconds) == (0.95, 20.0)      # the queue's config, for the target
    support = next(s for s in wallboard.queue_stats(client, now=now) if s.queue == "support")
    assert support.sl_target == 0.8                                  # the default
    assert sales.agents_by_state["on_call"] == 0 and sales.agents_by_state["reserved"] == 1
    assert wallboard.agent_states(client)["logged_out"] == 2


def test_callback_fallback_keeps_place_and_max_wait_spares_callbacks(redis_url):
    esc = """    max_wait: 100
    escalation:
      - {after: 10, fallback: callback}"""
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=rules_text(escalation=esc))
        await call(rt, "c1")                        # both callers are 0901234567
        clock.advance(1)
        await call(rt, "c2")
        clock.advance(10)
        events = [e for e in await rt.tick() if e.kind == "fallback"]
        assert {(e.call_id, e.data["action"], e.data["kept_in_queue"]) for e in events} == {
            ("c1", "callback", True), ("c2", "callback", False)}
        assert await rt.position("c1") == 1 and await rt.position("c2") is None
        clock.advance(200)                          # max_wait does not apply to a callback
        assert [e for e in await rt.tick() if e.kind == "fallback"] == []
        assert (await rt.announce("sales")) is not None
        await rt.agent_login("a1")
        o = await one_offer(rt)
        assert (o.call_id, o.kind, o.callback_number) == ("c1", "callback", "0901234567")
    run(main())


def test_fit_deep_in_the_free_set_is_found_by_tick(redis_url):
    agents = "".join(f'\n  g{i:02d}: {{uri: "sip:g{i:02d}@127.0.0.1:5070", skills: {{sales: {9 if i == 59 else 5}}}, '
                     f'queues: {{sales: 1}}}}' for i in range(60))
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=rules_text(agents=agents + "\n"))
        for i in range(60):
            clock.advance(1)
            await rt.agent_login(f"g{i:02d}")      # g59 idles least: last in longest-idle order
        await call(rt, "c1", sales=9)
        assert await offers(rt) == []               # beyond the per-event search depth
        await rt.tick()
        o = await one_offer(rt)
        assert (o.call_id, o.agent_id) == ("c1", "g59")
    run(main())


def test_withdrawn_offer_is_no_miss(redis_url):
    async def main():
        rt = await make(redis_url, text=rules_text(miss_limit=1))
        await rt.agent_login("a1")
        await call(rt, "c1")
        o = await one_offer(rt)
        await rt.offer_failed(o, "withdrawn")
        info = await rt.agent_info("a1")
        assert info["misses"] == 0 and info["state"] == "available"
        # the same pair is not re-offered inside the failure itself (no ping-pong); tick() retries
        await rt.tick()
        o2 = await one_offer(rt)
        assert (o2.call_id, o2.agent_id) == ("c1", "a1")
        await rt.offer_failed(o2, "no_answer")                          # a real miss: paused (limit 1)
        assert (await rt.agent_info("a1"))["pause_reason"] == "missed_offers"
    run(main())


def test_an_agent_without_a_registered_phone_is_paused_not_missed(redis_url):
    """The SIP edge answered the offer 480 "Agent not registered": no miss, the agent is paused (no_phone)
    and the call is not offered to it again; ready again (a phone registered), it is offered."""
    async def main():
        rt = await make(redis_url, text=rules_text(miss_limit=3))
        await rt.agent_login("a1")
        await call(rt, "c1")
        await rt.offer_failed(await one_offer(rt), "unregistered")
        info = await rt.agent_info("a1")
        assert (info["state"], info["pause_reason"], info["misses"]) == ("paused", "no_phone", 0), info
        await rt.tick()
        assert await offers(rt) == []
        await rt.agent_ready("a1")
        o = await one_offer(rt)
        assert (o.call_id, o.agent_id) == ("c1", "a1")
    run(main())


def test_offer_answered_is_idempotent_for_client_retries(redis_url):
    async def main():
        rt = await make(redis_url)
        await rt.agent_login("a1")
        await call(rt, "c1")
        o = await one_offer(rt)
        assert await rt.offer_answered(o)
        assert await rt.offer_answered(o)        # redis-py retried after a lost reply: still True
        await rt.call_finished("c1", "a1", 3)
        assert not await rt.offer_answered(o)    # the call is over
    run(main())
