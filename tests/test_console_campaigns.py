"""The campaign manager's page in a real browser (tests/browser.py) against a real worker: a messy CSV list
uploaded through the page shows its progress bar and then the per-row report (accepted, already there,
rejected with line and reason, the rejected rows as a CSV link); the contacts are in the campaign."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from worker_proc import WorkerProc, api_user, flush, new_worker

from callcenter.auth.roles import AGENT, CAMPAIGN_MANAGER

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
    tmp = tmp_path_factory.mktemp("console_campaigns")
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url)
    w.start()
    api_user(w.redis_url, "mai", [CAMPAIGN_MANAGER])
    api_user(w.redis_url, "ana", [AGENT], agent="1001")
    yield w
    assert w.stop() == 0, w.tail()


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


def test_an_agent_may_not_open_the_campaigns_page(worker: WorkerProc, browser) -> None:
    browser.expect(r"/console .* 401")
    browser.expect(r"/console/campaigns .* 403")
    browser.login(f"http://127.0.0.1:{worker.http_port}/console", "ana", PASSWORD)
    assert not browser.driver.find_elements("css selector", "#link-campaigns")
    browser.get(f"http://127.0.0.1:{worker.http_port}/console/campaigns")
    assert browser.text("#message h1") == "Not allowed"
