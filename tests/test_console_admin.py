"""The console's admin page in a real browser (tests/browser.py) against a real worker: an admin creates a user
and sees it listed, gives it another role, disables it and resets its password; edits the routing rules in the
page, where the validator's file:line errors are shown at their lines, then applies a fixed version; and finds that
apply in the audit log. Agents and supervisors get the "not allowed" page. Screenshots in
test-artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.keys import Keys
from worker_proc import WorkerProc, users_worker

from callcenter.auth.roles import ADMIN, AGENT, SUPERVISOR

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

PASSWORD = "test password 1"      # worker_proc.api_user's
SET_TEXT = """const area = document.getElementById('rules-text');
area.value = arguments[0];
area.dispatchEvent(new Event('input', {bubbles: true}));"""


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[WorkerProc]:
    w = users_worker(tmp_path_factory.mktemp("console-admin"), redis_server.url,
                     {"ada": ([ADMIN], None), "ana": ([AGENT], "1001"), "sam": ([SUPERVISOR], None)})
    yield w
    assert w.stop() == 0, w.tail()


def url(w: WorkerProc, path: str) -> str:
    return f"http://127.0.0.1:{w.http_port}{path}"


def texts(browser, css: str) -> list[str]:
    """The text of every element matching ``css``, read at once (the table may be rendered again meanwhile)."""
    found: list[str] = browser.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), (e) => e.innerText)", css)
    return found


def test_an_admin_creates_a_user_and_sees_it_listed(worker: WorkerProc, browser) -> None:
    browser.expect(r"/console .* 401")
    browser.login(url(worker, "/console"), "ada", PASSWORD)
    browser.find("#link-admin").click()
    browser.find("#users tr[data-user='sam']")
    assert browser.fits()
    browser.shot("admin")

    # the keyboard alone: the name, Tab through the roles (Space ticks one), the agent id, the password, Enter
    browser.find("#u-name").click()
    browser.keys("newbie")
    while browser.focused() != "u-role-agent":
        browser.keys(Keys.TAB)
    browser.keys(Keys.SPACE)
    browser.find("#u-agent").send_keys("1004")
    browser.find("#u-password").send_keys("a new password 1", Keys.ENTER)
    browser.wait_text("#user-note", "User created")
    row = "#users tr[data-user='newbie']"
    assert browser.wait_text(f"{row} .roles", "Agent") == "Agent"
    status, user = worker.http("GET", "/admin/users/newbie")
    assert status == 200 and user["roles"] == ["agent"] and user["agent"] == "1004" and not user["disabled"]
    browser.shot("user-created")

    # more roles and the queues it may watch, then disabled
    browser.find(f"{row} .edit").click()
    browser.wait_text("#user-form h3", "newbie")
    browser.find("#u-role-supervisor").click()
    browser.find("#u-queues").send_keys("support, sales")
    browser.find("#u-submit").click()
    browser.wait_text(f"{row} .roles", "Supervisor")
    user = worker.http("GET", "/admin/users/newbie")[1]
    assert user["roles"] == ["agent", "supervisor"] and user["queues"] == ["sales", "support"]
    browser.find(f"{row} .toggle").click()
    browser.wait_text(f"{row} .account", "Disabled")
    assert worker.http("GET", "/admin/users/newbie")[1]["disabled"] is True
    assert worker.http("POST", "/auth/login", {"user": "newbie", "password": "a new password 1"}, token=None)[0] == 401

    # enabled again with a password reset: the new one signs in, the old one no longer
    browser.find(f"{row} .edit").click()
    browser.wait_text("#user-form h3", "newbie")
    browser.find("#u-disabled").click()
    browser.find("#u-password").send_keys("the reset password 2", Keys.ENTER)
    browser.wait_text(f"{row} .account", "Active")
    for password, status in (("a new password 1", 401), ("the reset password 2", 200)):
        answer = worker.http("POST", "/auth/login", {"user": "newbie", "password": password}, token=None)
        assert answer[0] == status, answer


def test_rules_errors_at_their_lines_then_a_fixed_version_applies_and_is_audited(worker: WorkerProc, browser) -> None:
    browser.expect(r"/console/admin .* 401")
    browser.expect(r"/admin/rules .* 400")            # the apply of the rules with an error
    browser.login(url(worker, "/console/admin"), "ada", PASSWORD)
    text = browser.wait(lambda: browser.find("#rules-text").get_attribute("value"), 10, "no rules text")
    assert browser.text("#rules-origin") == "The worker's file, in force"
    assert text == (worker.tmp / "routing_rules.yaml").read_text()
    lines = text.split("\n")
    at = lines.index("    strategy: fewest_calls") + 1
    at2 = lines.index("    max_length: 500") + 1
    bad = text.replace("strategy: fewest_calls", "strategy: dice").replace("max_length: 500", "max_length: lots")

    browser.driver.execute_script(SET_TEXT, bad)
    browser.find("#rules-validate").click()
    browser.wait(lambda: len(texts(browser, "#rules-errors li")) == 2, 10, "two errors")
    first, second = texts(browser, "#rules-errors li")
    assert first.startswith(f"Line {at} routing_rules.yaml:{at}: queues.support.strategy: expected one of"), first
    assert second.startswith(f"Line {at2} routing_rules.yaml:{at2}: queues.support.max_length: expected an integer")
    assert texts(browser, "#rules-lines .bad") == [str(at), str(at2)]    # the line numbers marked in the gutter
    assert len(browser.driver.find_elements("css selector", ".editor .mark")) == 2   # and the lines in the text
    caret = ("const a = document.getElementById('rules-text');"
             "return a.value.slice(0, a.selectionStart).split('\\n').length")
    assert browser.driver.execute_script(caret) == at                  # the caret on the first
    browser.driver.execute_script("document.getElementById('rules-h').scrollIntoView()")
    browser.shot("rules-errors")
    browser.find("#rules-errors li:nth-child(2) .goto").send_keys(Keys.ENTER)     # to the second, by the keyboard
    assert browser.driver.execute_script(caret) == at2 and browser.focused() == "rules-text"
    # apply refuses it (at its first error), and nothing changed
    browser.find("#rules-apply").click()
    browser.wait(lambda: len(texts(browser, "#rules-errors li")) == 1, 10, "the apply's error")
    assert texts(browser, "#rules-errors li")[0].startswith(f"Line {at} routing_rules.yaml:{at}: queues.support.strategy")
    assert worker.http("GET", "/admin/rules")[1]["queues"]["support"]["strategy"] == "fewest_calls"

    browser.driver.execute_script(SET_TEXT, text.replace("strategy: fewest_calls", "strategy: round_robin"))
    browser.find("#rules-validate").click()
    browser.wait_text("#rules-result", "Valid")
    assert not browser.driver.find_elements("css selector", "#rules-errors, #rules-lines .bad, .editor .mark")
    browser.find("#rules-apply").click()
    browser.wait_text("#rules-result", "Applied")
    assert worker.http("GET", "/admin/rules")[1]["queues"]["support"]["strategy"] == "round_robin"
    browser.shot("rules-applied")

    # the audit log shows the apply (reloaded after it), and filters by user and action
    browser.wait_text("#audit tbody", "PUT /admin/rules")
    first = texts(browser, "#audit tbody tr")[0]
    assert "ada" in first and "PUT /admin/rules" in first and "200" in first
    browser.find("#audit-action").send_keys("/admin/rules", Keys.ENTER)
    browser.wait(lambda: all("/admin/rules" in a for a in texts(browser, "#audit tbody .a-action")), 10, "filter")
    actions = texts(browser, "#audit tbody .a-action")
    assert actions == ["PUT /admin/rules", "POST /admin/rules/validate"] * 2, actions
    assert texts(browser, "#audit tbody .a-status") == ["200", "200", "400", "200"]     # the bad apply refused
    browser.find("#audit-user").send_keys("nobody", Keys.ENTER)
    browser.wait_text(".card:last-child", "No entries")
    browser.shot("audit")


def test_the_audit_log_pages(worker: WorkerProc, browser) -> None:
    for _ in range(30):          # 30 more entries than one page of 25
        assert worker.http("PATCH", "/admin/users/ana", {"agent": "1001"})[0] == 200
    browser.expect(r"/console/admin .* 401")
    browser.login(url(worker, "/console/admin"), "ada", PASSWORD)
    browser.find("#audit-action").send_keys("PATCH /admin/users", Keys.ENTER)
    browser.wait(lambda: len(texts(browser, "#audit tbody tr")) == 25, 10, "a page")
    first_page = texts(browser, "#audit tbody tr")
    browser.find("#audit-older").click()
    browser.wait(lambda: len(texts(browser, "#audit tbody tr")) < 25, 10, "the older page")
    older = texts(browser, "#audit tbody tr")
    # every entry once: the 30 of this test, and the first test's three edits when it ran
    assert len(older) in (5, 8) and not browser.find("#audit-older").is_enabled()
    assert sum("name=ana" in row for row in first_page + older) == 30          # none twice, none left out
    browser.find("#audit-newest").click()
    browser.wait(lambda: texts(browser, "#audit tbody tr") == first_page, 10, "the newest page again")


HOME_LINKS = "return Array.from(document.querySelectorAll('ul.pages a'), (a) => a.id)"


@pytest.mark.parametrize(("user", "refused", "links"), [
    ("ana", ("/console/admin", "/console/calls"), ["link-agent"]),
    ("sam", ("/console/admin",), ["link-wallboard", "link-calls"]),
])
def test_pages_not_for_the_user_answer_not_allowed(worker: WorkerProc, browser, user: str, refused: tuple[str, ...],
                                                   links: list[str]) -> None:
    """An agent may open neither page, a supervisor not the admin page: "not allowed" (403), and home
    links only the pages the user's roles open."""
    browser.expect(r"/console .* 401")
    browser.expect(r"/console/(admin|calls) .* 403")
    browser.login(url(worker, "/console"), user, PASSWORD)
    assert browser.wait(lambda: browser.driver.execute_script(HOME_LINKS), 10, "home links") == links
    for path in refused:
        browser.get(url(worker, path))
        assert browser.text("#message h1") == "Not allowed", path
        browser.shot(f"forbidden-{user}")


def test_the_admin_page_in_vietnamese(worker: WorkerProc, browser) -> None:
    browser.expect(r"/console/admin .* 401")
    browser.login(url(worker, "/console/admin"), "ada", PASSWORD)
    browser.find("#lang").send_keys("Tiếng Việt")
    browser.wait_text("#users-h", "Người dùng")
    assert browser.text("#rules-h") == "Quy tắc định tuyến" and browser.text("#audit-h") == "Nhật ký kiểm toán"
    # the rules an earlier test applied, else the file
    browser.wait_text("#rules-origin", lambda text: text.startswith(("Quy tắc đang áp dụng", "Tệp của máy chủ")))
    assert browser.fits()
    browser.shot("admin-vi")
    browser.find("#lang").send_keys("English")
    browser.wait_text("#users-h", "Users")
