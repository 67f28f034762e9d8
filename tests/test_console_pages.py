"""The web console's pages in a real browser (tests/browser.py: Debian's chromium, headless) against a real
worker: signing in through the page, the agent desktop's ready / pause / log out with time in state, the
language kept, and refusals that are pages (an agent on a supervisor's page or another agent's desk: 403
"not allowed" with the way home); the campaign manager's page: a messy CSV list uploaded with its progress bar
and per-row report. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
import redis
from selenium.webdriver.common.keys import Keys
from worker_proc import WorkerProc, api_user, running

from callcenter.auth.roles import AGENT, CAMPAIGN_MANAGER, SUPERVISOR
from callcenter.dialer.keys import DialerKeys

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

PASSWORD = "test password 1"      # worker_proc.api_user's
MESSY = ("phone;name;note\n"
         "0912 345 678;An;ok\n"
         "+84 912 345 679;Bình;ok\n"
         "0912345678;An again;duplicate of line 2\n"
         "12;Short;too short\n"
         "=HYPERLINK(\"x\");Evil;formula\n"
         "\n"
         "1900 1234;Service;not a subscriber\n"
         "0987 654 321;Châu;ok\n")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[WorkerProc]:
    for w in running(tmp_path_factory.mktemp("console"), redis_server.url):
        api_user(w.redis_url, "ana", [AGENT], agent="1001")
        api_user(w.redis_url, "sam", [SUPERVISOR])
        api_user(w.redis_url, "mai", [CAMPAIGN_MANAGER])
        yield w


def url(w: WorkerProc, path: str) -> str:
    return f"http://127.0.0.1:{w.http_port}{path}"


def test_agent_signs_in_and_changes_state(worker: WorkerProc, browser) -> None:
    browser.expect(r"/console/agent/1001 .* 401")         # the sign-in page answers the desk without a session
    browser.login(url(worker, "/console/agent/1001"), "ana", PASSWORD)
    assert browser.wait_text("#agent-state", "Logged out")
    browser.shot("desk-logged-out")
    browser.find("#btn-login").click()
    browser.wait_text("#agent-state", "Ready")
    assert worker.http("GET", "/agents/1001")[1]["state"] == "available"
    browser.find("#pause-reason").send_keys("Lunch")       # keyboard: type to pick the option
    browser.find("#btn-pause").click()
    browser.wait_text("#agent-state", "Paused · Lunch")
    info = worker.http("GET", "/agents/1001")[1]
    assert info["state"] == "paused" and info["pause_reason"] == "lunch"
    # time in state counts up on the page
    browser.wait_text("#state-time", lambda text: text not in ("0:00", ""), timeout=5)
    browser.shot("desk-paused")
    browser.find("#btn-ready").click()
    browser.wait_text("#agent-state", "Ready")
    browser.find("#btn-logout").click()
    browser.wait_text("#agent-state", "Logged out")
    assert worker.http("GET", "/agents/1001")[1]["state"] == "logged_out"


def test_the_language_is_kept(worker: WorkerProc, browser) -> None:
    browser.expect(r"/console .* 401")
    browser.login(url(worker, "/console"), "ana", PASSWORD)
    browser.find("#lang").send_keys("Tiếng Việt")
    browser.wait_text("#link-agent", "Màn hình điện thoại viên")
    browser.get(url(worker, "/console/agent/1001"))
    browser.wait_text("#agent-state", "Đã thoát")
    browser.shot("desk-vi")
    browser.find("#lang").send_keys("English")
    browser.wait_text("#agent-state", "Logged out")


def test_an_agent_gets_a_not_allowed_page(worker: WorkerProc, browser) -> None:
    browser.expect(r"/console .* 401")
    browser.expect(r"/console/(wallboard|agent/1002) .* 403")
    browser.login(url(worker, "/console"), "ana", PASSWORD)
    for path in ("/console/wallboard", "/console/agent/1002"):
        browser.get(url(worker, path))
        assert browser.text("#message h1") == "Not allowed"
        browser.shot("forbidden")
    browser.find("#home-link").click()
    browser.wait_text("#link-agent", "Agent desktop")
    assert not browser.driver.find_elements("css selector", "#link-wallboard")


def test_a_supervisor_sees_the_wallboard(worker: WorkerProc, browser) -> None:
    browser.expect(r"/console .* 401")
    browser.login(url(worker, "/console"), "sam", PASSWORD)
    browser.find("#link-wallboard").click()
    browser.wait_text("#queues", "support")
    browser.find("#agents tr[data-agent='1002']")
    browser.shot("wallboard")


def test_the_desk_is_keyboard_usable_and_fits_1366x768(worker: WorkerProc, browser) -> None:
    """Sign in and change state with the keyboard alone: the focus starts in the user name, Tab moves it, Enter
    and Space press buttons; every page fits the window's width."""
    browser.expect(r"/console/agent/1001 .* 401")
    browser.get(url(worker, "/console/agent/1001"))
    browser.find("#login-form")
    assert browser.focused() == "user"
    browser.keys("ana", Keys.TAB, PASSWORD, Keys.ENTER)
    browser.wait_text("#agent-state", "Logged out")
    assert browser.fits()
    browser.find("#btn-login").send_keys(Keys.ENTER)     # the focus on the button, Enter presses it
    browser.wait_text("#agent-state", "Ready")
    browser.driver.execute_script("arguments[0].focus()", browser.find("#pause-reason"))
    browser.keys("Lunch")                                 # typing picks the option
    browser.keys(Keys.TAB, Keys.SPACE)                    # Tab to Pause, Space presses it
    browser.wait_text("#agent-state", "Paused · Lunch")
    browser.find("#btn-logout").send_keys(Keys.ENTER)
    browser.wait_text("#agent-state", "Logged out")
    for path in ("/console", "/console/agent/1001"):
        browser.get(url(worker, path))
        browser.find("#who")
        assert browser.fits(), path


def test_a_messy_list_uploads_with_progress_and_a_per_row_report(worker: WorkerProc, browser, tmp_path) -> None:
    base = f"http://127.0.0.1:{worker.http_port}"
    browser.expect(r"/console .* 401")
    browser.login(f"{base}/console", "mai", PASSWORD)
    browser.find("#link-campaigns").click()
    browser.wait_text("#campaigns", "telesales_demo")
    browser.find("#upload-campaign").send_keys("Gói cước 4G")        # the telesales demo campaign, by name
    listing = tmp_path / "messy.csv"
    listing.write_text(MESSY, encoding="utf-8")
    browser.find("#list-file").send_keys(str(listing))
    browser.find("#upload-send").click()
    assert browser.find("#upload-progress").get_attribute("max") == "100"
    browser.wait_text("#upload-percent", "100 %")
    report = browser.find("#upload-report", timeout=20)
    assert browser.text("#report-accepted") == "3" and browser.text("#report-rejected") == "3", report.text
    assert browser.text("#report-duplicates") == "1", report.text
    rejected = browser.text("#rejected")
    assert "5 short code" in rejected and "6 phone cell holds a formula" in rejected, rejected
    assert "8 not a Vietnamese mobile or landline prefix" in rejected, rejected
    assert browser.find("#rejected-csv").get_attribute("download") == "telesales_demo-rejected.csv"
    browser.shot("upload-report")
    status, stats = worker.http("GET", "/campaigns/telesales_demo/stats")
    assert status == 200 and stats["pending"] == 3, stats


def test_do_not_call_numbers_added_removed_and_uploaded(worker: WorkerProc, browser, tmp_path) -> None:
    """The campaign manager puts a number on the global DNC list and takes it off; puts one on a campaign's
    list; uploads a CSV of numbers (a per-row report: added, already there, rejected). The API then finds
    each number on the list it was put on."""
    base = f"http://127.0.0.1:{worker.http_port}"
    browser.expect(r"/console/campaigns .* 401")
    browser.expect(r"/dnc/0912%20345%20600 .* 404")          # removed twice: the second time it is not there
    browser.login(f"{base}/console/campaigns", "mai", PASSWORD)
    browser.wait_text("#campaigns", "telesales_demo")
    browser.find("#dnc-number").send_keys("0912 345 600")
    browser.find("#dnc-add").click()
    browser.wait_text("#dnc-status", "On the do-not-call list: +84912345600")
    browser.find("#dnc-remove").click()
    browser.wait_text("#dnc-status", "Removed from the do-not-call list: +84912345600")
    browser.find("#dnc-remove").click()
    browser.wait_text("#dnc-status", "number is not on that DNC list")
    browser.find("#dnc-scope").send_keys("Gói cước 4G")
    browser.find("#dnc-add").click()
    browser.wait_text("#dnc-status", "On the do-not-call list: +84912345600")
    assert worker.http("DELETE", "/dnc/0912345600")[0] == 404                       # not on the global list
    assert worker.http("DELETE", "/dnc/0912345600?campaign=telesales_demo")[0] == 200
    browser.find("#dnc-scope").send_keys("Every campaign")
    numbers = tmp_path / "dnc.csv"
    numbers.write_text("so_dien_thoai\n0912 345 601\n+84 912 345 602\n12\n0912345601\n", encoding="utf-8")
    worker.http("POST", "/dnc", {"number": "0912345602"})                           # already on the list
    browser.find("#dnc-file").send_keys(str(numbers))
    browser.find("#dnc-upload-send").click()
    report = browser.find("#dnc-report", timeout=20)
    assert (browser.text("#dnc-new"), browser.text("#dnc-already"), browser.text("#dnc-rejected")) == \
        ("1", "1", "1"), report.text
    assert "short code" in report.text, report.text
    browser.shot("dnc")
    assert worker.http("DELETE", "/dnc/0912345601")[0] == 200
    assert worker.http("DELETE", "/dnc/0912345602")[0] == 200


def test_per_contact_results_export(worker: WorkerProc, browser, tmp_path) -> None:
    """A list uploaded from the page; the campaign's "Results (CSV)" link downloads every contact with its
    state, attempts and outcome, then the list's columns (a formula made inert)."""
    browser.expect(r"/console/campaigns .* 401")
    browser.login(f"http://127.0.0.1:{worker.http_port}/console/campaigns", "mai", PASSWORD)
    browser.wait_text("#campaigns", "debt_reminder_demo")
    browser.find("#upload-campaign").send_keys("Nhắc nợ")
    listing = tmp_path / "debts.csv"
    listing.write_text("phone,name,amount\n0912 000 001,An,=1+1\n0912 000 002,Bình,1500\n", encoding="utf-8")
    browser.find("#list-file").send_keys(str(listing))
    browser.find("#upload-send").click()
    browser.find("#upload-report", timeout=20)
    link = browser.find('tr[data-campaign="debt_reminder_demo"] a.campaign-results')
    assert link.get_attribute("download") == "debt_reminder_demo-results.csv"
    text = browser.driver.execute_async_script(
        "const done = arguments[1]; fetch(arguments[0]).then((r) => r.text()).then(done);", link.get_attribute("href"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[:8] == ["phone", "state", "attempts", "last_outcome", "last_at", "next_at", "list", "line"]
    assert [(r["phone"], r["state"], r["attempts"], r["name"], r["amount"]) for r in rows] == [
        ("+84912000001", "pending", "0", "An", "'=1+1"), ("+84912000002", "pending", "0", "Bình", "1500")], text
    browser.shot("results-link")


def test_a_list_recycled_reset_and_deleted(worker: WorkerProc, browser, tmp_path) -> None:
    """A list uploaded from the page shows in the campaign's lists; Recycle dials again only the contact that ran
    out of attempts, Reset every contact of the list, Delete (confirmed) removes its contacts and the list."""
    keys = DialerKeys("cc:")
    cid, numbers = "debt_reminder_demo", ["+84912000101", "+84912000102", "+84912000103"]
    browser.expect(r"/console/campaigns .* 401")
    browser.login(f"http://127.0.0.1:{worker.http_port}/console/campaigns", "mai", PASSWORD)
    browser.wait_text("#campaigns", cid)
    browser.find("#upload-campaign").send_keys("Nhắc nợ")
    listing = tmp_path / "recycle.csv"
    listing.write_text("phone\n" + "\n".join(numbers) + "\n", encoding="utf-8")
    browser.find("#list-file").send_keys(str(listing))
    browser.find("#upload-send").click()
    browser.find("#upload-report", timeout=20)
    list_id = worker.http("GET", f"/campaigns/{cid}/lists")[1]["lists"][-1]["list_id"]
    row = f'#lists tr[data-list="{list_id}"]'
    r = redis.Redis.from_url(worker.redis_url, decode_responses=True)
    try:
        r.hset(keys.contact(cid, numbers[0]), mapping={"state": "exhausted", "attempts": 3})
        r.zrem(keys.due(cid), numbers[0])
        r.hset(keys.contact(cid, numbers[1]), mapping={"state": "done", "attempts": 1})
        r.zrem(keys.due(cid), numbers[1])
        browser.find(f"{row} button.list-recycle").click()
        browser.wait_text("#list-status", "Contacts recycled: 1")
        assert [r.hget(keys.contact(cid, n), "state") for n in numbers] == ["pending", "done", "pending"]
        assert r.hget(keys.contact(cid, numbers[0]), "attempts") == "0"
        assert r.zscore(keys.due(cid), numbers[0]) is not None and r.zscore(keys.due(cid), numbers[1]) is None
        browser.find(f"{row} button.list-reset").click()
        browser.wait_text("#list-status", "Contacts to dial again: 3")
        assert [r.hget(keys.contact(cid, n), "state") for n in numbers] == ["pending"] * 3
        assert all(r.zscore(keys.due(cid), n) is not None for n in numbers)
        browser.find(f"{row} button.list-delete").click()
        browser.shot("list-delete-confirm")
        browser.find(f"{row} button.list-delete-confirm").click()
        browser.wait_text("#list-status", "Contacts deleted: 3")
        assert not any(r.exists(keys.contact(cid, n)) for n in numbers)
        assert not any(r.zscore(keys.due(cid), n) is not None for n in numbers)
    finally:
        r.close()
    assert list_id not in [x["list_id"] for x in worker.http("GET", f"/campaigns/{cid}/lists")[1]["lists"]]
    assert not browser.driver.find_elements("css selector", row)


def test_an_agent_may_not_open_the_campaigns_page(worker: WorkerProc, browser) -> None:
    browser.expect(r"/console .* 401")
    browser.expect(r"/console/campaigns .* 403")
    browser.login(f"http://127.0.0.1:{worker.http_port}/console", "ana", PASSWORD)
    assert not browser.driver.find_elements("css selector", "#link-campaigns")
    browser.get(f"http://127.0.0.1:{worker.http_port}/console/campaigns")
    assert browser.text("#message h1") == "Not allowed"
