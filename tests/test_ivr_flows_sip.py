"""Every demo IVR flow driven over real SIP: sipp callers dial the number routed to the flow and
press keys as RFC 2833 events; the path the call took is read back from its CDR row.

Keys are pressed early on purpose: the worker keeps every digit it receives and a barge-in prompt
stops at a buffered one, like a caller who knows the menu by heart. Prompt lengths that matter
(sounds/vi, TTS): hotline/welcome 4.1 s, queue/connecting 5.0 s (en 3.1 s), debt/hello+calling_from
5.5 s, hotline/voicemail_prompt+beep 4.9 s.

The CRM the flows dip into is a local HTTP server whose answer depends on the caller's number:
slow, garbage, a VIP, a regular customer, a debtor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crm_stub
import pytest
import sipp
from worker_proc import WorkerProc, demo_rules, flush, new_worker

from callcenter.cdr.writer import open_store

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

SLOW, GARBAGE, VIP = "0902000001", "0902000002", "0902000003"
ASSERTED_VIP = "0902000004"    # a VIP whose number a trusted edge asserts (P-Asserted-Identity)
ROUTES = {"hotline": "hotline", "default": "hotline", "debt": "debt_reminder", "telesales": "telesales",
          "survey": "csat_survey"}
JSON = "application/json"


ASKED: list[tuple[str, str]] = []     # (path, phone) of every CRM request


def crm_answer(path: str, query: dict[str, list[str]]) -> tuple[int, bytes, str]:
    phone = query.get("phone", [""])[0]
    ASKED.append((path, phone))
    if path == "/api/debts":
        return 200, json.dumps({"customer": {"name": "Nguyễn Văn An", "id": "D-42"},
                                "debt": {"amount": 1250000, "due_date": "2026-12-15"}}).encode(), JSON
    if phone == SLOW:
        time.sleep(3.0)                           # the flow waits 1.5 s
        return 200, b'{"name": "late", "id": "C-LATE", "vip": true}', JSON
    if phone == GARBAGE:
        return 200, b"<html>502 upstream exploded</html>", "text/html"
    if phone in (VIP, ASSERTED_VIP):
        return 200, json.dumps({"vip": True, "name": "Lê Văn Cường", "id": "C-VIP-7"}).encode(), JSON
    return 200, json.dumps({"vip": False, "name": "Trần Bình", "id": "C-1"}).encode(), JSON


@pytest.fixture(scope="module")
def crm_url() -> Iterator[str]:
    with crm_stub.serve(crm_answer) as url:
        yield url


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server, crm_url: str) -> Iterator[WorkerProc]:
    tmp = tmp_path_factory.mktemp("ivrflows")
    flush(redis_server.url)   # the module owns the session's database: no other test's agents or calls
    w = new_worker(tmp, redis_server.url)
    text = demo_rules(w.agents_port)
    (tmp / "rules.yaml").write_text(text)
    (tmp / "no_campaigns").mkdir()
    w.write_config(rules=tmp / "rules.yaml", routes=ROUTES, campaigns=tmp / "no_campaigns")
    # --dialer: the dialer's DNC writer is what an inbound flow's dnc node reaches
    w.env.update(CRM_URL=crm_url, CALLCENTER_DIALER="1")
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


def calls(w: WorkerProc, scenarios: dict[str, tuple[str, list[tuple]]], timeout: float = 60) -> dict[str, Any]:
    """Run one sipp caller per number at once ({number: (service, steps)}); their CDR rows by number."""
    procs = [sipp.caller(w.target, steps, number=number, service=service)
             for number, (service, steps) in scenarios.items()]
    codes = sipp.wait_all(*procs, timeout=timeout)
    assert codes == [0] * len(procs), "\n".join(p.errors() for p in procs) + w.tail(30)
    return {number: w.call_from(number) for number in scenarios}


def events(w: WorkerProc, call_id: str | None = None, kinds: tuple[str, ...] = ()) -> list[Any]:
    store = open_store(w.store_url)
    try:
        return store.events(call_id, kinds=kinds or None)
    finally:
        store.close()


def keys(*digits: str) -> list[tuple]:
    return [("dtmf", d) for d in digits]


# ---------------------------------------------------------------- hotline

def test_hotline_english_sales_from_the_crm(worker: WorkerProc) -> None:
    """2 = English during the welcome, 1 = sales; a regular customer; nobody free, the caller gives up."""
    steps = [("pause", 500), *keys("2", "1"), ("pause", 3100 + 2500), ("hangup",)]
    cdr = calls(worker, {"0902000010": ("hotline", steps)})["0902000010"]
    assert cdr.ivr_path == ("hotline.welcome>hotline.choose_language>hotline.crm>hotline.vip_check>hotline.hours>"
                            "hotline.menu>hotline.sales>hotline.queue")
    assert cdr.ivr_digits == "hotline.choose_language=2,hotline.menu=1"
    assert cdr.language == "en" and cdr.customer_id == "C-1"
    assert cdr.queue == "sales" and cdr.outcome == "abandoned" and cdr.hangup_side == "caller"
    assert ("/api/customers", "0902000010") in ASKED


def test_hotline_vip_from_an_unverified_number_gets_no_priority(worker: WorkerProc) -> None:
    """The CRM says the From number is a VIP, but a From is anyone's to write (no trusted
    P-Asserted-Identity here): the flow goes on through the VIP branch and the agent's screen gets the
    customer, but the call is queued at priority 0, not 10."""
    steps = [("pause", 500), *keys("1", "2"), ("pause", 5000 + 2500), ("hangup",)]
    cdr = calls(worker, {VIP: ("hotline", steps)})[VIP]
    assert "hotline.crm>hotline.vip_check>hotline.vip>hotline.hours>hotline.menu>hotline.support>hotline.queue" \
        in cdr.ivr_path
    assert cdr.customer_id == "C-VIP-7" and cdr.language == "vi" and cdr.queue == "support"
    enter = events(worker, cdr.call_id, ("ENTERQUEUE",))
    assert [e.data.get("priority") for e in enter] == [0]


def test_hotline_vip_asserted_by_a_trusted_source_is_queued_with_priority(worker: WorkerProc) -> None:
    """The same VIP, but the number comes in a P-Asserted-Identity from a trusted source (loopback is
    trusted by default; the From says something else): the caller is verified and queued at priority 10."""
    steps = [("pause", 500), *keys("1", "2"), ("pause", 5000 + 2500), ("hangup",)]
    caller = sipp.caller(worker.target, steps, number="0902999999", service="hotline",
                         headers=[f"P-Asserted-Identity: <sip:{ASSERTED_VIP}@edge.example;user=phone>"])
    assert caller.wait(60) == 0, caller.errors() + worker.tail(30)
    cdr = worker.call_from(ASSERTED_VIP)
    assert "hotline.vip>hotline.hours" in cdr.ivr_path and cdr.customer_id == "C-VIP-7"
    enter = events(worker, cdr.call_id, ("ENTERQUEUE",))
    assert [e.data.get("priority") for e in enter] == [10]


def test_hotline_crm_slow_or_garbage_takes_the_fallback_and_goes_on(worker: WorkerProc) -> None:
    """The CRM answers after 3 s (the flow waits 1.5 s) or with HTML: the call goes on to the menu."""
    steps = [("pause", 500), *keys("1"), ("pause", 4500), ("hangup",)]
    started = time.monotonic()
    rows = calls(worker, {SLOW: ("hotline", steps), GARBAGE: ("hotline", steps)})
    assert time.monotonic() - started < 15
    for number, cdr in rows.items():
        assert cdr.ivr_path == ("hotline.welcome>hotline.choose_language>hotline.crm>hotline.hours>hotline.menu"), \
            number
        assert cdr.customer_id is None and cdr.hangup_side == "caller"
        assert ("/api/customers", number) in ASKED
    failed = [(r.get("node"), r.get("error")) for r in worker.logs() if r.get("event") == "ivr_node_failed"]
    assert ("hotline.crm", "no answer within 1.5s") in failed
    assert ("hotline.crm", "response is not JSON") in failed


# ---------------------------------------------------------------- debt reminder

def test_debt_reminder_promise_agent_and_paid(worker: WorkerProc) -> None:
    """No campaign data on an inbound call: the flow asks the CRM, then 1 = promise to pay on a date typed
    as DDMMYYYY, 2 = an agent (collections), 3 = already paid. Three callers at once."""
    promise = dt.date.today() + dt.timedelta(days=30)
    typed = promise.strftime("%d%m%Y")
    rows = calls(worker, {
        "0903000001": ("debt", [("pause", 500), *keys("1", *typed), ("wait_bye", 40000)]),
        "0903000002": ("debt", [("pause", 500), *keys("2"), ("pause", 5500 + 5000 + 2000), ("hangup",)]),
        "0903000003": ("debt", [("pause", 500), *keys("3"), ("wait_bye", 40000)]),
    })
    head = "debt_reminder.have_data>debt_reminder.crm>debt_reminder.greet>debt_reminder.amount>debt_reminder.menu"
    p = rows["0903000001"]
    assert p.ivr_path == head + (">debt_reminder.promise>debt_reminder.promise_confirm>debt_reminder.promise_event"
                                 ">debt_reminder.thanks")
    assert p.ivr_digits == f"debt_reminder.menu=1,debt_reminder.promise={typed}"
    assert p.customer_id == "D-42" and p.hangup_side == "system"
    a = rows["0903000002"]
    assert a.ivr_path == head + ">debt_reminder.agent"
    assert a.queue == "collections" and a.outcome == "abandoned"
    paid = rows["0903000003"]
    assert paid.ivr_path == head + ">debt_reminder.paid>debt_reminder.thanks"
    assert paid.ivr_digits == "debt_reminder.menu=3" and paid.hangup_side == "system"
    # The flow's dispositions reach the call's CDR row and the queue log, with the call id.
    assert p.disposition == "promise_to_pay" and paid.disposition == "completed"
    assert "PROMISE_TO_PAY" in [e.event for e in events(worker, kinds=("PROMISE_TO_PAY",))
                                if e.call_id == p.call_id]
    promised = [e.data for e in events(worker, kinds=("PROMISE_TO_PAY",))]
    assert {"date": promise.isoformat(), "amount": 1250000} in promised
    assert {"amount": 1250000} in [e.data for e in events(worker, kinds=("ALREADY_PAID",))]
    assert [q for q, n in ASKED if n in rows].count("/api/debts") == 3


# ---------------------------------------------------------------- telesales

def test_telesales_interested_not_interested_and_do_not_call(worker: WorkerProc) -> None:
    from callcenter.dialer import phone
    from callcenter.dialer.keys import DialerKeys
    from callcenter.redisconn import connect

    dnc_number = "0904000009"
    rows = calls(worker, {
        "0904000001": ("telesales", [("pause", 500), *keys("1"), ("pause", 5000 + 2500), ("hangup",)]),
        "0904000002": ("telesales", [("pause", 500), *keys("2"), ("wait_bye", 20000)]),
        dnc_number: ("telesales", [("pause", 500), *keys("9"), ("wait_bye", 20000)]),
    })
    yes, no, dnc = rows["0904000001"], rows["0904000002"], rows[dnc_number]
    assert yes.ivr_path == "telesales.pitch>telesales.menu>telesales.interested>telesales.agent"
    assert yes.queue == "telesales" and yes.ivr_digits == "telesales.menu=1"
    assert no.ivr_path == "telesales.pitch>telesales.menu>telesales.not_interested>telesales.goodbye"
    assert dnc.ivr_path == "telesales.pitch>telesales.menu>telesales.dnc>telesales.goodbye"
    assert dnc.ivr_digits == "telesales.menu=9" and dnc.hangup_side == "system"
    assert no.disposition == "not_interested"
    # an inbound From is unverified: pressing 9 records a request for review, it does not put that
    # number (perhaps a stranger's, spoofed) on the list
    review = events(worker, dnc.call_id, ("DNC_REQUEST",))
    assert [(e.data["scope"], e.data["verified"], e.data["number"]) for e in review] == [("global", False, dnc_number)]
    assert not events(worker, dnc.call_id, ("DNC",)) and dnc.disposition is None

    async def on_dnc_list() -> bool:
        r = connect(worker.redis_url)
        try:
            return bool(await r.sismember(DialerKeys("cc:").dnc_global(), phone.normalize(dnc_number, "VN")))
        finally:
            await r.aclose()

    assert not asyncio.run(on_dnc_list()), "an unverified From was put on the global DNC list"


def test_telesales_do_not_call_from_an_asserted_number_goes_on_the_list(worker: WorkerProc) -> None:
    """A caller whose number a trusted source asserts presses 9: that number goes on the global DNC list."""
    from callcenter.dialer.keys import DialerKeys
    from callcenter.redisconn import connect

    number = "0904000019"
    caller = sipp.caller(worker.target, [("pause", 500), *keys("9"), ("wait_bye", 20000)], number="0904999999",
                         service="telesales", headers=[f"P-Asserted-Identity: <sip:{number}@edge.example>"])
    assert caller.wait(40) == 0, caller.errors() + worker.tail(30)
    row = worker.call_from(number)
    assert row.disposition == "dnc" and events(worker, row.call_id, ("DNC",))
    assert not events(worker, row.call_id, ("DNC_REQUEST",))

    async def on_dnc_list() -> bool:
        r = connect(worker.redis_url)
        try:
            return bool(await r.sismember(DialerKeys("cc:").dnc_global(), "+84904000019"))
        finally:
            await r.aclose()

    assert asyncio.run(on_dnc_list())


# ---------------------------------------------------------------- CSAT survey

def test_csat_survey_answers_reach_the_cdr(worker: WorkerProc) -> None:
    steps = [("pause", 500), *keys("5", "4", "2"), ("wait_bye", 20000)]
    cdr = calls(worker, {"0905000001": ("survey", steps)})["0905000001"]
    assert cdr.ivr_path == "csat_survey.intro>csat_survey.questions>csat_survey.thanks"
    assert cdr.ivr_digits == ("csat_survey.questions.csat=5,csat_survey.questions.agent=4,"
                              "csat_survey.questions.resolved=2")
    assert cdr.survey == {"csat": 5, "agent": 4, "resolved": 2}


# ---------------------------------------------------------------- closed hours

def test_hotline_closed_hours_voicemail(tmp_path: Path, redis_server) -> None:
    """CALLCENTER_FORCE_HOURS=closed: the closed message, 1 = voicemail, the caller speaks 4.7 s and
    falls silent; the recording ends on 5 s of silence and the flow thanks and hangs up."""
    # its own Redis database: its CDR writer must not take the module worker's records (and v.v.)
    w = new_worker(tmp_path, re.sub(r"db=\d+", "db=3", redis_server.url), worker_id="closed")
    w.write_config()
    w.env.update(CALLCENTER_FORCE_HOURS="closed")
    w.start()
    try:
        steps = [("pause", 500), *keys("1", "1"), ("pause", 5200), ("audio",), ("pause", 4700), ("wait_bye", 30000)]
        cdr = calls(w, {"0906000001": ("hotline", steps)})["0906000001"]
    finally:
        assert w.stop() == 0, w.tail()
    assert cdr.ivr_path == ("hotline.welcome>hotline.choose_language>hotline.crm>hotline.hours>hotline.closed>"
                            "hotline.voicemail>hotline.voicemail_thanks")
    assert cdr.ivr_digits == "hotline.choose_language=1,hotline.closed=1"
    assert cdr.hangup_side == "system" and cdr.queue is None
    wav = tmp_path / "recordings" / f"{cdr.call_id}-hotline-voicemail.wav"
    seconds = float(subprocess.run(["soxi", "-D", str(wav)], capture_output=True, text=True, check=True).stdout)
    assert 4.0 < seconds < 15.0, seconds


def test_transfer_node_sends_refer_and_ends_the_leg(tmp_path_factory: pytest.TempPathFactory, redis_server) -> None:
    """A flow's blind transfer on a live call: the caller gets REFER to the target, accepts it (202 +
    NOTIFY 200), and the worker ends its leg; the CDR path ends at the transfer node."""
    import shutil

    tmp = tmp_path_factory.mktemp("xfer")
    ivr = tmp / "ivr"
    shutil.copytree(Path(__file__).resolve().parent.parent / "ivr_scripts", ivr)
    (ivr / "xfer.yaml").write_text("""name: xfer
languages: [vi]
default_language: vi
start: go
nodes:
  go: {type: transfer, uri: "sip:1800123@pbx.example.com"}
""")
    # Its own database: on the module's, the module worker's CDR writer (same consumer group) could take
    # this call's records into its own store.
    w = new_worker(tmp, re.sub(r"db=\d+", "db=4", redis_server.url), worker_id="xfer")
    flush(w.redis_url)
    w.write_config(ivr_scripts=ivr, routes={"xfer": "xfer", "default": "hotline"})
    w.start()
    try:
        caller = sipp.referred_caller(w.target, number="0906000001", service="xfer")
        assert caller.wait(40) == 0, caller.errors() + w.tail()
        row = w.call_from("0906000001")
        assert row.ivr_path == "xfer.go" and row.hangup_side == "system"
    finally:
        w.stop()
