"""Compliance at dial time against a real Redis: DNC, calling windows, shared caps, leases, ledger."""

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

from dialer_helpers import PREFIX, TUE_10, VN, camp, setup, stats
from redis_helpers import run_with_redis

from callcenter.dialer.compliance import Compliance
from callcenter.dialer.control import CampaignControl
from callcenter.dialer.engine import DialerEngine, DialPlanner, dial_count
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.ledger import AbandonLedger, LedgerView, LedgerWindow, throttle
from callcenter.dialer.upload import import_list, parse_csv
from callcenter.redisconn import connect


def test_dnc_numbers_are_never_dialed(redis_url):
    c = camp("ts1")

    async def body(r):
        keys = await setup(r, c, "phone\n0912000001\n0912000002\n0912000003\n")
        comp = Compliance(r, keys)
        await comp.add_dnc("+84912000002")                   # global, after upload
        await comp.add_dnc("+84912000003", "ts1")            # campaign list
        planner = DialPlanner(r, keys, c, "d1")
        first = await planner.next_dials(TUE_10, 10, stats(c))
        again = await planner.next_dials(TUE_10 + 86400 * 3, 10, stats(c))
        st = await CampaignControl(r, keys).stats(c, TUE_10)
        state2 = await r.hget(keys.contact("ts1", "+84912000002"), "state")
        return first, again, st, state2

    first, again, st, state2 = run_with_redis(redis_url, body)
    assert [d.e164 for d in first] == ["+84912000001"]
    assert again == []
    assert st["blocked"] == {"dnc": 2} and state2 == "dnc"


def test_dnc_added_between_attempts_blocks_the_retry(redis_url):
    c = camp("ts1")

    async def body(r):
        keys = await setup(r, c, "phone\n0912000001\n")
        engine = DialerEngine(r, None, {"ts1": c}, None, None, PREFIX, dialer_id="d1", clock=lambda: TUE_10)
        [req] = await engine.planners["ts1"].next_dials(TUE_10, 1, stats(c))
        await engine.handle_result(req, "busy", TUE_10)
        await Compliance(r, keys).add_dnc("+84912000001")
        return await engine.planners["ts1"].next_dials(TUE_10 + 3600, 1, stats(c))

    assert run_with_redis(redis_url, body) == []


def test_out_of_window_numbers_wait_for_the_window(redis_url):
    c = camp("ts1", extra="compliance: {weekdays: [mon, tue, wed, thu, fri]}\n")
    evening = dt.datetime(2026, 11, 27, 17, 30, tzinfo=VN).timestamp()   # Friday 17:30

    async def body(r):
        keys = await setup(r, c, "phone,timezone\n0912000001,\n+12125550100,America/New_York\n",
                           now=TUE_10 - 7200)
        planner = DialPlanner(r, keys, c, "d1")
        at_10 = await planner.next_dials(TUE_10, 5, stats(c))       # 22:00 in New York: blocked
        due = dict(await r.zrange(keys.due("ts1"), 0, -1, withscores=True))
        await r.hset(keys.contact("ts1", "+84912000001"), "state", "pending")
        await r.zadd(keys.due("ts1"), {"+84912000001": TUE_10})
        late = await planner.next_dials(evening, 5, stats(c))   # Friday 17:30 VN, 05:30 NY
        return at_10, due, late

    at_10, due, late = run_with_redis(redis_url, body)
    assert late == []
    assert [d.e164 for d in at_10] == ["+84912000001"]
    ny_open = dt.datetime(2026, 11, 24, 8, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()
    assert due["+12125550100"] == ny_open


def test_weekend_and_holiday_wait_until_monday(redis_url):
    c = camp("ts1", extra="compliance: {weekdays: [mon, tue, wed, thu, fri], holidays: [2026-11-30]}\n")
    sat = dt.datetime(2026, 11, 28, 10, 0, tzinfo=VN).timestamp()

    async def body(r):
        keys = await setup(r, c, "phone\n0912000001\n", now=sat - 60)
        got = await DialPlanner(r, keys, c, "d1").next_dials(sat, 5, stats(c))
        return got, await r.zscore(keys.due("ts1"), "+84912000001")

    got, score = run_with_redis(redis_url, body)
    assert got == [] and score == dt.datetime(2026, 12, 1, 8, 0, tzinfo=VN).timestamp()   # Tuesday 08:00


def test_cap_is_shared_across_campaigns_and_atomic_across_dialers(redis_url):
    a, b = camp("ts1"), camp("ts2")            # both vn_advertising: 1 call per number per 24 h
    numbers = "".join(f"09120000{i:02d}\n" for i in range(40))

    async def body(r):
        keys = await setup(r, a, "phone\n" + numbers)
        await setup(r, b, "phone\n" + numbers)
        clients = [connect(redis_url) for _ in range(4)]
        planners = [DialPlanner(clients[0], keys, a, "d1"), DialPlanner(clients[1], keys, a, "d2"),
                    DialPlanner(clients[2], keys, b, "d3"), DialPlanner(clients[3], keys, b, "d4")]
        results = await asyncio.gather(*(p.next_dials(TUE_10, 100, stats(p.campaign)) for p in planners))
        next_day = await planners[2].next_dials(TUE_10 + 86400 + 2, 100, stats(b))
        for cl in clients:
            await cl.aclose()
        blocked = (await CampaignControl(r, keys).stats(b, TUE_10))["blocked"]
        return results, next_day, blocked

    results, next_day, blocked = run_with_redis(redis_url, body)
    dialed = [d.e164 for res in results for d in res]
    assert len(dialed) == 40 and len(set(dialed)) == 40    # every number once, across 2 campaigns x 2 dialers
    n_ts2 = len(results[2]) + len(results[3])
    assert set(blocked) <= {"number_cap"} and blocked.get("number_cap", 0) >= 40 - n_ts2
    # numbers capped for ts2 come back after the 24 h window
    assert len(next_day) == 40 - len(results[2]) - len(results[3])


def test_debt_reminder_cap_five_per_day(redis_url):
    c = camp("debt", "debt_reminder", "agentless",
             "attempts: {max_attempts: 20, retry: {busy: 15m}}\ncompliance: {preset: vn_debt_collection}\n")
    start = dt.datetime(2026, 11, 24, 7, 0, tzinfo=VN).timestamp()

    async def body(r):
        await setup(r, c, "phone\n0912000001\n", now=start - 60)
        engine = DialerEngine(r, None, {"debt": c}, None, None, PREFIX, dialer_id="d1")
        got, t = [], start
        for _ in range(8):
            reqs = await engine.planners["debt"].next_dials(t, 0, stats(c))
            got.append(bool(reqs))
            for req in reqs:
                await engine.handle_result(req, "busy", t)
            t += 15 * 60 + 1
        return got

    assert run_with_redis(redis_url, body) == [True] * 5 + [False] * 3


def test_pause_and_stop_take_effect_for_the_next_dial(redis_url):
    c = camp("ts1")

    async def body(r):
        keys = await setup(r, c, "phone\n0912000001\n0912000002\n")
        ctl = CampaignControl(r, keys)
        await ctl.set_state("ts1", "paused")
        planner = DialPlanner(r, keys, c, "d1")
        paused = await planner.next_dials(TUE_10, 5, stats(c))
        direct = await Compliance(r, keys).reserve(c, "+84912000001", TUE_10, "d1")   # even bypassing the loop
        await ctl.set_state("ts1", "running")
        running = await planner.next_dials(TUE_10, 1, stats(c))
        await ctl.set_state("ts1", "stopped")
        stopped = await planner.reserve(TUE_10, 5)
        return paused, direct, running, stopped

    paused, direct, running, stopped = run_with_redis(redis_url, body)
    assert paused == [] and direct.reason == "campaign_paused"
    assert len(running) == 1 and stopped == []


def test_dead_dialer_leases_resolve_as_unknown_never_twice(redis_url):
    c = camp("ts1")

    async def body(r):
        keys = await setup(r, c, "phone\n0912000001\n")
        d1 = DialerEngine(r, None, {"ts1": c}, None, None, PREFIX, dialer_id="d1", clock=lambda: TUE_10)
        await d1.heartbeat()
        [req] = await d1.planners["ts1"].next_dials(TUE_10, 1, stats(c))
        now = [TUE_10 + 5]
        d2 = DialerEngine(r, None, {"ts1": c}, None, None, PREFIX, dialer_id="d2", clock=lambda: now[0])
        alive = await d2.recover_dead()                           # d1 heartbeat is fresh: untouched
        while_leased = await d2.planners["ts1"].next_dials(now[0], 1, stats(c))
        now[0] = TUE_10 + 60                                      # d1 died (no heartbeat for 60 s)
        released = await d2.recover_dead()
        ct = await r.hgetall(keys.contact("ts1", "+84912000001"))
        late = await d1.recorder.apply(c, req.e164, "busy", d1_decision(c, req), TUE_10 + 61, "d1")
        soon = await d2.planners["ts1"].next_dials(now[0] + 60, 1, stats(c))
        later = await d2.planners["ts1"].next_dials(now[0] + 1801, 1, stats(c))
        return alive, while_leased, released, ct, late, soon, later

    alive, while_leased, released, ct, late, soon, later = run_with_redis(redis_url, body)
    assert alive == 0 and while_leased == []
    assert released == 1 and ct["state"] == "pending" and ct["last_outcome"] == "unknown"
    assert ct["attempts"] == "1"                             # the unknown attempt still counts
    assert late is False                                       # the zombie's outcome is refused
    assert soon == []
    assert later == [] or later[0].attempt == 2                # vn_advertising cap (1/24h) may hold it


def d1_decision(c, req):
    from callcenter.dialer.outcomes import decide
    return decide(c, "busy", req.attempt, TUE_10 + 61)


def test_ledger_throttles_pacing_before_the_limit(redis_url):
    c = camp("ts1", mode="predictive")

    async def body(r):
        keys = DialerKeys(PREFIX)
        ledger = AbandonLedger(r, keys)
        planner = DialPlanner(r, keys, c, "d1")
        out = []
        for abandoned in (2, 3, 4):
            await r.delete(keys.ledger("ts1"))
            for i in range(110):
                await ledger.record("ts1", TUE_10 - 3600, abandoned=i < abandoned)
            out.append(await planner.target(TUE_10))
        # entries older than 30 days drop out
        await r.delete(keys.ledger("ts1"))
        await ledger.record("ts1", TUE_10 - 31 * 86400, abandoned=True)
        old = await ledger.view("ts1", TUE_10)
        return out, old

    (full, reduced, zero), old = run_with_redis(redis_url, body)
    assert full == c.pacing.target_abandon_rate           # 1.8%: below 70% of the 3% limit
    assert 0 < reduced < full                             # 2.7%: throttled before the limit
    assert zero == 0.0                                    # 3.6%: no dialing ahead at all
    assert old.month.answered == 0
    st = stats(c)
    st.pacing.resolved = 1000
    st.pacing.answer_rate = 0.2
    assert dial_count(c, 3, st, full) > 3                 # predictive dials ahead...
    assert dial_count(c, 3, st, zero) == 3                # ...throttled to progressive 1:1


def test_throttle_small_sample_and_24h_window():
    c = camp("ts1", mode="predictive")
    fresh = LedgerView(LedgerWindow(0, 0), LedgerWindow(0, 0))
    assert throttle(c, fresh) == c.pacing.target_abandon_rate
    day_bad = LedgerView(LedgerWindow(50, 2), LedgerWindow(5000, 2))
    assert throttle(c, day_bad) == 0.0
    small = LedgerView(LedgerWindow(20, 1), LedgerWindow(20, 1))
    assert throttle(c, small) == 0.0


def test_engine_run_heartbeats_and_leaves_cleanly_without_dialing_stopped_campaigns(redis_url):
    c = camp("ts1")

    async def body(r):
        keys = DialerKeys(PREFIX)
        await import_list(r, keys, c, parse_csv(b"phone\n0912000001\n"), now=TUE_10 - 60)
        # softswitch=None: a stopped campaign must never reach originate.
        engine = DialerEngine(r, None, {"ts1": c}, None, None, PREFIX, dialer_id="d9", tick=0.05,
                              free_agents=lambda q: 5, clock=lambda: TUE_10)
        stop = asyncio.Event()
        task = asyncio.ensure_future(engine.run(stop))
        await asyncio.sleep(0.3)
        beating = await r.zscore(keys.dialers(), "d9")
        stop.set()
        await asyncio.wait_for(task, 5)
        return beating, await r.zscore(keys.dialers(), "d9"), await r.zcard(keys.due("ts1"))

    beating, after, due = run_with_redis(redis_url, body)
    assert beating == TUE_10 and after is None and due == 1


def test_a_previewed_record_is_checked_again_when_the_agent_dials(redis_url):
    """Preview records wait on an agent's screen for minutes: a number that went on the DNC list, or a callee
    whose calling window closed, meanwhile is not dialed (the record is resolved instead)."""
    c = camp("pv1", mode="preview")
    closing = dt.datetime(2026, 11, 24, 16, 59, tzinfo=VN).timestamp()    # telesales window ends 17:00
    now = [TUE_10]

    async def body(r):
        keys = await setup(r, c, "phone\n0912000001\n0912000002\n0912000003\n")
        engine = DialerEngine(r, None, {"pv1": c}, None, None, PREFIX, dialer_id="d1", clock=lambda: now[0])
        first = await engine.preview_next("pv1")
        ok = await engine.preview_recheck(first)                 # nothing changed: dial it
        await Compliance(r, keys).add_dnc(first.e164)            # ...but suppose it went on the DNC list
        dnc = await engine.preview_recheck(first)
        now[0] = closing
        second = await engine.preview_next("pv1")                # previewed at 16:59
        now[0] = closing + 180                                   # dialed at 17:02
        late = await engine.preview_recheck(second)
        states = [await r.hget(keys.contact("pv1", n.e164), "state") for n in (first, second)]
        due = await r.zscore(keys.due("pv1"), second.e164)
        leases = await r.scard(keys.leases("d1"))
        return ok, dnc, late, states, due, leases

    ok, dnc, late, states, due, leases = run_with_redis(redis_url, body)
    assert ok is None and dnc == "dnc" and late == "outside_window"
    assert states == ["dnc", "pending"]
    assert due == dt.datetime(2026, 11, 25, 8, 0, tzinfo=VN).timestamp()    # next morning's window
    assert leases == 0                                                        # both leases released
