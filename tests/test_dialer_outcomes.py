import asyncio

import pytest
from dialer_helpers import PREFIX, TUE_10, camp, setup, stats

from callcenter.dialer.compliance import Compliance
from callcenter.dialer.engine import DialerEngine
from callcenter.dialer.outcomes import decide, decide_disposition
from callcenter.redisconn import connect


def test_retry_policy_per_outcome():
    c = camp("ts1", extra="attempts: {max_attempts: 3, retry: {busy: 15m, no_answer: 2h}}\n")
    assert decide(c, "busy", 1, 0.0).next_at == 900.0
    assert decide(c, "no_answer", 2, 0.0).next_at == 7200.0
    assert decide(c, "no_answer", 3, 0.0).state == "exhausted"
    assert decide(c, "invalid", 1, 0.0).state == "invalid"
    assert decide(c, "answered_human", 1, 0.0).state == "answered"
    assert decide(c, "answered_machine", 1, 0.0).next_at == 4 * 3600.0
    assert decide(c, "unknown", 1, 0.0).next_at == 1800.0


def test_dispositions():
    c = camp("ts1")
    assert decide_disposition(c, "sale", 0, 1).state == "done"
    d = decide_disposition(c, "promise_to_pay", 0, 1, {"amount": 1500000, "date": "2026-12-01"})
    assert d.state == "done" and d.fields["d_amount"] == 1500000
    assert decide_disposition(c, "callback", 0, 1, {"at": 500}).next_at == 500
    assert decide_disposition(c, "wrong_number", 0, 1).state == "invalid"
    assert decide_disposition(c, "dnc", 0, 1).add_dnc
    for bad, details in (("callback", {"at": -1}), ("promise_to_pay", {"amount": 1}), ("bogus", {})):
        with pytest.raises(ValueError):
            decide_disposition(c, bad, 0, 1, details)


def test_press_9_dnc_reaches_other_telesales_campaigns(redis_url):
    a, b = camp("ts1"), camp("ts2")
    debt = camp("debt", "debt_reminder", "agentless")

    async def go():
        r = connect(redis_url)
        await setup(r, a, "phone\n0912000001\n")
        await setup(r, b, "phone\n0912000001\n")
        await setup(r, debt, "phone\n0912000009\n")
        e = DialerEngine(r, None, {"ts1": a, "ts2": b, "debt": debt}, None, None, PREFIX, dialer_id="d1",
                         clock=lambda: TUE_10)
        [req] = await e.planners["ts1"].next_dials(TUE_10, 1, stats(a))
        await e.handle_result(req, "answered_human", TUE_10)
        await e.dispose("ts1", req.e164, "dnc")                  # callee pressed 9 in the telesales flow
        [dreq] = await e.planners["debt"].next_dials(TUE_10, 0, stats(debt))
        await e.handle_result(dreq, "answered_human", TUE_10)
        await e.dispose("debt", dreq.e164, "dnc")
        comp = Compliance(r, e.keys)
        res = (await comp.is_dnc("+84912000001"), await comp.is_dnc("+84912000009"),
               await comp.is_dnc("+84912000009", "debt"),
               await e.planners["ts2"].next_dials(TUE_10 + 2 * 86400, 1, stats(b)))
        await r.aclose()
        return res

    global_ts, global_debt, camp_debt, ts2 = asyncio.run(go())
    assert global_ts and not global_debt and camp_debt and ts2 == []


def test_preview_reserves_one_record_and_skip_releases_it(redis_url):
    c = camp("pv", mode="preview", extra="compliance: {preset: vn_debt_collection}\n")

    async def go():
        r = connect(redis_url)
        await setup(r, c, "phone,name\n0912000001,An\n0912000002,Bình\n")
        e = DialerEngine(r, None, {"pv": c}, None, None, PREFIX, dialer_id="d1", clock=lambda: TUE_10)
        auto = await e.step("pv", TUE_10)                 # preview never dials on its own
        first = await e.preview_next("pv")
        second = await e.preview_next("pv")
        await e.preview_skip(first)
        state = await r.hget(e.keys.contact("pv", first.e164), "state")
        await r.aclose()
        return auto, first, second, state

    auto, first, second, state = asyncio.run(go())
    assert auto == [] and first.e164 != second.e164
    assert first.variables()["name"] == "An" and first.variables()["phone_national"] == "0912000001"
    assert state == "pending"
