"""Dial modes against a real worker, real SIP (sipp) and Redis: the abandoned call's identification
message, the machine's message or hang-up, preview dialing over HTTP, predictive pacing with
three agents, and a dialer killed mid-campaign that resumes without dialing anyone twice."""

from __future__ import annotations

import re
import signal
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
)
from recording_helpers import channels, tone_blocks
from worker_proc import WorkerProc, demo_rules

from callcenter.redisconn import connect_sync

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]

SALES = ("1001", "1002", "1004")     # the sales queue's members in routing_rules.yaml
A_HZ, B_HZ = 600.0, 1000.0           # a preview call's customer and agent, in its recording




def rules_for(w: WorkerProc, agent_port: int) -> Path:
    """Every agent's phone on one sipp process (it takes parallel calls), short timings."""
    text = demo_rules(agent_port)
    text = re.sub(r"ring_timeout: \d+", "ring_timeout: 4", text)
    text = re.sub(r"wrapup: \d+", "wrapup: 0", text)
    path = w.tmp / "rules.yaml"
    path.write_text(text)
    return path


def ledger(redis_url: str, cid: str) -> tuple[int, int]:
    """(answered by a person, abandoned) in the campaign's abandonment ledger."""
    c = connect_sync(redis_url)
    try:
        h = c.hgetall(KEYS.ledger(cid))
    finally:
        c.close()
    return (sum(int(v) for k, v in h.items() if k.endswith(":answered")),
            sum(int(v) for k, v in h.items() if k.endswith(":abandoned")))


def dialer_up(w: WorkerProc) -> None:
    """The HTTP API answers before the dialer task has built its campaigns: wait for it."""
    wait_until(lambda: w.http("GET", "/campaigns/t_pv/preview")[0] != 503, 10, "the dialer", w)


def customer_phones(port: int, answer_re: str, calls: int, ring_ms: int = 500) -> sipp.Sipp:
    """Customers' phones: numbers matching ``answer_re`` answer after ``ring_ms`` ringing and wait
    for BYE; the others ring as long and are busy. Every INVITE is in the message trace."""
    return sipp.agent(port, "answer", ring_ms=ring_ms, calls=calls, timeout_s=100, answer_only=answer_re,
                      trace=True, timeout_error=False)


def invites(p: sipp.Sipp) -> dict[str, int]:
    """Called number -> INVITEs the customer phones received (from sipp's message trace)."""
    out: dict[str, int] = {}
    for f in p.workdir.glob("*_messages.log"):
        for m in re.finditer(r"^INVITE sip:(\d+)@", f.read_text(errors="replace"), re.M):
            out[m.group(1)] = out.get(m.group(1), 0) + 1
    return out


def test_abandoned_call_hears_the_identification_message(dialer, redis_url: str) -> None:
    """No agent within 2 s: the customer hears the campaign's identification message (3.8 s) before
    the dialer hangs up; the CDR says abandoned and the ledger counts it."""

    w, ivr, campaigns, procs = dialer
    customer_port, agent_port = free_ports(2)
    yaml = campaign_yaml("t_ident", customer_port, ctype="telesales", mode="progressive", queue="sales",
                         ring="6s", retry="{abandoned: 1h}")
    (campaigns / "ident.yaml").write_text(yaml + "abandon_prompt: debt/calling_from\n")
    upload(w.tmp, "t_ident", ["0911000001,Khach,0,"], redis_url, campaigns)
    procs.append(sipp.agent(customer_port, "answer", ring_ms=2500, calls=1))
    w.write_config(rules=rules_for(w, agent_port), campaigns=campaigns, ivr_scripts=ivr)
    w.start()
    w.login("1001")
    cli("start", "t_ident", redis_url=redis_url, campaigns=campaigns)
    wait_until(lambda: stats(redis_url, "t_ident").get("dials") == "1", 10, "the dial", w)

    w.logout("1001")
    r = outbound_rows(w, 1)[0]
    sipp.wait_all(*procs, timeout=15)
    assert procs[0].proc.returncode == 0, procs[0].errors()
    assert (r.outcome, r.agent_id, r.hangup_side) == ("abandoned", None, "system"), r
    # grace (<= 2 s) + the 3.77 s message, then BYE: the customer stayed on to hear it.
    assert 3.7 <= r.end - r.answer < 7.5, r
    assert ledger(redis_url, "t_ident") == (1, 1)
    assert contact(redis_url, "t_ident", "+84911000001")["last_outcome"] == "abandoned"


def test_machine_gets_a_message_or_a_hangup_per_campaign(dialer, redis_url: str) -> None:
    w, ivr, campaigns, procs = dialer
    msg_port, hang_port = free_ports(2)
    (campaigns / "msg.yaml").write_text(campaign_yaml("t_vm_msg", msg_port, amd=True).replace(
        "  enabled: true\n", "  enabled: true\n  machine_prompt: debt/thanks_goodbye\n"))
    (campaigns / "hang.yaml").write_text(campaign_yaml("t_vm_hang", hang_port, amd=True))
    upload(w.tmp, "t_vm_msg", ["0912000001,Hop thu,1,"], redis_url, campaigns)
    upload(w.tmp, "t_vm_hang", ["0913000001,Hop thu,1,"], redis_url, campaigns)
    procs += [machine_customer(msg_port), machine_customer(hang_port)]
    w.write_config(campaigns=campaigns, ivr_scripts=ivr)
    w.start()
    cli("start", "t_vm_msg", redis_url=redis_url, campaigns=campaigns)
    cli("start", "t_vm_hang", redis_url=redis_url, campaigns=campaigns)
    rows = {r.called: r for r in outbound_rows(w, 2, timeout=30)}
    sipp.wait_all(*procs, timeout=20)
    assert [p.proc.returncode for p in procs] == [0, 0], [p.errors() for p in procs]
    msg, hang = rows["0912000001"], rows["0913000001"]
    assert msg.outcome == hang.outcome == "voicemail", rows
    # AMD listens 2.5 s; then the 2.7 s message, or BYE at once.
    assert msg.end - msg.answer >= 2.5 + 2.4, msg
    assert hang.end - hang.answer < 2.5 + 1.5, hang
    for cid, e164 in (("t_vm_msg", "+84912000001"), ("t_vm_hang", "+84913000001")):
        assert contact(redis_url, cid, e164)["last_outcome"] == "answered_machine"
    assert ledger(redis_url, "t_vm_msg") == (0, 0)     # a machine is not a person: not in the abandon rate


def test_preview_agent_takes_skips_and_dials_a_record(dialer, redis_url: str) -> None:
    w, ivr, campaigns, procs = dialer
    customer_port, agent_port = free_ports(2)
    # the campaign file's own recording policy records its calls (the worker's default records none)
    (campaigns / "pv.yaml").write_text(campaign_yaml("t_pv", customer_port, ctype="telesales", mode="preview",
                                                     queue="sales", max_attempts=1, ring="5s")
                                       + "recording: {policy: always}\n")
    (campaigns / "prog.yaml").write_text(campaign_yaml("t_notpv", customer_port, ctype="telesales",
                                                       mode="progressive", queue="sales"))
    upload(w.tmp, "t_pv", ["0914000001,An,0,", "0914000002,Binh,0,"], redis_url, campaigns)
    procs += [sipp.agent(customer_port, "answer", ring_ms=300, calls=1, codecs="8", steps=[("tone", A_HZ, 6000)]),
              sipp.agent(agent_port, "answer_bye", ring_ms=300, talk_ms=3000, calls=1, codecs="8",
                         steps=[("tone", B_HZ, 6000)])]
    w.write_config(rules=rules_for(w, agent_port), campaigns=campaigns, ivr_scripts=ivr)
    w.start()
    w.login("1001", "1002")
    dialer_up(w)

    assert w.http("GET", "/campaigns/t_pv/preview?agent=1001") == (200, {"campaign": "t_pv", "agent": "1001",
                                                                          "number": None})  # not started
    cli("start", "t_pv", redis_url=redis_url, campaigns=campaigns)
    st, a = w.http("GET", "/campaigns/t_pv/preview?agent=1001")
    assert st == 200 and a["data"]["name"] in ("An", "Binh") and a["attempt"] == 1, a
    assert w.http("GET", "/campaigns/t_pv/preview?agent=1001")[1]["number"] == a["number"]   # held
    st, b = w.http("GET", "/campaigns/t_pv/preview?agent=1002")
    assert st == 200 and b["number"] not in (None, a["number"]), b                           # leased
    assert w.http("GET", "/campaigns/t_notpv/preview?agent=1001")[0] == 409
    assert w.http("GET", "/campaigns/t_pv/preview")[0] == 400
    # Only the agent holding a record may dial or skip it.
    assert w.http("POST", f"/campaigns/t_pv/preview/{a['national']}/dial?agent=1002")[0] == 404
    assert w.http("POST", f"/campaigns/t_pv/preview/{b['national']}/skip?agent=1002")[0] == 200
    skipped = contact(redis_url, "t_pv", b["number"])
    assert skipped["state"] != "leased" and skipped["last_outcome"] == "skipped", skipped

    cli("pause", "t_pv", redis_url=redis_url, campaigns=campaigns)      # pause: no new dial, at once
    assert w.http("POST", f"/campaigns/t_pv/preview/{a['national']}/dial?agent=1001")[0] == 409
    cli("start", "t_pv", redis_url=redis_url, campaigns=campaigns)
    st, body = w.http("POST", f"/campaigns/t_pv/preview/{a['national']}/dial?agent=1001")
    assert st == 202, body
    r = outbound_rows(w, 1, timeout=20)[0]
    sipp.wait_all(*procs, timeout=20)
    assert [p.proc.returncode for p in procs] == [0, 0], [p.errors() for p in procs]
    assert r.called == a["national"] and (r.campaign, r.agent_id, r.outcome) == ("t_pv", "1001", "answered"), r
    assert r.hangup_side == "agent" and r.talk_seconds and r.talk_seconds > 1.0, r
    assert contact(redis_url, "t_pv", a["number"])["last_outcome"] == "answered_human"
    # recorded: the customer's tone on the left, the agent's on the right (linked once the WAV is stored)
    wait_until(lambda: outbound_rows(w, 1)[0].recording, 20, "the preview call's recording", w)
    left, right = channels(Path(outbound_rows(w, 1)[0].recording))
    assert sum(tone_blocks(left, A_HZ)) >= 15 and sum(tone_blocks(right, B_HZ)) >= 15
    assert not any(tone_blocks(left, B_HZ, 0.2)) and not any(tone_blocks(right, A_HZ, 0.2))
    assert w.http("POST", f"/campaigns/t_pv/preview/{a['national']}/dial?agent=1001")[0] == 404
    # The agent is back in the ACD after the preview call.
    wait_until(lambda: connect_sync(redis_url).hget(
        "cc:rt:a:1001", "state") == "available", 5, "agent 1001 available again", w)


def test_predictive_three_agents_never_two_calls_each(dialer, redis_url: str) -> None:
    w, ivr, campaigns, procs = dialer
    customer_port, agent_port = free_ports(2)
    yaml = campaign_yaml("t_pred", customer_port, ctype="telesales", mode="predictive", queue="sales",
                         max_attempts=1, ring="4s").replace("  max_concurrent: 2\n",
                                                            "  initial_answer_rate: 0.5\n  expected_aht: 2s\n"
                                                            "  wrapup: 0s\n")
    (campaigns / "pred.yaml").write_text(yaml)
    numbers = [f"09150000{i:02d}" for i in range(10)]
    upload(w.tmp, "t_pred", [f"{n},K{i},0," for i, n in enumerate(numbers)], redis_url, campaigns)
    # Odd last digit answers, even is busy: 5 people to connect, 5 busy lines.
    customers = customer_phones(customer_port, r"09150000[0-9][13579]", calls=10)
    agents = sipp.agent(agent_port, "answer_bye", ring_ms=200, talk_ms=2000, calls=5)
    procs += [customers, agents]
    w.write_config(rules=rules_for(w, agent_port), campaigns=campaigns, ivr_scripts=ivr)
    w.start()
    w.login(*SALES)
    cli("start", "t_pred", redis_url=redis_url, campaigns=campaigns)

    rows = outbound_rows(w, 10, timeout=60)
    assert sorted(r.called for r in rows) == numbers
    assert all(v == 1 for v in invites(customers).values()), invites(customers)
    busy = [r for r in rows if r.outcome == "busy"]
    person = [r for r in rows if r.answer]
    assert sorted(r.called[-1] for r in busy) == ["0", "2", "4", "6", "8"], rows
    connected = [r for r in person if r.outcome == "answered"]
    abandoned = [r for r in person if r.outcome == "abandoned"]
    assert len(connected) + len(abandoned) == 5, person
    assert ledger(redis_url, "t_pred") == (5, len(abandoned))
    for r in connected:
        assert r.agent_id in SALES and r.wait_seconds is not None and r.wait_seconds < 2.0, r
    for agent in SALES:    # one call at a time per agent
        mine = sorted((r.agent_answer or r.answer, r.end) for r in connected if r.agent_id == agent)
        for (_s1, e1), (s2, _e2) in zip(mine, mine[1:], strict=False):
            assert s2 >= e1 - 0.3, (agent, mine)
    assert len({r.agent_id for r in connected}) >= 2, connected      # the load was spread


def test_dialer_killed_mid_campaign_resumes_without_double_dialing(dialer, redis_url: str) -> None:
    w, ivr, campaigns, procs = dialer
    (customer_port,) = free_ports(1)
    (campaigns / "rs.yaml").write_text(campaign_yaml("t_rs", customer_port, max_attempts=3, ring="6s",
                                                     retry="{busy: 1s, no_answer: 1s}"))
    numbers = [f"09160000{i:02d}" for i in range(5)]
    upload(w.tmp, "t_rs", [f"{n},K{i},0," for i, n in enumerate(numbers)], redis_url, campaigns)
    customers = customer_phones(customer_port, "[0-9]+", calls=20, ring_ms=3000)
    procs.append(customers)
    w.write_config(campaigns=campaigns, ivr_scripts=ivr)
    w.start()
    cli("start", "t_rs", redis_url=redis_url, campaigns=campaigns)
    # Two calls ringing (max_concurrent 2, 3 s of ringing): kill the worker under them.
    wait_until(lambda: stats(redis_url, "t_rs").get("dials") == "2", 15, "two dials", w)
    time.sleep(0.5)
    assert w.stop(signal.SIGKILL) == -signal.SIGKILL
    c = connect_sync(redis_url)
    try:
        leased = [n for n in numbers if c.hget(KEYS.contact("t_rs", "+84" + n[1:]), "state") == "leased"]
    finally:
        c.close()
    assert len(leased) == 2, leased

    w.log.rename(w.tmp / "first-run.log")
    w.start()
    wait_until(lambda: all(contact(redis_url, "t_rs", "+84" + n[1:]).get("state") == "done"
                           for n in numbers if n not in leased), 40, "the other contacts done", w)
    assert any(e.get("event") == "resolved leases of this dialer's previous run" and e.get("released") == 2
               for e in w.logs()), w.tail()
    for n in leased:     # the call may have happened: retried later (30 min), never dialed again now
        ct = contact(redis_url, "t_rs", "+84" + n[1:])
        assert ct["state"] == "pending" and ct["last_outcome"] == "unknown", ct
        assert float(ct["next_at"]) > time.time() + 1000 and ct["attempts"] == "1", ct
    time.sleep(1.0)
    assert invites(customers) == dict.fromkeys(numbers, 1), invites(customers)
