"""The supervisor's live calls page in a real browser (tests/browser.py) against a real worker and sipp phones: a
caller's call to an agent appears as it is answered (the event stream; the page is never reloaded), with its
queue, the caller masked, the talk time counting and its hold; the supervisor listens (its own sipp phone rings and
answers), switches to whisper, then barge (the keyboard), and ends the session (its phone gets the BYE, the call
goes on); the call leaves the list when the caller hangs up. The agents' part: force pause / ready / log out and
a skills change. The monitor audio itself is proved by tones in test_monitor_sip.py."""

from __future__ import annotations

from collections.abc import Iterator

import ports
import pytest
import sipp
import worker_proc
from selenium.webdriver.common.keys import Keys
from test_console_wallboard_sip import PASSWORD, UNLOADED
from worker_proc import WorkerProc, queue_flow, users_worker

from callcenter.auth.roles import SUPERVISOR

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

FLOW = queue_flow("lctest", "support", "moh", max_wait="120", announce="{position: false, wait_time: false}")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[WorkerProc]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(worker_proc, "RTP_PORTS", 200)     # a few calls: a short range is found on a busy machine
        w = users_worker(tmp_path_factory.mktemp("live-calls"), redis_server.url, {"sam": ([SUPERVISOR], None)},
                         {"lctest": FLOW})
    yield w
    assert w.stop() == 0, w.tail()


def test_a_live_call_appears_and_the_supervisor_listens(worker: WorkerProc, browser) -> None:
    sup_phone = sipp.agent(ports.port(), "answer", ring_ms=300, timeout_s=180, trace=True)
    status, answer = worker.http("PATCH", "/admin/users/sam",
                                 {"sip_uri": f"sip:sam@127.0.0.1:{sup_phone.port}", "queues": ["support"]})
    assert status == 200, answer
    browser.expect(r"/console/calls .* 401")
    browser.login(f"http://127.0.0.1:{worker.http_port}/console/calls", "sam", PASSWORD)
    browser.wait_text("#calls-none", "No agent is on a call")
    assert "ring your own phone first" in browser.text("#monitor-note")
    browser.driver.execute_script("window.ccNoReload = 1")

    worker.login("1003")
    agent_phone = sipp.agent(worker.agents_port, "answer", ring_ms=300, timeout_s=180)
    caller = sipp.caller(worker.target, [("pause", 40000), ("hangup",)], number="0902000077")
    row = "#calls tr[data-agent='1003']"
    browser.wait_text(f"{row} .queue", "support", timeout=30)
    call_id = browser.find(row).get_attribute("data-call")
    assert browser.text(f"{row} .caller") == "*******077"
    assert browser.text(f"{row} .hold") == "Talking"
    browser.wait_text(f"{row} .talk", lambda text: text not in ("0:00", ""), timeout=5)   # it counts up
    assert browser.fits()
    browser.shot("live-call")

    browser.find(f"{row} .mon-listen").click()
    browser.wait_text("#monitor-status", "Connected · Listen", timeout=20)    # its phone rang and answered
    session = worker.http("GET", f"/calls/{call_id}/monitor")[1]
    assert session["state"] == "connected" and session["mode"] == "listen" and session["supervisor"] == "sam"
    assert f"sip:sam@127.0.0.1:{sup_phone.port}" in sup_phone.messages()
    browser.shot("listening")
    browser.find(f"{row} .mon-whisper").click()
    browser.wait_text("#monitor-status", "Connected · Whisper")
    assert browser.find(f"{row} .mon-whisper").get_attribute("aria-pressed") == "true"
    assert worker.http("GET", f"/calls/{call_id}/monitor")[1]["modes"] == ["listen", "whisper"]
    browser.find(f"{row} .mon-barge").send_keys(Keys.ENTER)          # the keyboard: Enter on the focused button
    browser.wait_text("#monitor-status", "Connected · Barge")
    assert worker.http("GET", f"/calls/{call_id}/monitor")[1]["modes"] == ["listen", "whisper", "barge"]
    browser.find(f"{row} .mon-end").send_keys(Keys.SPACE)
    assert sup_phone.wait(30) == 0, sup_phone.errors()         # its phone got the BYE
    # the page drops its status line once the worker answered the DELETE (its BYE may reach the phone first)
    browser.wait(lambda: not browser.driver.find_elements("css selector", "#monitor-status"), 10,
                 "the monitor status stays after End")
    assert worker.http("GET", "/agents/1003")[1]["state"] == "on_call"     # the call goes on

    # the agent holds the call (its desk's button, here the API): the row says so from the event stream
    assert worker.http("POST", f"/calls/{call_id}/hold", {})[1]["changed"]
    browser.wait_text(f"{row} .hold", "On hold")
    assert "held" in browser.find(row).get_attribute("class")
    browser.shot("held")
    assert worker.http("POST", f"/calls/{call_id}/unhold", {})[1]["changed"]
    browser.wait_text(f"{row} .hold", "Talking")

    assert caller.wait(90) == 0, caller.errors() + worker.tail(30)
    browser.wait_text("#calls-none", "No agent is on a call", timeout=15)
    assert agent_phone.wait(30) == 0, agent_phone.errors()
    assert browser.driver.execute_script(UNLOADED)


def test_force_pause_ready_logout_and_skills(worker: WorkerProc, browser) -> None:
    assert worker.http("PATCH", "/admin/users/sam", {"queues": ["support"]})[0] == 200
    worker.login("1002")
    browser.expect(r"/console/calls .* 401")
    browser.login(f"http://127.0.0.1:{worker.http_port}/console/calls", "sam", PASSWORD)
    row = "#agents tr[data-agent='1002']"
    browser.wait_text(f"{row} .agent-state", "Ready")
    # sam supervises support: 1001 (vip and sales) is not in its grid
    assert worker.http("GET", "/admin/users/sam")[1]["queues"] == ["support"]
    assert not browser.driver.find_elements("css selector", "#agents tr[data-agent='1001']")
    assert browser.driver.find_elements("css selector", "#agents tr[data-agent='1004']")
    browser.find("#force-reason").send_keys("Training")
    browser.find(f"{row} .force-pause").click()
    browser.wait_text(f"{row} .agent-state", "Paused · Training")
    assert worker.http("GET", "/agents/1002")[1]["pause_reason"] == "training"
    browser.find(f"{row} .force-ready").click()
    browser.wait_text(f"{row} .agent-state", "Ready")
    browser.find(f"{row} .force-logout").click()
    browser.wait_text(f"{row} .agent-state", "Logged out")
    assert worker.http("GET", "/agents/1002")[1]["state"] == "logged_out"

    browser.find(f"{row} .skills").send_keys(Keys.CONTROL, "a", Keys.NULL, "support=9, vi=10")
    browser.find(f"{row} .skills-save").click()
    browser.wait(lambda: worker.http("GET", "/agents/1002")[1]["skills"] == {"support": 9, "vi": 10}, 10, "skills")
    # out of range, saved with Enter: the API's words, nothing changed
    browser.find(f"{row} .skills").send_keys(Keys.CONTROL, "a", Keys.NULL, "support=11", Keys.ENTER)
    browser.expect(r"/agents/1002/skills .* 400")
    browser.wait_text("#calls-error", "skills.support")
    assert worker.http("GET", "/agents/1002")[1]["skills"] == {"support": 9, "vi": 10}
    browser.shot("agents")
