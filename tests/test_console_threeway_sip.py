"""Issue 14: the agent desk through an attended transfer turned three-way, in a real browser against a real
worker, proved by tones (tests/tone_parties.py): the caller sends tone A, agent 1001 (at its desk) tone B, agent
1002 (consulted) tone C, and the queue's music is tone M.

Agent 1001 consults 1002 from its desk (the caller on hold), then makes it a three-way call: the desk still shows
the call and now its conference panel (caller, the agent, 1002, with mute / hold / leave), and everyone hears
everyone. The agent mutes 1002 and unmutes it from the panel, then leaves: its phone gets the BYE, its part of
the call ends (the desk's wrap-up, saved while the call goes on; the agent free again) and the caller and 1002 go
on talking (each hears the other, nobody else). A consult a supervisor starts on the agent's call (to agent 1003,
tone D) shows on the desk with its controls: the call.consult event. A party a supervisor adds to the agent's call
(agent 1003) shows on the desk too: the call.conference event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sipp
from tone_parties import Party, close_all, phone, sounds_with_music, tone_worker, wait_for
from worker_proc import WorkerProc, api_user, queue_flow

from callcenter.auth.roles import AGENT, SUPERVISOR

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

A, B, C, D, M = 500.0, 1100.0, 1700.0, 2300.0, 800.0    # caller, 1001 (the desk), 1002 (consulted), 1003, music
ALL = [A, B, C, D, M]
PHONES: dict[str, int] = {}
PASSWORD = "test password 1"      # worker_proc.api_user's


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[WorkerProc]:
    tmp = tmp_path_factory.mktemp("console_threeway")
    flow = queue_flow("direct", "sales", "tone_m", max_wait="300", announce="{position: false, wait_time: false}")
    w = tone_worker(tmp, redis_server.url, PHONES, ("1001", "1002", "1003"), flow,
                    sounds_with_music(tmp, "tone_m", M))
    api_user(w.redis_url, "an", [AGENT], agent="1001")
    yield w
    assert w.stop() == 0, w.tail()


def talking_at_the_desk(worker: WorkerProc, browser, caller: Party, agent: Party, phones: list[sipp.Sipp]) -> sipp.Sipp:
    """Agent 1001 signed in at its desk, ready, and talking to a caller (90 s) on its phone: that phone."""
    browser.ready_at_desk(f"http://127.0.0.1:{worker.http_port}", "1001", "an", PASSWORD)
    agent_phone = phone(agent.port, port=PHONES["1001"])
    phones.append(agent_phone)
    phones.append(sipp.caller(worker.target, [("pause", 90000), ("hangup",)], codecs="8", media_port=caller.port))
    browser.wait_text("#call-timer", lambda text: text not in ("", "0:00"), timeout=30)
    wait_for(lambda: caller.heard() == {B} and agent.heard() == {A}, "the caller and its agent talking")
    return agent_phone


def test_three_way_from_a_consult_keeps_the_desks_conference_controls(worker: WorkerProc, browser) -> None:
    caller, agent, target = Party(A, ALL), Party(B, ALL), Party(C, ALL)
    phones: list[sipp.Sipp] = []
    try:
        browser.expect(r"/transfer\?agent=1001 .* 404")        # the consult's poll once it is over
        agent_phone = talking_at_the_desk(worker, browser, caller, agent, phones)

        # 1002 is logged in only now: the sales caller was 1001's
        target_phone = phone(target.port, port=PHONES["1002"])
        phones.append(target_phone)
        worker.login("1002")
        browser.find("#transfer-kind").send_keys("Agent")
        browser.find("#transfer-target").send_keys("1002")
        browser.find("#transfer-attended").click()
        browser.find("#btn-transfer").click()
        browser.wait_text("#consult-state", "talking", timeout=20)
        call_id = str(browser.find("#screen-pop").get_attribute("data-call"))
        wait_for(lambda: caller.heard() == {M}, "the caller on hold during the consult")
        browser.find("#consult-conference").click()

        # three-way: the desk keeps the call and shows its conference
        browser.wait_text("#call-note", "Three-way call with")
        row = browser.find('#conference tr[data-party="1002"][data-state="connected"]', timeout=20)
        assert row.find_element("css selector", "button.mute") and row.find_element("css selector", "button.hold")
        browser.find('#conference tr[data-party="caller"]')
        browser.find("#conference-leave")
        browser.find("#call-timer")
        wait_for(lambda: caller.heard() == {B, C}, "the three-way call")
        assert agent.heard() == {A, C} and target.heard() == {A, B}
        browser.shot("three-way")
        browser.find('#conference tr[data-party="1002"] button.mute').click()
        browser.find('#conference tr[data-party="1002"][data-muted="yes"]', timeout=10)
        wait_for(lambda: caller.heard() == {B}, "1002 muted")
        browser.find('#conference tr[data-party="1002"] button.mute').click()
        browser.find('#conference tr[data-party="1002"][data-muted="no"]', timeout=10)

        # the agent leaves: the caller and 1002 talk on
        browser.find("#conference-leave").click()
        assert agent_phone.wait(30) == 0, agent_phone.errors()
        # its part of the call is over: the desk goes to the wrap-up (saved while the call goes on) and the agent
        # is free again (the rules' wrap-up is 0)
        browser.find("#wrapup-form", timeout=20)
        assert not browser.driver.find_elements("css selector", "#conference")
        browser.find("#resolved-yes").click()
        browser.find("#wrapup-save").click()
        browser.find("#wrapup-saved", timeout=20)
        browser.wait_text("#agent-state", "Ready", timeout=20)
        wait_for(lambda: caller.heard() == {C} and target.heard() == {A}, "the caller and 1002 talking")
        status, conf = worker.http("GET", f"/calls/{call_id}/conference")
        assert status == 200 and {p["party"] for p in conf["parties"]} == {"caller", "1002"}, conf
        assert worker.http("GET", "/agents/1001")[1]["state"] == "available"
        browser.shot("left")
    finally:
        close_all(phones, (caller, agent, target))


def test_a_consult_a_supervisor_starts_shows_on_the_desk(worker: WorkerProc, browser) -> None:
    """A supervisor starts an attended transfer of 1001's call to agent 1003 through the API: the desk learns it
    from the event stream (call.consult) and shows the consult with its complete / three-way / cancel controls,
    as if it had started it; the agent cancels it there and is back with its caller, then hangs up."""
    caller, agent, target = Party(A, ALL), Party(B, ALL), Party(D, ALL)
    phones: list[sipp.Sipp] = []
    try:
        browser.expect(r"/transfer\?agent=1001 .* 404")        # the consult's poll once it is over
        talking_at_the_desk(worker, browser, caller, agent, phones)
        call_id = str(browser.find("#screen-pop").get_attribute("data-call"))
        phones.append(phone(target.port, port=PHONES["1003"]))
        worker.login("1003")                          # a support agent: the sales caller is never its
        sup = api_user(worker.redis_url, "sup-consult", [SUPERVISOR])
        status, answer = worker.http("POST", f"/calls/{call_id}/transfer", {"agent": "1003", "mode": "attended"},
                                     token=sup)
        assert status == 202, answer
        browser.wait_text("#consult", "1003", timeout=20)
        browser.wait_text("#consult-state", "talking", timeout=20)
        for control in ("#consult-complete", "#consult-conference", "#consult-cancel"):
            browser.wait(lambda c=control: browser.find(c).is_enabled(), 10, f"{control} enabled")
        wait_for(lambda: caller.heard() == {M} and agent.heard() == {D}, "the caller on hold, 1001 talking to 1003")
        browser.shot("consult-by-supervisor")

        browser.find("#consult-cancel").click()
        browser.wait(lambda: not browser.driver.find_elements("css selector", "#consult"), 20, "the consult closed")
        browser.find("#transfer-form")
        wait_for(lambda: caller.heard() == {B} and agent.heard() == {A}, "the caller back with its agent")
        # the desk hangs up and saves its wrap-up: 1001 ready for the next test
        browser.find("#btn-hangup").click()
        browser.find("#resolved-yes", timeout=20).click()
        browser.find("#wrapup-save").click()
        browser.wait_text("#agent-state", "Ready", timeout=20)
    finally:
        close_all(phones, (caller, agent, target))


def test_a_party_a_supervisor_adds_shows_on_the_desk(worker: WorkerProc, browser) -> None:
    """A supervisor adds agent 1003 to 1001's call through the API: the desk learns it from the event stream
    (call.conference) and shows the conference panel with 1003, as if it had added the party itself."""
    caller, agent, added = Party(A, ALL), Party(B, ALL), Party(D, ALL)
    phones: list[sipp.Sipp] = []
    try:
        talking_at_the_desk(worker, browser, caller, agent, phones)
        call_id = str(browser.find("#screen-pop").get_attribute("data-call"))
        phones.append(phone(added.port, port=PHONES["1003"]))
        worker.login("1003")                          # a support agent: the sales caller was never its
        sup = api_user(worker.redis_url, "sup-desk", [SUPERVISOR])
        status, answer = worker.http("POST", f"/calls/{call_id}/conference/add", {"agent": "1003"}, token=sup)
        assert status == 202, answer
        row = browser.find('#conference tr[data-party="1003"][data-state="connected"]', timeout=20)
        assert row.find_element("css selector", "button.hold")
        browser.find("#conference-leave")
        wait_for(lambda: caller.heard() == {B, D}, "the caller hearing its agent and 1003")
        browser.shot("added-by-supervisor")
    finally:
        close_all(phones, (caller, agent, added))

