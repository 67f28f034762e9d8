"""A real browser for the console's tests: Debian's chromium, headless, driven by selenium through
Debian's chromedriver (scripts/setup.sh --test installs both; nothing is downloaded).

Each Browser has a fresh profile, a 1366x768 window and keeps the page's console log: ``errors()`` is every
error the pages logged (script errors, console.error, failed loads) but those a test said it expects
(``expect(r"/console/agent/1002 .* 403")``); the ``browser`` fixture (conftest.py) fails a test that left
any. ``shot(name)`` saves a screenshot under test-artifacts/screenshots/ (gitignored): every test saves
one per page it looks at, and one at its end.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repo import REPO
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = REPO / "test-artifacts" / "screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1366,768")


def missing_reason() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is not installed (scripts/setup.sh --test installs chromium and chromium-driver)"
    return None


class Browser:
    def __init__(self, name: str, lang: str = "en", flags: tuple[str, ...] = ()) -> None:
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        self.profile = Path(tempfile.mkdtemp(prefix="cc-chromium-"))
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in (*FLAGS, *flags, f"--user-data-dir={self.profile}", f"--lang={lang}"):
            opts.add_argument(flag)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
        self.driver.set_window_size(1366, 768)
        self.expected: list[re.Pattern[str]] = []
        self.logged: list[dict[str, Any]] = []
        self.shots = 0
        for old in SHOTS.glob(f"{self.name}-*.png"):     # a previous run's: the numbers start again
            old.unlink()

    # -- pages ---------------------------------------------------------------------------------------

    def get(self, url: str) -> None:
        self.driver.get(url)

    def find(self, css: str, timeout: float = 10.0) -> WebElement:
        """The element matching ``css`` once it is there (pages render after their scripts load)."""
        return self.wait(lambda: self._first(css), timeout, f"no {css!r} on {self.driver.current_url}")

    def text(self, css: str, timeout: float = 10.0) -> str:
        return self.find(css, timeout).text

    def wait_text(self, css: str, want: str | Callable[[str], bool], timeout: float = 10.0) -> str:
        """The text of ``css`` once it contains ``want`` (or ``want(text)`` holds)."""
        ok = want if callable(want) else (lambda text: want in text)

        def check() -> str | None:
            el = self._first(css)
            return el.text if el is not None and ok(el.text) else None
        return self.wait(check, timeout, f"{css!r} never showed {want!r} on {self.driver.current_url}")

    def _first(self, css: str) -> WebElement | None:
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else None

    def wait(self, probe: Callable[[], Any], timeout: float, message: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                self.shot("timeout")
                raise AssertionError(f"{message} (screenshot {self.name}-timeout)")
            time.sleep(0.05)

    def login(self, base: str, user: str, password: str) -> None:
        """Sign in through the sign-in page of whatever page ``base`` is (it answers one without a session)."""
        self.get(base)
        self.find("#user").send_keys(user)
        self.find("#password").send_keys(password)
        self.find("#login-submit").click()
        self.wait(lambda: not self._first("#login-form"), 10, "still on the sign-in page")

    def ready_at_desk(self, base: str, agent: str, user: str, password: str) -> None:
        """``user`` signed in at agent ``agent``'s desk (through the sign-in page the desk answers first) and
        ready: logged in to its queues if it was not. ``base``: the worker's http://host:port."""
        self.expect(rf"/console/agent/{agent} .* 401")
        self.login(f"{base}/console/agent/{agent}", user, password)
        state = self.wait(lambda: self.find("#agent-state").get_attribute("data-state") not in ("loading", None)
                          and self.find("#agent-state").get_attribute("data-state"), 10, "the agent's state")
        if state == "logged_out":
            self.find("#btn-login").click()
        self.wait_text("#agent-state", "Ready")

    def fits(self) -> bool:
        """The page fits the window's width (no sideways scrolling at 1366x768)."""
        return bool(self.driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"))

    def keys(self, *keys: str) -> None:
        """Keys pressed on whatever has the focus (Keys.TAB, Keys.ENTER, text)."""
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(*keys).perform()

    def focused(self) -> str:
        """The id of the element that has the keyboard focus."""
        return str(self.driver.execute_script("return document.activeElement && document.activeElement.id"))

    # -- evidence ------------------------------------------------------------------------------------

    def shot(self, label: str) -> Path:
        self.shots += 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{self.name}-{self.shots:02d}-{label}.png"
        self.driver.save_screenshot(str(path))
        return path

    def expect(self, pattern: str) -> None:
        """An error the page will log and the test expects (a refused request it provokes)."""
        self.expected.append(re.compile(pattern))

    def errors(self) -> list[str]:
        try:
            self.logged += self.driver.get_log("browser")
        except WebDriverException:
            pass
        return [e["message"] for e in self.logged if e.get("level") == "SEVERE"
                and not any(p.search(e["message"]) for p in self.expected)]

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
