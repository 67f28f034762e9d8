"""The supervisor's wallboard in a real browser (tests/browser.py) against a real worker: it changes live
as a caller queues and leaves (the event stream; the page is never reloaded), the longest wait highlighted once
past the queue's service level and the service level today highlighted below the queue's target; a pause and a
log out the supervisor forces from its agent grid reach the agent's own page, open in a second browser; an agent
on a call shows its caller (masked) and queue in the grid."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sipp
from browser import Browser
from worker_proc import WorkerProc, api_user, flow_worker, queue_flow

from callcenter.auth.roles import AGENT, SUPERVISOR

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

PASSWORD = "test password 1"      # worker_proc.api_user's
FLOW = queue_flow("wbtest", "support", "moh", max_wait="120", announce="{position: false, wait_time: false}")
UNLOADED = "return window.ccNoReload === 1"     # a mark a reload would wipe


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[WorkerProc]:
    tmp = tmp_path_factory.mktemp("wallboard")
    w = flow_worker(tmp, redis_server.url, {"wbtest": FLOW}, "wbtest")
    rules = tmp / "rules.yaml"          # support (the defaults' service level): a wait of 2 s is late
    rules.write_text(rules.read_text().replace("  service_level: 20 ", "  service_level: 2 ", 1))
    w.start()
    api_user(w.redis_url, "sam", [SUPERVISOR])
    api_user(w.redis_url, "binh", [AGENT], agent="1002")
    yield w
    assert w.stop() == 0, w.tail()


def test_wallboard_is_live_and_a_forced_pause_reaches_the_agent(worker: WorkerProc, browser) -> None:
    base = f"http://127.0.0.1:{worker.http_port}"
    desk = Browser("test_wallboard_agent_desk")
    try:
        desk.expect(r"/console/agent/1002 .* 401")
        desk.login(f"{base}/console/agent/1002", "binh", PASSWORD)
        desk.find("#btn-login").click()
        desk.wait_text("#agent-state", "Ready")
        desk.driver.execute_script("window.ccNoReload = 1")

        browser.expect(r"/console/wallboard .* 401")
        browser.login(f"{base}/console/wallboard", "sam", PASSWORD)
        row = "#agents tr[data-agent='1002']"
        browser.wait_text(f"{row} .agent-state", "Ready")
        browser.driver.execute_script("window.ccNoReload = 1")
        browser.find(f"{row} .force-pause").click()
        browser.wait_text(f"{row} .agent-state", "Paused · Other")
        # the agent's page learns it from the event stream, without a reload
        desk.wait_text("#agent-state", "Paused · Other")
        assert desk.driver.execute_script(UNLOADED)
        desk.shot("paused-by-supervisor")

        # nobody is free in support: a caller waits there, and the wallboard shows it as it happens
        waiting = "#queues tr[data-queue='support'] .waiting"
        assert browser.text(waiting) == "0"
        caller = sipp.caller(worker.target, [("pause", 8000), ("hangup",)], number="0902000077")
        browser.wait_text(waiting, "1", timeout=15)
        support = "#queues tr[data-queue='support']"
        browser.wait(lambda: "over" in browser.find(f"{support} .longest").get_attribute("class"), 15, "late wait")
        browser.shot("caller-waiting")
        assert caller.wait(60) == 0, caller.errors() + worker.tail(30)
        browser.wait_text(waiting, "0", timeout=15)
        # the caller gave up: nothing answered within the service level today, below the default target of 80 %
        browser.wait_text(f"{support} .sl", "0 % / 80 %")
        assert "below" in browser.find(f"{support} .sl").get_attribute("class")
        assert browser.text(f"{support} .abandon") == "100 %"
        assert "over" not in browser.find(f"{support} .longest").get_attribute("class")

        # an agent on a call: its caller, masked as GET /calls gives it to a supervisor, and its queue
        browser.find(f"{row} .force-ready").click()
        desk.wait_text("#agent-state", "Ready")
        phone = sipp.agent(worker.agents_port, "answer", ring_ms=300, timeout_s=120)
        caller = sipp.caller(worker.target, [("pause", 20000), ("hangup",)], number="0902000078")
        browser.wait_text(f"{row} .queue", "support", timeout=30)
        assert browser.text(f"{row} .caller") == "*******078"
        assert browser.text(f"{support} .n-on_call") == "1"
        browser.shot("agent-on-a-call")
        assert caller.wait(60) == 0, caller.errors() + worker.tail(30)
        assert phone.wait(30) == 0, phone.errors()
        browser.wait(lambda: browser.text(f"{row} .caller") == "", 15, "the call left the grid")

        # force log out reaches the agent's page
        browser.wait(lambda: browser.find(f"{row} .force-logout").is_enabled(), 15, "logout enabled")
        browser.find(f"{row} .force-logout").click()
        browser.wait_text(f"{row} .agent-state", "Logged out")
        desk.wait_text("#agent-state", "Logged out")
        assert browser.driver.execute_script(UNLOADED) and desk.driver.execute_script(UNLOADED)
        assert not desk.errors(), desk.errors()
    finally:
        desk.close()
