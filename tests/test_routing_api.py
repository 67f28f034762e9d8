"""Agent and admin HTTP handlers (through the project's api.http.HttpRouter dispatch) on real Redis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from repo import REPO
from routing_helpers import Clock, rules_text

from callcenter.api import admin, agents
from callcenter.api.http import HttpRouter, Request, Response
from callcenter.redisconn import connect, connect_sync
from callcenter.routing import rules as R
from callcenter.routing.router import QueuedCall, Router


async def hit(router: HttpRouter, method: str, path: str, body: Any = None) -> Response:
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    route, params = router.match(method, path)    # the handler itself: auth is tests/test_auth_*.py's
    return await router._run(route.handler, Request(method, path, params, {}, {}, raw))


def test_agent_and_admin_api(redis_url):
    async def main():
        rt = Router(connect(redis_url), "api", clock=Clock(1_790_000_000.0))
        await rt.apply_rules(R.load(REPO / "routing_rules.yaml"))
        http = HttpRouter()
        agents.install_routes(http, rt, connect_sync(redis_url))
        admin.install_routes(http, rt)

        r = await hit(http, "POST", "/agents/1002/login", {})
        assert r.status == 200 and r.body["agent"]["state"] == "available"
        assert (await hit(http, "POST", "/agents/9999/login", {})).status == 404
        r = await hit(http, "POST", "/agents/1002/pause", {"reason": "lunch"})
        assert r.body["agent"]["state"] == "paused" and r.body["agent"]["pause_reason"] == "lunch"
        assert (await hit(http, "POST", "/agents/1002/pause", {"reason": "nap"})).status == 400
        assert (await hit(http, "POST", "/agents/1002/pause", b"{not json")).status == 400
        r = await hit(http, "PUT", "/agents/1002/skills", {"sales": 9, "support": 3})
        assert r.body["agent"]["skills"] == {"sales": 9, "support": 3}
        assert (await hit(http, "PUT", "/agents/1002/skills", {"sales": 11})).status == 400
        assert (await hit(http, "POST", "/agents/1003/ready", {})).status == 409   # logged out

        await rt.enqueue(QueuedCall("c1", "sales", {}, 0, "0901234567", {}))
        r = await hit(http, "POST", "/agents/1002/ready", {})   # takes c1 at once
        assert r.body["agent"]["state"] == "reserved" and r.body["agent"]["call_id"] == "c1"

        r = await hit(http, "GET", "/agents")
        assert [a["id"] for a in r.body["agents"]] == ["1001", "1002", "1003", "1004"]
        r = await hit(http, "GET", "/wallboard")
        assert r.body["agents_by_state"]["reserved"] == 1
        sales = next(q for q in r.body["queues"] if q["queue"] == "sales")
        assert sales["offered_today"] == 1 and sales["agents_by_state"]["reserved"] == 1
        assert (await hit(http, "GET", "/queues/sales")).body["queue"] == "sales"
        assert (await hit(http, "GET", "/queues/nope")).status == 404

        # live rules: bad YAML names the line; a valid change applies
        bad = (REPO / "routing_rules.yaml").read_text().replace("strategy: fewest_calls", "strategy: dice")
        r = await hit(http, "PUT", "/admin/rules", bad.encode())
        assert r.status == 400 and "queues.support.strategy" in r.body["error"] and r.body["detail"]["line"]
        good = (REPO / "routing_rules.yaml").read_text().replace("strategy: fewest_calls", "strategy: round_robin")
        r = await hit(http, "PUT", "/admin/rules", good.encode())
        assert r.status == 200 and r.body["applied"]
        r = await hit(http, "GET", "/admin/rules")
        assert r.body["queues"]["support"]["strategy"] == "round_robin"
        # JSON works too
        r = await hit(http, "PUT", "/admin/rules", json.dumps(R.loads(rules_text()).to_json()).encode())
        assert r.status == 409 and "1002" in r.body["error"]     # 1002 is ringing; cannot be removed
    asyncio.run(main())
