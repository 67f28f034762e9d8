"""GET /campaigns/{id}/contacts/{number} as the demo serves it.

The demo's setup, piece by piece: the shipped callcenter.yaml (no Redis URL, so an embedded redis-server
on a unix socket, as `callcenter demo` starts), its campaigns, the Redis client every process makes
(callcenter.redisconn: replies decoded to str), the demo's API users (callcenter.demo.ensure_demo_users),
and the campaign routes behind the guard with the login route, as the worker mounts them. The endpoint
once answered 500 there: the handler decoded bytes that the worker's client had already decoded.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from repo import REPO

from callcenter.api import auth as auth_api
from callcenter.api import campaigns as campaigns_api
from callcenter.api.guard import Guard, default_origins
from callcenter.api.http import HttpRouter, Request, Response
from callcenter.auth import Auth
from callcenter.config import Config, load_config
from callcenter.demo import ensure_demo_users
from callcenter.dialer import assignment
from callcenter.dialer.campaign import load_campaigns
from callcenter.dialer.keys import DialerKeys
from callcenter.redis_server import EmbeddedRedis
from callcenter.redisconn import connect

CSV = "sdt;ho_ten;amount_due\n0912 345 678;Nguyễn A;100\n0912 345 679;Trần B;200\n".encode()


async def demo_contact_reads(cfg: Config, url: str, tmp: Path) -> dict[str, Any]:
    client = connect(url)      # what the worker makes of cfg.redis (the demo: the embedded server's URL)
    try:
        h = cfg.http
        auth = Auth.connect(client, cfg.redis.prefix, h.session_idle_seconds, h.session_max_seconds,
                            h.login_failures, h.login_window_seconds, h.audit_max_entries)
        guard = Guard(auth, frozenset(h.allowed_origins) or default_origins(h.bind, h.port))
        api = HttpRouter(guard=guard)
        auth_api.install_routes(api, auth, guard)
        campaigns_api.install_routes(api, client, load_campaigns(cfg.campaigns), cfg.redis.prefix)
        passwords = await ensure_demo_users(auth, tmp / "demo-users.txt", f"http://{h.bind}:{h.port}")
        origin = f"http://{h.bind}:{h.port}"      # a page of the worker's own (CSRF check of cookie changes)
        assert origin in guard.allowed_origins

        async def send(method: str, path: str, cookie: str = "", body: bytes = b"",
                       content_type: str = "application/json") -> Response:
            """One request through the router's guard, handler and audit (twisted's transport aside)."""
            target, _, qs = path.partition("?")
            route, params = api.match(method, target)
            query = {k: [v] for k, _, v in (p.partition("=") for p in qs.split("&") if p)}
            headers = {"content-type": content_type, "origin": origin}
            if cookie:
                headers["cookie"] = cookie
            req = Request(method, target, params, query, headers, body, remote="127.0.0.1")
            return await api._serve(route, req)

        async def login(name: str) -> str:
            credentials = {"user": name, "password": passwords[name]}
            resp = await send("POST", "/auth/login", body=json.dumps(credentials).encode())
            assert resp.status == 200, resp.body
            return resp.headers["Set-Cookie"].split(";")[0]

        manager = await login("manager")
        upload = await send("POST", "/campaigns/telesales_demo/lists", manager, CSV, "text/csv")
        assert upload.status == 201 and upload.body["accepted"] == 2, upload.body
        # agent 1001 took the second contact (preview or a connected call)
        keys = DialerKeys(cfg.redis.prefix)
        await assignment.assign(client, keys, "telesales_demo", "+84912345679", "1001")
        agent = await login("agent1001")
        base = "/campaigns/telesales_demo/contacts"
        return {
            "manager": await send("GET", f"{base}/0912345678", manager),
            "manager_unknown": await send("GET", f"{base}/0912000000", manager),
            "agent_own": await send("GET", f"{base}/0912345679?agent=1001", agent),
            "agent_other": await send("GET", f"{base}/0912345678?agent=1001", agent),
            "anonymous": await send("GET", f"{base}/0912345678"),
        }
    finally:
        await client.aclose()


def test_contact_endpoint_on_the_demo_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    cfg = load_config(REPO / "callcenter.yaml")
    assert cfg.redis.url is None          # the demo's Redis: embedded, on a unix socket
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        out = asyncio.run(demo_contact_reads(cfg, server.url, tmp_path))
    finally:
        server.stop()
    manager = out["manager"]
    assert manager.status == 200, manager.body
    assert manager.body["data"] == {"ho_ten": "Nguyễn A", "amount_due": "100"}
    assert manager.body["state"] == "pending" and "lease_owner" not in manager.body
    assert out["manager_unknown"].status == 404, out["manager_unknown"].body
    assert out["agent_own"].status == 200, out["agent_own"].body
    assert out["agent_own"].body["data"]["ho_ten"] == "Trần B" and out["agent_own"].body["agent"] == "1001"
    assert out["agent_other"].status == 403, out["agent_other"].body
    assert out["anonymous"].status == 401
