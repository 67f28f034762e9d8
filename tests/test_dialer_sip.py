"""The outbound dialer running inside a real worker process, against real SIP (sipp customers and
agent phones) and a real Redis: answered, busy, unanswered, declined and machine-answered calls
are checked against the contacts' outcomes, retries and the CDR store; a DNC number and a number
outside its calling window are never dialed."""

from __future__ import annotations

import datetime as dt
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
import sipp
from worker_proc import REPO, WorkerProc, demo_rules, free_udp

from callcenter.cdr.writer import open_store
from callcenter.dialer.keys import DialerKeys
from callcenter.routing.keys import Keys as RoutingKeys

KEYS = DialerKeys("cc:")

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]

SHORT_FLOW = """name: dialer_test_notice
description: short outbound notice for tests
languages: [vi]
default_language: vi
start: notice
nodes:
  notice:
    type: event
    name: already_paid
    data: {amount: "{amount_due}"}
    prompts: [debt/paid_thanks]
    next: bye
  bye:
    type: hangup
"""


def free_ports(n: int) -> list[int]:
    """UDP ports for sipp customers, away from the ranges other suites allocate from (they run
    concurrently on this machine), checked free."""
    out: list[int] = []
    while len(out) < n:
        p = random.randrange(31000, 39000)
        if p not in out and free_udp(p):
            out.append(p)
    return out


def free_tcp(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def dialer_worker(tmp: Path, redis_url: str) -> WorkerProc:
    """A worker on ports of this suite's own range (39000-39990: SIP udp+tcp, HTTP +1, agents +2),
    checked free: other suites running at the same time allocate from 5160 up."""
    while True:
        base = random.randrange(39000, 39990, 10)
        if free_udp(base) and free_tcp(base) and free_tcp(base + 1) and free_udp(base + 2):
            return WorkerProc(tmp, redis_url, base, base + 1, base + 2, "w1")


def window_now() -> tuple[str, str]:
    """A calling window around the current Ho Chi Minh City time, and a time zone (UTC-5, 12 h
    away) where that window is closed right now."""
    h = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).hour
    return f"{max(0, h - 2):02d}:00-{min(24, h + 2):02d}:00", "Etc/GMT+5"


def campaign_yaml(cid: str, port: int, *, ctype: str = "debt_reminder", mode: str = "agentless",
                  queue: str | None = None, amd: bool = False, retry: str = "{busy: 2s}",
                  max_attempts: int = 2, ring: str = "3s") -> str:
    window, _ = window_now()
    target = "ivr_flow: dialer_test_notice" if mode == "agentless" else f"queue: {queue}"
    return f"""id: {cid}
type: {ctype}
dial_mode: {mode}
{target}
caller_id: "02873005678"
dial_uri: "sip:{{national}}@127.0.0.1:{port}"
time_zone: Asia/Ho_Chi_Minh
compliance:
  calling_hours: ["{window}"]
  max_calls_per_number: 0
attempts:
  max_attempts: {max_attempts}
  retry: {retry}
pacing:
  ring_timeout: {ring}
  max_concurrent: 2
amd:
  enabled: {str(amd).lower()}
list_columns: [name, amount_due, timezone]
"""


def cli(*args: str, redis_url: str, campaigns: Path) -> str:
    r = subprocess.run([sys.executable, "-m", "callcenter", "campaign", *args, "--redis", redis_url,
                        "--campaigns", str(campaigns)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def upload(tmp: Path, cid: str, rows: list[str], redis_url: str, campaigns: Path) -> None:
    f = tmp / f"{cid}.csv"
    f.write_text("phone,name,amount_due,timezone\n" + "\n".join(rows) + "\n")
    cli("upload", str(f), "--campaign", cid, redis_url=redis_url, campaigns=campaigns)


def contact(redis_url: str, cid: str, e164: str) -> dict[str, str]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return c.hgetall(KEYS.contact(cid, e164))
    finally:
        c.close()


def stats(redis_url: str, cid: str) -> dict[str, str]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return c.hgetall(KEYS.stats(cid))
    finally:
        c.close()


def wait_until(cond, timeout: float, what: str, w: WorkerProc) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{w.tail(40)}")


def outbound_rows(w: WorkerProc, n: int, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    rows: list = []
    while time.monotonic() < deadline:
        rows = [r for r in w.calls(wait_for=0, timeout=1) if r.direction == "outbound"]
        if len(rows) >= n:
            return rows
        time.sleep(0.3)
    raise AssertionError(f"{len(rows)} outbound CDRs, expected {n}:\n{w.tail(40)}")


def machine_customer(port: int) -> sipp.Sipp:
    """A voicemail box: answers, then talks for 4.7 s (a long greeting), then waits for BYE."""
    # The pcap is PCMA (PT 8): answer with PCMA only so the worker decodes what sipp sends.
    xml = sipp._agent_xml("answer", 200, 0).replace(sipp._sdp("0 8"), sipp._sdp("8")).replace(
        '<recv request="ACK" crlf="true"/>\n',
        '<recv request="ACK" crlf="true"/>\n'
        f'<nop><action><exec play_pcap_audio="{sipp.PCAP_DIR}/g711a.pcap"/></action></nop>\n', 1)
    return sipp._start(f"machine{port}", xml, ["-m", "1", "-timeout", "60s", "-timeout_error"], port=port)


@pytest.fixture
def setup(tmp_path: Path, redis_url: str):
    """A worker with the dialer (not started yet), its IVR and campaigns directories, sipp list."""
    ivr = tmp_path / "ivr"
    shutil.copytree(REPO / "ivr_scripts", ivr)
    (ivr / "dialer_test_notice.yaml").write_text(SHORT_FLOW)
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    w = dialer_worker(tmp_path, redis_url)
    w.env["CALLCENTER_DIALER"] = "1"
    procs: list[sipp.Sipp] = []
    yield w, ivr, campaigns, procs
    for p in procs:
        p.stop()
    assert w.stop() == 0, w.tail()


def test_outcomes_retries_compliance_and_cdrs(setup, redis_url: str) -> None:
    w, ivr, campaigns, procs = setup
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
    c = redis.Redis.from_url(redis_url)
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


def test_progressive_call_reaches_a_logged_in_agent(setup, redis_url: str) -> None:
    """Progressive dialing: one free agent -> one call; the answered customer is queued at once,
    the agent's phone rings and answers, the CDR names campaign, agent and outcome."""
    w, ivr, campaigns, procs = setup
    customer_port, agent_port = free_ports(2)
    rules = demo_rules(agent_port)
    rules = rules.replace("ring_timeout: 15", "ring_timeout: 4").replace("wrapup: 10", "wrapup: 0")
    (w.tmp / "rules.yaml").write_text(rules)
    (campaigns / "sales.yaml").write_text(campaign_yaml("t_sales", customer_port, ctype="telesales",
                                                        mode="progressive", queue="sales", max_attempts=1))
    upload(w.tmp, "t_sales", ["0906000001,Khach,0,", "0906000002,Khach2,0,"], redis_url, campaigns)
    procs += [sipp.agent(customer_port, "answer", ring_ms=300, calls=2),
              sipp.agent(agent_port, "answer_bye", ring_ms=300, talk_ms=1500, calls=2)]
    w.write_config(rules=w.tmp / "rules.yaml", campaigns=campaigns, ivr_scripts=ivr)
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


def test_answered_call_without_an_agent_is_abandoned_within_grace(setup, redis_url: str) -> None:
    """The only agent logs out while the customer's phone rings: the answered call cannot reach an
    agent within the 2 s grace, so it is dropped, counted in the abandonment ledger and retried."""

    w, ivr, campaigns, procs = setup
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
    ledger = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        counts = ledger.hgetall(KEYS.ledger("t_drop"))
    finally:
        ledger.close()
    assert sum(int(v) for k, v in counts.items() if k.endswith(":abandoned")) == 1, counts
    # Nothing of the dropped call stays in the ACD.
    check = redis.Redis.from_url(redis_url)
    try:
        assert check.zcard(RoutingKeys("cc:").waiting("sales")) == 0
    finally:
        check.close()
