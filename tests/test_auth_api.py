"""HTTP authentication on a real worker: a supervisor logs in with a browser cookie, an agent works its own
desk and nobody else's, a bot uses an API token until an admin revokes it, a guesser is throttled, a foreign
page cannot ride the cookie (CSRF), and the audit log says who did what."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from worker_proc import METRICS_TOKEN, WorkerProc, admin_token, api_user, flush, new_worker

from callcenter.auth.keys import AuthKeys
from callcenter.redisconn import connect, connect_sync

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]

PASSWORD = "test password 1"      # api_user's


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> WorkerProc:
    tmp = tmp_path_factory.mktemp("auth")
    flush(redis_server.url)   # the module owns the session's database
    w = new_worker(tmp, redis_server.url)
    w.start()
    yield w
    w.stop()


@pytest.fixture(autouse=True)
def no_failed_logins(worker: WorkerProc):
    """Every test logs in from 127.0.0.1: start each with no failures counted against it."""
    c = connect_sync(worker.redis_url)
    for key in c.scan_iter(AuthKeys().fail_address("*")):
        c.delete(key)
    for key in c.scan_iter(AuthKeys().fail_user("*")):
        c.delete(key)
    c.close()
    yield


def origin(w: WorkerProc) -> str:
    return f"http://127.0.0.1:{w.http_port}"


def raw(w: WorkerProc, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
        data: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    """(status, headers, decoded body) with exactly the headers given (no credentials added)."""
    payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    if payload is None and method in ("POST", "PUT", "PATCH", "DELETE"):
        payload = b""
    req = urllib.request.Request(f"http://127.0.0.1:{w.http_port}{path}", data=payload, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
            return resp.status, dict(resp.headers), json.loads(text) if "json" in resp.headers["content-type"] \
                else text.decode()
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, dict(exc.headers), json.loads(text)
        except ValueError:
            return exc.code, dict(exc.headers), text.decode()


def login(w: WorkerProc, user: str, password: str = PASSWORD) -> tuple[int, dict[str, str], Any]:
    return raw(w, "POST", "/auth/login", {"user": user, "password": password},
               {"content-type": "application/json", "origin": origin(w)})


def session(w: WorkerProc, user: str) -> str:
    status, headers, body = login(w, user)
    assert status == 200, body
    return headers["Set-Cookie"].split(";")[0]          # "cc_session=..."


def browser(w: WorkerProc, cookie: str, **extra: str) -> dict[str, str]:
    """Headers a page served by the worker would send: its cookie, JSON, its own origin."""
    return {"cookie": cookie, "content-type": "application/json", "origin": origin(w), **extra}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


def test_login_sets_a_strict_http_only_cookie_and_logout_ends_it(worker: WorkerProc) -> None:
    api_user(worker.redis_url, "sup1", ["supervisor"])
    status, headers, body = login(worker, "sup1")
    assert status == 200 and body == {"user": "sup1", "roles": ["supervisor"], "agent": None}
    cookie = headers["Set-Cookie"]
    flags = [f.strip() for f in cookie.split(";")]
    assert flags[0].startswith("cc_session=") and len(flags[0]) > 40
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(flags)
    jar = flags[0]
    status, _, me = raw(worker, "GET", "/auth/me", headers={"cookie": jar})
    assert status == 200 and me == {"user": "sup1", "roles": ["supervisor"], "agent": None, "via": "session"}
    assert raw(worker, "GET", "/agents", headers={"cookie": jar})[0] == 200
    status, headers, _ = raw(worker, "POST", "/auth/logout", {}, browser(worker, jar))
    assert status == 200 and "Max-Age=0" in headers["Set-Cookie"]
    status, headers, body = raw(worker, "GET", "/auth/me", headers={"cookie": jar})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_password_and_unknown_user_get_the_same_answer(worker: WorkerProc) -> None:
    api_user(worker.redis_url, "sup2", ["supervisor"])
    wrong = login(worker, "sup2", "not the password")
    unknown = login(worker, "nobody-here", "not the password")
    assert wrong[0] == unknown[0] == 401
    assert wrong[2] == unknown[2] == {"error": "wrong user name or password"}
    # a login from a foreign page is refused (login CSRF), and so is a form post
    assert raw(worker, "POST", "/auth/login", {"user": "sup2", "password": PASSWORD},
               {"content-type": "application/json", "origin": "https://evil.example"})[0] == 403
    assert raw(worker, "POST", "/auth/login", data=b"user=sup2&password=x",
               headers={"content-type": "application/x-www-form-urlencoded"})[0] == 415


def test_failed_logins_are_throttled_per_user_and_per_address(worker: WorkerProc) -> None:
    api_user(worker.redis_url, "sup3", ["supervisor"])
    for _ in range(5):
        assert login(worker, "sup3", "guess")[0] == 401
    status, headers, body = login(worker, "sup3")        # even the right password, until the window ends
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 300, body
    # per address: five failures spread over names, then a good login of a fourth user from there
    c = connect_sync(worker.redis_url)
    c.delete(AuthKeys().fail_address("127.0.0.1"))
    c.close()
    api_user(worker.redis_url, "sup4", ["supervisor"])
    for name in ("x1", "x2", "x3", "x4", "x5"):
        assert login(worker, name, "guess")[0] == 401
    assert login(worker, "sup4")[0] == 429
    _, _, text = raw(worker, "GET", "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert 'callcenter_auth_logins_total{result="throttled"}' in text
    assert 'callcenter_auth_logins_total{result="failed"}' in text


def test_agent_acts_on_itself_and_not_on_another_agent(worker: WorkerProc) -> None:
    token = api_user(worker.redis_url, "agent1001", ["agent"], agent="1001")
    h = bearer(token)
    assert raw(worker, "POST", "/agents/1001/login", {"ready": False}, h)[0] == 200
    assert raw(worker, "POST", "/agents/1001/pause", {"reason": "lunch"}, h)[0] == 200
    assert raw(worker, "GET", "/agents/1001", headers=h)[0] == 200
    status, _, body = raw(worker, "POST", "/agents/1002/logout", {}, h)
    assert status == 403 and "own agent id" in body["error"]
    assert raw(worker, "GET", "/agents/1002", headers=h)[0] == 403
    assert raw(worker, "GET", "/agents", headers=h)[0] == 403                    # supervisors' view
    assert raw(worker, "PUT", "/agents/1001/skills", {"sales": 10}, h)[0] == 403  # not on itself either
    assert raw(worker, "GET", "/campaigns/telesales_demo/preview?agent=1002", headers=h)[0] == 403
    assert raw(worker, "GET", "/campaigns/telesales_demo/preview", headers=h)[0] == 403
    assert raw(worker, "PUT", "/admin/rules", {}, h)[0] == 403
    # a supervisor acts on anyone
    sup = bearer(api_user(worker.redis_url, "sup5", ["supervisor"]))
    assert raw(worker, "POST", "/agents/1001/logout", {}, sup)[0] == 200


def test_agent_reads_and_disposes_only_the_contacts_assigned_to_it(worker: WorkerProc) -> None:
    """An agent may not page through a campaign's list by guessing numbers: only the contact it took in
    preview (or was connected to) is readable and disposable; a campaign manager reaches any."""
    import asyncio

    from callcenter.dialer import assignment
    from callcenter.dialer.keys import DialerKeys

    csv = b"sdt;ho_ten\n0912 345 601;Khach A\n0912 345 602;Khach B\n"
    req = urllib.request.Request(f"http://127.0.0.1:{worker.http_port}/campaigns/debt_reminder_demo/lists",
                                 data=csv, method="POST", headers={"content-type": "text/csv",
                                                                   **bearer(admin_token(worker.redis_url))})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201

    async def assign() -> None:      # what the dialer does when agent 1001 takes +84912345601 in preview
        r = connect(worker.redis_url)
        await assignment.assign(r, DialerKeys("cc:"), "debt_reminder_demo", "+84912345601", "1001")
        await r.aclose()

    asyncio.run(assign())
    h = bearer(api_user(worker.redis_url, "agent1001c", ["agent"], agent="1001"))
    base = "/campaigns/debt_reminder_demo/contacts"
    status, _, body = raw(worker, "GET", f"{base}/0912345601?agent=1001", headers=h)
    assert status == 200 and body["data"] == {"ho_ten": "Khach A"}, body
    status, _, body = raw(worker, "GET", f"{base}/0912345602?agent=1001", headers=h)
    assert status == 403 and "not assigned" in body["error"], body
    status, _, _ = raw(worker, "POST", f"{base}/0912345602/disposition?agent=1001", {"disposition": "completed"},
                       {"content-type": "application/json", **h})
    assert status == 403
    mgr = bearer(api_user(worker.redis_url, "mgr-c", ["campaign_manager"]))
    assert raw(worker, "GET", f"{base}/0912345602", headers=mgr)[0] == 200


def test_api_token_works_until_revoked(worker: WorkerProc) -> None:
    api_user(worker.redis_url, "bot", ["supervisor"])
    status, body = worker.http("POST", "/admin/users/bot/tokens", {"label": "wallboard screen"})
    assert status == 201 and body["token"].startswith("cc_") and body["label"] == "wallboard screen"
    token, tid = body["token"], body["id"]
    assert raw(worker, "GET", "/wallboard", headers=bearer(token))[0] == 200
    listed = worker.http("GET", "/admin/users/bot/tokens")[1]["tokens"]
    assert tid in [t["id"] for t in listed] and all("token" not in t for t in listed)
    c = connect_sync(worker.redis_url)
    assert not [k for k in c.scan_iter("cc:auth:*") if token in k]       # only its hash is kept
    assert not any(token in v for k in c.scan_iter("cc:auth:t:*") for v in c.hgetall(k).values())
    c.close()
    assert worker.http("DELETE", f"/admin/users/bot/tokens/{tid}")[0] == 200
    assert raw(worker, "GET", "/wallboard", headers=bearer(token))[0] == 401
    assert raw(worker, "GET", "/wallboard", headers=bearer("cc_forged"))[0] == 401


def test_disabled_user_loses_sessions_and_tokens(worker: WorkerProc) -> None:
    token = api_user(worker.redis_url, "sup6", ["supervisor"])
    jar = session(worker, "sup6")
    assert raw(worker, "GET", "/agents", headers={"cookie": jar})[0] == 200
    status, body = worker.http("PATCH", "/admin/users/sup6", {"disabled": True})
    assert status == 200 and body["disabled"] is True
    assert raw(worker, "GET", "/agents", headers={"cookie": jar})[0] == 401
    assert raw(worker, "GET", "/agents", headers=bearer(token))[0] == 401
    assert login(worker, "sup6")[2] == {"error": "wrong user name or password"}
    worker.http("PATCH", "/admin/users/sup6", {"disabled": False})
    assert raw(worker, "GET", "/agents", headers=bearer(token))[0] == 200       # tokens come back, sessions not
    assert raw(worker, "GET", "/agents", headers={"cookie": jar})[0] == 401


def test_csrf_cookie_changes_need_json_and_an_allowed_origin(worker: WorkerProc) -> None:
    token = api_user(worker.redis_url, "sup7", ["supervisor"])
    jar = session(worker, "sup7")
    path = "/agents/1003/login"
    status, _, body = raw(worker, "POST", path, {}, {"cookie": jar, "content-type": "application/json"})
    assert status == 403 and "Origin" in body["error"]                           # no Origin, no Referer
    status, _, body = raw(worker, "POST", path, {}, browser(worker, jar, origin="https://evil.example"))
    assert status == 403 and "allowed_origins" in body["error"]
    status, _, body = raw(worker, "POST", path, data=b"{}", headers=browser(worker, jar, **{
        "content-type": "text/plain"}))
    assert status == 403 and "Content-Type" in body["error"]
    referer = {"cookie": jar, "content-type": "application/json", "referer": origin(worker) + "/board.html"}
    assert raw(worker, "POST", path, {}, referer)[0] == 200
    assert raw(worker, "POST", "/agents/1003/logout", {}, browser(worker, jar))[0] == 200
    # a bearer token is not sent by browsers on their own: no Origin needed
    assert raw(worker, "POST", "/agents/1003/logout", {}, bearer(token))[0] == 200
    # reads with the cookie need no Origin
    assert raw(worker, "GET", "/agents/1003", headers={"cookie": jar})[0] == 200


def test_audit_log_says_who_did_what_from_where(worker: WorkerProc) -> None:
    since = time.time() - 1
    token = api_user(worker.redis_url, "mgr1", ["campaign_manager"])
    assert raw(worker, "POST", "/dnc", {"number": "0912 345 678"}, bearer(token))[0] == 201
    assert raw(worker, "POST", "/campaigns/telesales_demo/pause", {}, bearer(token))[0] == 200
    assert raw(worker, "GET", "/campaigns/telesales_demo/contacts/0912345678", headers=bearer(token))[0] == 404
    assert raw(worker, "POST", "/agents/1001/login", {}, bearer(token))[0] == 403   # refused: audited too
    status, body = worker.http("GET", f"/admin/audit?user=mgr1&since={since}")
    assert status == 200
    entries = body["entries"]
    by_action = {e["action"]: e for e in entries}
    dnc = by_action["POST /dnc"]
    assert dnc["roles"] == ["campaign_manager"] and dnc["address"] == "127.0.0.1" and dnc["status"] == 201
    assert "0912345678" not in json.dumps(entries) and dnc["target"]["number"].endswith("678")
    assert by_action["POST /campaigns/{id}/pause"]["target"] == {"id": "telesales_demo"}
    contact = by_action["GET /campaigns/{id}/contacts/{number}"]             # a read of contact data
    assert contact["status"] == 404 and contact["target"]["number"] != "0912345678"
    assert by_action["POST /agents/{id}/login"]["status"] == 403
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    assert all(since <= e["at"] <= time.time() + 1 for e in entries)
    only = worker.http("GET", f"/admin/audit?user=mgr1&action=/dnc&since={since}")[1]["entries"]
    assert [e["action"] for e in only] == ["POST /dnc"]
    assert worker.http("GET", "/admin/audit?limit=1")[1]["entries"].__len__() == 1
    logins = worker.http("GET", "/admin/audit?action=login&limit=500")[1]["entries"]
    assert {e["status"] for e in logins} >= {200, 401}
    assert raw(worker, "GET", "/admin/audit", headers=bearer(token))[0] == 403      # admins only


def test_admin_manages_users(worker: WorkerProc) -> None:
    status, body = worker.http("POST", "/admin/users", {"name": "lan", "roles": ["agent"], "agent": "1004",
                                                        "password": "lan's password"})
    assert status == 201 and body["roles"] == ["agent"] and body["agent"] == "1004"
    assert worker.http("POST", "/admin/users", {"name": "lan", "roles": ["agent"], "agent": "1004",
                                                "password": "lan's password"})[0] == 400     # exists
    assert worker.http("POST", "/admin/users", {"name": "x", "roles": ["root"], "password": "long enough"})[0] == 400
    assert worker.http("POST", "/admin/users", {"name": "y", "roles": ["agent"], "password": "long enough"})[0] == 400
    assert worker.http("POST", "/admin/users", {"name": "z", "roles": ["admin"], "password": "short"})[0] == 400
    users = {u["name"]: u for u in worker.http("GET", "/admin/users")[1]["users"]}
    assert "lan" in users and all("password" not in u for u in users.values())
    assert login(worker, "lan", "lan's password")[0] == 200
    worker.http("PATCH", "/admin/users/lan", {"roles": ["agent", "supervisor"], "password": "a new password"})
    assert login(worker, "lan", "lan's password")[0] == 401
    status, _, body = login(worker, "lan", "a new password")
    assert status == 200 and body["roles"] == ["agent", "supervisor"]
    assert worker.http("DELETE", "/admin/users/lan")[0] == 200
    assert worker.http("GET", "/admin/users/lan")[0] == 404
    assert login(worker, "lan", "a new password")[0] == 401


def test_metrics_need_the_metrics_token_or_an_admin(worker: WorkerProc) -> None:
    assert raw(worker, "GET", "/metrics")[0] == 401
    assert raw(worker, "GET", "/metrics", headers={"authorization": "Bearer wrong"})[0] == 401
    status, headers, text = raw(worker, "GET", "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200 and "callcenter_auth_logins_total" in text
    agent = api_user(worker.redis_url, "agent1002", ["agent"], agent="1002")
    assert raw(worker, "GET", "/metrics", headers=bearer(agent))[0] == 401
    assert raw(worker, "GET", "/metrics", headers=bearer(worker_admin(worker)))[0] == 200


def worker_admin(w: WorkerProc) -> str:
    from worker_proc import admin_token

    return admin_token(w.redis_url)


def test_prometheus_config_sends_a_token() -> None:
    text = (Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "prometheus.yml").read_text()
    assert "credentials_file" in text
