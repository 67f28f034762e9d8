"""The http auth settings on a real worker: a short idle time ends a browser session over HTTP, and
`http.auth: false` (allowed on loopback only) serves the API without credentials."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from worker_proc import METRICS_TOKEN, api_user, new_worker

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]


def with_http(w, extra: str) -> None:
    w.write_config()
    text = w.config.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("http:"))
    w.config.write_text(text.replace(line, line.rstrip("}") + f", {extra}}}"))


def test_idle_session_ends_over_http(tmp_path: Path, redis_url: str) -> None:
    w = new_worker(tmp_path, redis_url)
    with_http(w, "session_idle_seconds: 2, session_max_seconds: 4")
    api_user(redis_url, "sup", ["supervisor"])
    w.start()
    try:
        login = urllib.request.Request(f"http://127.0.0.1:{w.http_port}/auth/login", method="POST",
                                       data=json.dumps({"user": "sup", "password": "test password 1"}).encode(),
                                       headers={"content-type": "application/json"})
        with urllib.request.urlopen(login, timeout=5) as resp:
            cookie = resp.headers["Set-Cookie"]
        assert "Max-Age=4" in cookie
        jar = {"cookie": cookie.split(";")[0]}
        for _ in range(3):                                     # used every second: stays
            time.sleep(1)
            assert w.http("GET", "/auth/me", token=None, headers=jar)[0] == 200
        time.sleep(1.5)                                        # past the absolute end (4 s after login)
        assert w.http("GET", "/auth/me", token=None, headers=jar)[0] == 401
        with urllib.request.urlopen(login, timeout=5) as resp:
            jar = {"cookie": resp.headers["Set-Cookie"].split(";")[0]}
        time.sleep(2.5)                                        # idle longer than 2 s
        assert w.http("GET", "/agents", token=None, headers=jar)[0] == 401
    finally:
        w.stop()


def test_auth_off_on_loopback_serves_without_credentials(tmp_path: Path, redis_url: str) -> None:
    w = new_worker(tmp_path, redis_url)
    with_http(w, "auth: false")
    w.start()
    try:
        assert w.http("GET", "/agents", token=None)[0] == 200
        assert w.http("POST", "/agents/1001/login", {}, token=None)[0] == 200
        assert w.http("GET", "/metrics", token=None)[0] == 401          # a configured metrics token still counts
        assert w.http("GET", "/metrics", token=METRICS_TOKEN)[0] == 200
        assert w.http("POST", "/auth/login", {"user": "x", "password": "y"}, token=None)[0] == 404
        assert any(e.get("event", "").startswith("http.auth is off") for e in w.logs())
    finally:
        w.stop()
