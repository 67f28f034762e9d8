"""The outbound dialer running inside a real worker process, against real SIP (sipp customers and
agent phones) and a real Redis: answered, busy, unanswered, declined and machine-answered calls
are checked against the contacts' outcomes, retries and the CDR store; a DNC number and a number
outside its calling window are never dialed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sipp
from dialer_worker import (
    KEYS,
    campaign_yaml,
    cli,
    contact,
    free_ports,
    machine_customer,
    outbound_rows,
    stats,
    upload,
    wait_until,
    window_now,
)
from recording_helpers import channels
from worker_proc import demo_rules

from callcenter.cdr.writer import open_store
from callcenter.redisconn import connect_sync
from callcenter.routing.keys import Keys as RoutingKeys

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]


def test_outcomes_retries_compliance_and_cdrs(dialer, redis_url: str) -> None:
    w, ivr, campaigns, procs = dialer
    ports = dict(zip(("ans", "busy", "noans", "rej", "mach"), free_ports(5), strict=True))
    (campaigns / "ans.yaml").write_text(campaign_yaml("t_ans", ports["ans"]))
    (campaigns / "busy.yaml").write_text(campaign_yaml("t_busy", ports["busy"], retry="{busy: 1s}"))
    (campaigns / "noans.yaml").write_text(campaign_yaml("t_noans", ports["noans"], max_attempts=1, ring="2s"))
    (campaigns / "rej.yaml").write_text(campaign_yaml("t_rej", ports["rej"]))
    (campaigns / "mach.yaml").write_text(campaign_yaml("t_mach", ports["mach"], amd=True))
    _, far_tz = window_now()
    upload(w.tmp, "t_ans", ["0901000001,An,100000,", "0901000002,Binh,200000,",
                            "0901000003,Dnc,300000,", f"0901000004,Far,400000,{far_tz}"], redis_url, campaigns)
    upload(w.tmp, "t_busy", ["0902000001,Busy,1,"], redis_url, campaigns)
    upload(w.tmp, "t_noans", ["0903000001,Ring,1,"], redis_url, campaigns)
    upload(w.tmp, "t_rej", ["0904000001,Decline,1,"], redis_url, campaigns)
    upload(w.tmp, "t_mach", ["0905000001,Machine,1,"], redis_url, campaigns)
    c = connect_sync(redis_url)
    c.sadd(KEYS.dnc_global(), "+84901000003")   # the customer asked not to be called, after the upload
    c.close()

    procs += [sipp.agent(ports["ans"], "answer", ring_ms=300, calls=2),
              sipp.agent(ports["busy"], "486", ring_ms=100, calls=2),
              sipp.agent(ports["noans"], "noanswer", calls=1),
              sipp.agent(ports["rej"], "603", ring_ms=100, calls=1),
              machine_customer(ports["mach"])]
    w.write_config(trunk=f"127.0.0.1:{ports['ans']}", campaigns=campaigns, ivr_scripts=ivr)
    w.start()
    for cid in ("t_ans", "t_busy", "t_noans", "t_rej", "t_mach"):
        cli("start", cid, redis_url=redis_url, campaigns=campaigns)

    # 2 answered + 2 busy + 1 no answer + 1 declined + 1 machine; never the DNC or out-of-window numbers.
    wait_until(lambda: contact(redis_url, "t_busy", "+84902000001").get("state") == "exhausted", 30,
               "busy retried then exhausted", w)
    rows = outbound_rows(w, 7)
    sipp.wait_all(*procs, timeout=20)
    assert [p.proc.returncode for p in procs] == [0] * 5, [p.errors() for p in procs]

    by_called: dict[str, list] = {}
    for r in rows:
        assert r.campaign and r.end, r
        by_called.setdefault(r.called, []).append(r)
    assert "0901000003" not in by_called and "0901000004" not in by_called
    assert sorted(r.outcome for r in by_called["0901000001"] + by_called["0901000002"]) == ["ivr_only"] * 2
    assert all(r.disposition == "completed" and "notice" in r.ivr_path
               for r in by_called["0901000001"] + by_called["0901000002"])
    assert [r.outcome for r in by_called["0902000001"]] == ["busy", "busy"]
    assert [r.outcome for r in by_called["0903000001"]] == ["no_answer"]
    assert [r.outcome for r in by_called["0904000001"]] == ["rejected"]
    wait_until(lambda: any(r.outcome == "voicemail" for r in outbound_rows(w, 7)
                           if r.called == "0905000001"), 10, "machine CDR", w)

    store = open_store(w.store_url)
    try:
        for r in rows:   # one SIP leg per attempt, its result matching the call's outcome
            legs = store.legs(r.call_id)
            assert [lg.kind for lg in legs] == ["outbound"] and r.called in legs[0].uri, (r, legs)
            assert legs[0].result == ("answered" if r.answer else r.outcome), (r, legs)
    finally:
        store.close()

    assert contact(redis_url, "t_ans", "+84901000001")["state"] == "done"
    assert contact(redis_url, "t_ans", "+84901000001")["disposition"] == "completed"
    ct = contact(redis_url, "t_busy", "+84902000001")
    assert ct["attempts"] == "2"
    assert contact(redis_url, "t_noans", "+84903000001")["state"] == "exhausted"
    rej = contact(redis_url, "t_rej", "+84904000001")
    assert rej["state"] == "pending" and float(rej["next_at"]) > time.time() + 3000   # 4 h default retry
    mach = contact(redis_url, "t_mach", "+84905000001")
    assert mach["state"] == "pending" and mach["last_outcome"] == "answered_machine", mach
    # Both are reached once the two answered calls free their lines (max_concurrent 2).
    wait_until(lambda: contact(redis_url, "t_ans", "+84901000003").get("state") == "dnc", 5, "DNC check", w)
    dnc = contact(redis_url, "t_ans", "+84901000003")
    far = contact(redis_url, "t_ans", "+84901000004")
    assert dnc["state"] == "dnc" and dnc.get("attempts", "0") == "0", dnc
    assert far.get("attempts", "0") == "0" and far["state"] == "pending", far
    st = stats(redis_url, "t_ans")
    assert int(st.get("blocked:dnc", 0)) >= 1 and int(st.get("blocked:outside_window", 0)) >= 1, st


def test_progressive_call_reaches_a_logged_in_agent(dialer, redis_url: str) -> None:
    """Progressive dialing: one free agent -> one call; the answered customer is queued at once,
    the agent's phone rings and answers, the CDR names campaign, agent and outcome and links the call's
    recording (the worker config's recording.campaigns policy)."""
    w, ivr, campaigns, procs = dialer
    customer_port, agent_port = free_ports(2)
    rules = demo_rules(agent_port)
    rules = rules.replace("ring_timeout: 15", "ring_timeout: 4").replace("wrapup: 10", "wrapup: 0")
    (w.tmp / "rules.yaml").write_text(rules)
    (campaigns / "sales.yaml").write_text(campaign_yaml("t_sales", customer_port, ctype="telesales",
                                                        mode="progressive", queue="sales", max_attempts=1))
    upload(w.tmp, "t_sales", ["0906000001,Khach,0,", "0906000002,Khach2,0,"], redis_url, campaigns)
    procs += [sipp.agent(customer_port, "answer", ring_ms=300, calls=2),
              sipp.agent(agent_port, "answer_bye", ring_ms=300, talk_ms=1500, calls=2)]
    w.write_config(rules=w.tmp / "rules.yaml", campaigns=campaigns, ivr_scripts=ivr,
                   extra="recording: {campaigns: {t_sales: {policy: always}}}")
    w.start()
    w.login("1001")
    cli("start", "t_sales", redis_url=redis_url, campaigns=campaigns)

    rows = outbound_rows(w, 2, timeout=30)
    sipp.wait_all(*procs, timeout=20)
    assert [p.proc.returncode for p in procs] == [0, 0], [p.errors() for p in procs]
    rows.sort(key=lambda r: r.start)
    for r in rows:
        assert (r.campaign, r.queue, r.agent_id, r.outcome) == ("t_sales", "sales", "1001", "answered"), r
        assert r.hangup_side == "agent" and r.talk_seconds and r.talk_seconds > 1.0, r
        assert r.wait_seconds is not None and r.wait_seconds < 2.0, r     # within the 2 s grace
        ct = contact(redis_url, "t_sales", f"+84{r.called[1:]}")
        assert ct["state"] == "answered" and ct["last_outcome"] == "answered_human", ct
    # One agent: progressive dials the second contact only once the agent is free again.
    assert rows[1].start >= rows[0].end - 0.5, rows
    wait_until(lambda: all(r.recording for r in outbound_rows(w, 2)), 20, "both calls' recordings", w)
    assert all(len(channels(Path(r.recording))[0]) >= 8000 for r in outbound_rows(w, 2))   # 1 s and more


def test_ivr_events_become_dispositions() -> None:
    from callcenter.cdr.dispositions import disposition_from_events

    now = 1_000_000.0
    assert disposition_from_events([], now) is None
    assert disposition_from_events([("survey", {"answers": {}})], now) is None
    ptp = disposition_from_events([("promise_to_pay", {"date": "20122026", "amount": "1250000"})], now)
    assert ptp == {"disposition": "promise_to_pay", "ivr_event": "promise_to_pay", "amount": "1250000",
                   "date": "20122026"}
    # "do not call me" outranks whatever the flow said before it.
    assert disposition_from_events([("interested", {}), ("dnc", {"scope": "global"})], now)["disposition"] == "dnc"
    cb = disposition_from_events([("callback_requested", {})], now)
    assert cb["disposition"] == "callback" and cb["at"] > now
    assert disposition_from_events([("no_response", {})], now)["disposition"] == "no_contact"


def test_answered_call_without_an_agent_is_abandoned_within_grace(dialer, redis_url: str) -> None:
    """The only agent logs out while the customer's phone rings: the answered call cannot reach an
    agent within the 2 s grace, so it is dropped, counted in the abandonment ledger and retried."""

    w, ivr, campaigns, procs = dialer
    customer_port, agent_port = free_ports(2)
    rules = demo_rules(agent_port)
    (w.tmp / "rules.yaml").write_text(rules)
    (campaigns / "sales.yaml").write_text(campaign_yaml("t_drop", customer_port, ctype="telesales",
                                                        mode="progressive", queue="sales", ring="6s",
                                                        retry="{abandoned: 1h}"))
    upload(w.tmp, "t_drop", ["0907000001,Khach,0,"], redis_url, campaigns)
    procs.append(sipp.agent(customer_port, "answer", ring_ms=2500, calls=1))
    w.write_config(rules=w.tmp / "rules.yaml", campaigns=campaigns, ivr_scripts=ivr)
    w.start()
    w.login("1001")
    cli("start", "t_drop", redis_url=redis_url, campaigns=campaigns)
    wait_until(lambda: stats(redis_url, "t_drop").get("dials") == "1", 10, "the dial", w)

    w.logout("1001")
    rows = outbound_rows(w, 1)
    sipp.wait_all(*procs, timeout=15)
    r = rows[0]
    assert (r.campaign, r.outcome, r.agent_id, r.hangup_side) == ("t_drop", "abandoned", None, "system"), r
    assert r.end - r.answer < 3.5, r          # dropped right after the grace, not left in queue music
    ct = contact(redis_url, "t_drop", "+84907000001")
    assert ct["state"] == "pending" and ct["last_outcome"] == "abandoned", ct
    assert float(ct["next_at"]) > time.time() + 3000, ct
    ledger = connect_sync(redis_url)
    try:
        counts = ledger.hgetall(KEYS.ledger("t_drop"))
    finally:
        ledger.close()
    assert sum(int(v) for k, v in counts.items() if k.endswith(":abandoned")) == 1, counts
    # Nothing of the dropped call stays in the ACD.
    check = connect_sync(redis_url)
    try:
        assert check.zcard(RoutingKeys("cc:").waiting("sales")) == 0
    finally:
        check.close()
