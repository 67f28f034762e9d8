"""Issue 14's end-to-end call through the web console, in a real browser (tests/browser.py) against a real
worker: the agent signs in through the page and gets ready; a sipp caller goes through the hotline (the
language and menu keys) with a CRM stub answering its lookup; the agent's page pops the caller with the CRM's
name while the agent's phone (sipp) rings; the phone answers, the page times the call and holds it; the phone
hangs up, the agent picks a disposition and "not resolved" in the wrap-up; the CDR holds both and the FCR
report counts the contact as not resolved at first contact."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import crm_stub
import ports
import pytest
import sipp
from worker_proc import WorkerProc, api_user, demo_rules, flush, new_worker

from callcenter.auth.roles import AGENT
from callcenter.cdr.record import CallRecord, Disposition
from callcenter.cdr.writer import open_store

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

PASSWORD = "test password 1"      # worker_proc.api_user's
CALLER = "0902000010"
CRM_NAME = "Trần Bình"
CUSTOMER_PORT = ports.port()     # the trunk: click-to-call's customer answers there
CONFIG = """
click_to_call: {caller_ids: ["02873001234"], calling_hours: ["00:00-24:00"], agent_ring_timeout: 5s, wrapup: 1s}
wrapup:
  default: {codes: [info, other]}
  queues:
    support: {codes: [info, complaint, fault_reported], required: true}
"""


@pytest.fixture(scope="module")
def crm_url() -> Iterator[str]:
    body = json.dumps({"vip": False, "name": CRM_NAME, "id": "C-1"}).encode()
    with crm_stub.serve(lambda path, query: (200, body, "application/json")) as url:
        yield url


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server, crm_url: str) -> Iterator[WorkerProc]:
    tmp = tmp_path_factory.mktemp("console_call")
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url)
    (tmp / "rules.yaml").write_text(demo_rules(w.agents_port).replace("wrapup: 10", "wrapup: 0"))
    (tmp / "no_campaigns").mkdir()
    w.write_config(rules=tmp / "rules.yaml", campaigns=tmp / "no_campaigns", extra=CONFIG,
                   trunk=f"127.0.0.1:{CUSTOMER_PORT}")
    w.env.update(CRM_URL=crm_url)
    w.start()
    api_user(w.redis_url, "binh", [AGENT], agent="1002")
    yield w
    assert w.stop() == 0, w.tail()


def ready_at_desk(worker: WorkerProc, browser) -> None:
    """Agent 1002 signed in at its desk and ready (logged in to its queues if it was not)."""
    browser.ready_at_desk(f"http://127.0.0.1:{worker.http_port}", "1002", "binh", PASSWORD)


def test_screen_pop_call_and_wrapup_reach_the_cdr_and_fcr(worker: WorkerProc, browser) -> None:
    base = f"http://127.0.0.1:{worker.http_port}"
    browser.expect(r"/console/agent/1002 .* 401")          # the sign-in page answers the desk without a session
    browser.login(f"{base}/console/agent/1002", "binh", PASSWORD)
    browser.find("#btn-login").click()
    browser.wait_text("#agent-state", "Ready")

    phone = sipp.agent(worker.agents_port, "answer_bye", ring_ms=2000, talk_ms=6000)
    # 1 = Vietnamese during the welcome, 2 = support; the caller stays through the agent and the survey
    caller = sipp.caller(worker.target, [("pause", 500), ("dtmf", "1"), ("dtmf", "2"), ("pause", 30000),
                                         ("hangup",)], number=CALLER, service="hotline")
    # the screen pop, while the agent's phone rings (before it answers)
    assert browser.wait_text("#pop-name", CRM_NAME, timeout=25) == CRM_NAME
    pop = browser.find("#screen-pop")
    shown_ms = float(pop.get_attribute("data-shown-at")) - 1000 * float(pop.get_attribute("data-offered-at"))
    print(f"screen pop shown {shown_ms:.0f} ms after the offer")
    assert browser.text("#pop-caller") == CALLER                 # in clear: the agent's own call
    assert browser.text("#pop-queue") == "support" and browser.text("#pop-customer") == "C-1"
    assert "hotline.menu" in browser.text("#pop-menu")
    assert worker.http("GET", "/agents/1002")[1]["state"] == "reserved"   # still ringing
    browser.shot("screen-pop")

    # answered: the call's timer runs; hold and resume from the page
    browser.wait_text("#call-timer", lambda text: text not in ("", "0:00"), timeout=15)
    browser.find("#btn-hold").click()
    browser.find("#held")
    browser.shot("on-hold")
    browser.find("#btn-hold").click()
    browser.wait(lambda: not browser.driver.find_elements("css selector", "#held"), 5, "still on hold")
    browser.find("#notes").send_keys("Router keeps dropping; customer will call back")

    # the phone hangs up: the wrap-up, with the queue's codes (required)
    browser.find("#wrapup-form", timeout=20)
    browser.find("#wrapup-save").click()
    assert browser.text("#wrapup-status") == "A disposition is required"
    browser.find("#disposition").send_keys("complaint")
    browser.find("#resolved-no").click()
    browser.shot("wrapup")
    browser.find("#wrapup-save").click()
    browser.find("#wrapup-saved", timeout=20)
    assert phone.wait(60) == 0, phone.errors()
    assert caller.wait(60) == 0, caller.errors() + worker.tail(30)

    cdr = worker.call_from(CALLER)
    assert cdr.queue == "support" and cdr.agent_id == "1002" and cdr.hold_count == 1
    deadline = time.monotonic() + 20
    while (cdr.disposition, cdr.resolved) != ("complaint", False) and time.monotonic() < deadline:
        time.sleep(0.2)
        cdr = worker.call_from(CALLER)
    assert (cdr.disposition, cdr.resolved) == ("complaint", False)
    store = open_store(worker.store_url)
    try:
        notes = [e.data.get("notes") for e in store.events(cdr.call_id, kinds=["WRAPUPEND"])]
    finally:
        store.close()
    assert notes == ["Router keeps dropping; customer will call back"]
    # another agent may not wrap up this call (the guard: not its agent id; the route: not its call)
    other = api_user(worker.redis_url, "ana", [AGENT], agent="1001")
    body = {"disposition": "info", "resolved": True}
    assert worker.http("POST", f"/calls/{cdr.call_id}/wrapup?agent=1002", body, token=other)[0] == 403
    status, answer = worker.http("POST", f"/calls/{cdr.call_id}/wrapup?agent=1001", body, token=other)
    assert (status, answer["error"]) == (403, "not a call of yours")
    # FCR: the contact answered in the support queue, not resolved at first contact (the agent said so)
    status, report = worker.http("GET", "/reports/queue")
    assert status == 200, report
    support = [r for r in report["rows"] if r["key"] == "support"]
    assert [(r["fcr_contacts"], r["fcr_resolved"]) for r in support] == [(1, 0)], report["rows"]


def test_click_to_call_from_the_desk(worker: WorkerProc, browser) -> None:
    """The agent types a number in the desk: its phone rings, then the customer (behind the trunk) is called and
    the two are bridged; the outbound CDR names the agent."""
    ready_at_desk(worker, browser)
    phone = sipp.agent(worker.agents_port, "answer", ring_ms=500)
    customer = sipp.agent(CUSTOMER_PORT, "answer_bye", ring_ms=500, talk_ms=3000)
    browser.find("#dial-number").send_keys("0901 110 777")
    assert browser.text("#dial-caller-id") == "02873001234"
    browser.find("#dial-send").click()
    assert "0901110777" in browser.wait_text("#dial-status", "ringing")
    browser.shot("click-to-call")
    assert customer.wait(60) == 0, customer.errors() + worker.tail(30)
    assert phone.wait(60) == 0, phone.errors()
    deadline = time.monotonic() + 20
    while not (out := [c for c in worker.calls(0, timeout=0.5) if c.direction == "outbound" and c.end]):
        assert time.monotonic() < deadline, worker.tail(30)
        time.sleep(0.2)
    assert out[-1].agent_id == "1002" and out[-1].outcome == "answered", out[-1]


def test_hang_up_and_transfer_from_the_desk(worker: WorkerProc, browser) -> None:
    """On a call the desk's Hang up ends the agent's side (its phone gets the BYE); on the next call Transfer
    sends the caller to another queue (blind) and the CDR says where."""
    ready_at_desk(worker, browser)
    steps = [("pause", 500), ("dtmf", "1"), ("dtmf", "2"), ("pause", 25000), ("hangup",)]

    phone = sipp.agent(worker.agents_port, "answer", ring_ms=500)          # talks until it gets a BYE
    caller = sipp.caller(worker.target, steps, number="0902000011", service="hotline")
    browser.wait_text("#call-timer", lambda text: text not in ("", "0:00"), timeout=30)
    browser.find("#btn-hangup").click()
    assert phone.wait(30) == 0, phone.errors()                              # the worker hung up its phone
    browser.find("#wrapup-form", timeout=20)
    browser.find("#disposition").send_keys("info")
    browser.find("#resolved-yes").click()
    browser.find("#wrapup-save").click()
    browser.find("#wrapup-saved", timeout=20)
    assert caller.wait(60) == 0, caller.errors() + worker.tail(30)
    first = worker.call_from("0902000011")
    # the worker ended the agent's leg at its desk's request: the agent hung up
    assert first.agent_id == "1002" and first.hangup_side == "agent", first

    browser.wait_text("#agent-state", "Ready", timeout=20)
    phone = sipp.agent(worker.agents_port, "answer", ring_ms=500)
    caller = sipp.caller(worker.target, steps, number="0902000012", service="hotline")
    browser.wait_text("#call-timer", lambda text: text not in ("", "0:00"), timeout=30)
    browser.find("#transfer-kind").send_keys("Queue")
    browser.find("#transfer-target").send_keys("vip")      # a queue 1002 is not in: the caller waits there
    browser.shot("transfer")
    browser.find("#btn-transfer").click()
    browser.wait_text("#call-note", "Call transferred to vip")
    assert phone.wait(30) == 0, phone.errors()
    assert caller.wait(60) == 0, caller.errors() + worker.tail(30)
    second = worker.call_from("0902000012")
    assert second.transferred_to and "vip" in second.transferred_to, second


def on_a_call(worker: WorkerProc, browser, number: str) -> tuple[sipp.Sipp, sipp.Sipp, sipp.Sipp]:
    """Agent 1002 at its desk talking to a hotline caller from ``number``, and a phone on the trunk ready to answer
    (a number the desk adds or consults): the agent's phone, that phone and the caller."""
    ready_at_desk(worker, browser)
    browser.expect(r"/conference\?agent=1002 .* 404")    # the desk's conference panel may ask once the call is over
    phone = sipp.agent(worker.agents_port, "answer", ring_ms=500)
    other = sipp.agent(CUSTOMER_PORT, "answer", ring_ms=500)
    caller = sipp.caller(worker.target, [("pause", 500), ("dtmf", "1"), ("dtmf", "2"), ("pause", 25000),
                                         ("hangup",)], number=number, service="hotline")
    browser.wait_text("#call-timer", lambda text: text not in ("", "0:00"), timeout=30)
    return phone, other, caller


def add_a_number(worker: WorkerProc, browser, number: str) -> tuple[sipp.Sipp, sipp.Sipp, sipp.Sipp]:
    """``on_a_call``, and the number 0901110779 added to the call from the desk (answered on the trunk)."""
    phone, party, caller = on_a_call(worker, browser, number)
    browser.find("#conference-kind").send_keys("Number")
    browser.find("#conference-target").send_keys("0901110779")
    browser.find("#btn-conference").click()
    return phone, party, caller


def consult_a_number(browser, target: str) -> None:
    """The desk's attended transfer to ``target``, once the target talks (the caller held)."""
    browser.find("#transfer-kind").send_keys("Number")
    browser.find("#transfer-target").send_keys(target)
    browser.find("#transfer-attended").click()
    browser.find("#btn-transfer").click()
    browser.wait_text("#consult-state", "talking", timeout=20)


def test_add_a_number_to_the_call_from_the_desk(worker: WorkerProc, browser) -> None:
    """On a call the desk adds a number: it is called through the trunk and joins (a conference leg on the
    call's CDR); the agent then hangs up and the caller stays with the added party."""
    phone, party, caller = add_a_number(worker, browser, "0902000013")
    browser.wait_text("#call-note", "0901110779")
    browser.shot("conference")
    deadline = time.monotonic() + 20
    while not [p for p in worker.http("GET", f"/calls/{pop_call(browser)}/conference")[1].get("parties", [])
               if p["kind"] == "number" and p["state"] == "connected"]:
        assert time.monotonic() < deadline, worker.tail(30)
        time.sleep(0.2)
    browser.find("#btn-hangup").click()
    assert phone.wait(30) == 0, phone.errors()
    assert caller.wait(60) == 0, caller.errors() + worker.tail(30)
    assert party.wait(30) == 0, party.errors()
    call = worker.call_from("0902000013")
    deadline = time.monotonic() + 20
    while "conference" not in (kinds := legs(worker, call.call_id)):     # the writer stores it in its time
        assert time.monotonic() < deadline, kinds
        time.sleep(0.2)


def legs(worker: WorkerProc, call_id: str) -> list[str]:
    store = open_store(worker.store_url)
    try:
        return [leg.kind for leg in store.legs(call_id)]
    finally:
        store.close()


def pop_call(browser) -> str:
    """The call id of the call on the desk (its screen pop)."""
    return str(browser.find("#screen-pop").get_attribute("data-call"))


def test_attended_transfer_from_the_desk(worker: WorkerProc, browser) -> None:
    """The agent consults a number (the caller held meanwhile), sees it answer, and completes the transfer: the
    agent's phone gets the BYE, the caller talks to the number, and the CDR says where the call went."""
    phone, target, caller = on_a_call(worker, browser, "0902000014")
    consult_a_number(browser, "0901110781")
    browser.shot("consult")
    browser.find("#consult-complete").click()
    browser.wait_text("#call-note", "Transferred: 0901110781")
    assert phone.wait(30) == 0, phone.errors()
    assert caller.wait(60) == 0, caller.errors() + worker.tail(30)
    assert target.wait(30) == 0, target.errors()
    call = worker.call_from("0902000014")
    assert call.transferred_to and "0901110781"[1:] in call.transferred_to, call


def test_screen_pop_shows_the_callers_contacts_of_the_last_7_days(worker: WorkerProc, browser) -> None:
    """The pop lists the caller's earlier calls of the last 7 days with their dispositions (GET
    /calls/{id}/contacts, read from the CDR store once the pop shows); older ones stay out; another agent may
    not ask for them."""
    number = "0902000015"
    now = time.time()
    store = open_store(worker.store_url)
    try:
        for cid, ago, queue in (("hist-1", 3, "billing"), ("hist-2", 1, "sales"), ("hist-old", 9, "billing")):
            store.put_call(CallRecord(call_id=cid, direction="inbound", caller=number, called="19001234",
                                      start=now - ago * 86400, end=now - ago * 86400 + 90, queue=queue,
                                      agent_id="1001", outcome="answered"))
        store.apply([("disp", Disposition("hist-1", "fault_reported", False, now - 3 * 86400 + 120,
                                          "1001").to_dict())])
    finally:
        store.close()
    ready_at_desk(worker, browser)
    phone = sipp.agent(worker.agents_port, "answer_bye", ring_ms=3000, talk_ms=5000)
    caller = sipp.caller(worker.target, [("pause", 500), ("dtmf", "1"), ("dtmf", "2"), ("pause", 25000),
                                         ("hangup",)], number=number, service="hotline")
    browser.find("#pop-history", timeout=25)
    browser.wait(lambda: browser.driver.find_elements("css selector", '#pop-history[data-loaded="yes"]'), 10,
                 "the caller's contacts")
    rows = {r.get_attribute("data-call"): r for r in browser.driver.find_elements("css selector", "#pop-history tr[data-call]")}
    assert {"hist-1", "hist-2"} <= set(rows) and "hist-old" not in rows, list(rows)
    first = rows["hist-1"]
    assert first.find_element("css selector", ".disposition").text == "fault_reported"
    assert first.find_element("css selector", ".resolved").text == "No"
    browser.shot("screen-pop-contacts")
    call_id = pop_call(browser)
    other = api_user(worker.redis_url, "ana", [AGENT], agent="1001")
    status, answer = worker.http("GET", f"/calls/{call_id}/contacts?agent=1001", token=other)
    assert (status, answer["error"]) == (403, "not a call of yours")
    status, answer = worker.http("GET", f"/calls/{call_id}/contacts")                  # an admin: any live call
    assert status == 200 and "hist-1" in [c["call_id"] for c in answer["contacts"]], answer
    assert number not in json.dumps(answer)                                            # no numbers in it
    browser.find("#wrapup-form", timeout=30)
    browser.find("#disposition").send_keys("info")
    browser.find("#resolved-yes").click()
    browser.find("#wrapup-save").click()
    browser.find("#wrapup-saved", timeout=20)
    assert phone.wait(60) == 0, phone.errors()
    assert caller.wait(60) == 0, caller.errors() + worker.tail(30)


def test_conference_controls_on_the_desk(worker: WorkerProc, browser) -> None:
    """The desk adds a number; its conference panel lists the parties; the agent mutes and unmutes the added
    party, holds and resumes it (the conference's state says so), then leaves: its phone gets the BYE and the
    caller stays with the added party until the caller hangs up."""
    phone, party, caller = add_a_number(worker, browser, "0902000016")
    call_id = pop_call(browser)
    added = '#conference tr[data-state="connected"]:not([data-party="caller"]):not([data-party="agent"])'
    row = browser.find(added, timeout=20)
    pid = str(row.get_attribute("data-party"))

    def state() -> dict[str, object]:
        parties = worker.http("GET", f"/calls/{call_id}/conference")[1]["parties"]
        return next(p for p in parties if p["party"] == pid)

    for button, attr, value, shot in (("mute", "muted", "yes", "conference-muted"), ("mute", "muted", "no", None),
                                      ("hold", "held", "yes", "conference-held"), ("hold", "held", "no", None)):
        browser.find(f'#conference tr[data-party="{pid}"] button.{button}').click()
        browser.find(f'#conference tr[data-party="{pid}"][data-{attr}="{value}"]', timeout=10)
        assert state()[attr] is (value == "yes"), state()
        if shot:
            browser.shot(shot)
    browser.find("#conference-leave").click()
    assert phone.wait(30) == 0, phone.errors()              # the agent left: its phone got the BYE
    assert worker.http("GET", f"/calls/{call_id}/conference")[0] == 200   # the caller and the party go on
    browser.find("#wrapup-form", timeout=20)
    assert caller.wait(60) == 0, caller.errors() + worker.tail(30)
    assert party.wait(30) == 0, party.errors()
