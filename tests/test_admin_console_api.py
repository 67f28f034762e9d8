"""The API behind the console's admin and live calls pages, through the project's HttpRouter dispatch on real
Redis: the rules' YAML text (the worker's file while it is in force, else what is in force written out), the
validator's answer (every file:line error, nothing applied), and GET /calls (agents on a call with their caller,
queue and talk time; masked for a supervisor, in clear for an admin; a supervisor's queues only)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from repo import REPO
from routing_helpers import Clock
from test_routing_api import hit

from callcenter.api import admin, live
from callcenter.api.guard import Principal
from callcenter.api.http import HttpRouter, Request
from callcenter.auth import Auth
from callcenter.auth.roles import ADMIN, SUPERVISOR
from callcenter.redisconn import connect
from callcenter.routing import rules as R
from callcenter.routing.router import QueuedCall, Router

RULES = REPO / "routing_rules.yaml"


def test_rules_text_and_validation(redis_url: str, tmp_path: Path) -> None:
    async def main() -> None:
        source = tmp_path / "routing_rules.yaml"
        source.write_text(RULES.read_text())
        rt = Router(connect(redis_url), "api", clock=Clock(1_790_000_000.0))
        http = HttpRouter()
        admin.install_routes(http, rt, source)
        assert (await hit(http, "GET", "/admin/rules/text")).body == {
            "text": RULES.read_text(), "file": "routing_rules.yaml", "from": "file"}   # nothing applied yet
        await rt.apply_rules(R.load(source))
        assert (await hit(http, "GET", "/admin/rules/text")).body["from"] == "file"    # comments and all

        lines = RULES.read_text().splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if "strategy: fewest_calls" in line)
        bad = "".join(lines[:at] + [lines[at].replace("fewest_calls", "dice")] + lines[at + 1:])
        r = await hit(http, "POST", "/admin/rules/validate", bad.encode())
        assert r.status == 200 and not r.body["valid"]
        error = r.body["error"]
        assert error["line"] == at + 1 and error["key"] == "queues.support.strategy"
        assert error["message"].startswith(f"routing_rules.yaml:{at + 1}: queues.support.strategy: ")
        assert (await hit(http, "GET", "/admin/rules")).body["queues"]["support"]["strategy"] == "fewest_calls"
        r = await hit(http, "PUT", "/admin/rules", bad.encode())            # the same words when applying
        assert r.status == 400 and r.body["error"] == error["message"] and r.body["detail"]["line"] == at + 1

        # every problem the reading goes past, in line order (the apply names the first)
        worse = bad.replace("max_length: 500", "max_length: lots").replace("wrapup: 15", "wrapup: 15\n    colour: red")
        errors = (await hit(http, "POST", "/admin/rules/validate", worse.encode())).body["errors"]
        assert [(e["line"], e["key"]) for e in errors] == [
            (at + 1, "queues.support.strategy"), (at + 2, "queues.support.max_length"), (at + 4, "queues.support.colour")]
        assert errors[0] == error

        good = bad.replace("strategy: dice", "strategy: round_robin")
        r = await hit(http, "POST", "/admin/rules/validate", good.encode())
        assert r.body == {"valid": True, "queues": ["collections", "sales", "support", "telesales", "vip"],
                          "agents": 4}
        assert (await hit(http, "GET", "/admin/rules")).body["queues"]["support"]["strategy"] == "fewest_calls"
        assert (await hit(http, "PUT", "/admin/rules", good.encode())).status == 200
        # applied through the API: the file is not what is in force; the text is the rules in force
        shown = (await hit(http, "GET", "/admin/rules/text")).body
        assert shown["from"] == "applied" and "#" not in shown["text"]
        assert R.loads(shown["text"]).to_json() == R.loads(good).to_json()
    asyncio.run(main())


def test_live_calls(redis_url: str) -> None:
    async def main() -> None:
        redis = connect(redis_url)
        rt = Router(redis, "api", clock=Clock(1_790_000_000.0))
        await rt.apply_rules(R.load(RULES))
        auth = Auth.connect(redis, "cc:")
        await auth.users.create("sue", [SUPERVISOR], "test password 1", None)
        await auth.users.set_monitoring("sue", None, ["support"])
        await auth.users.create("sal", [SUPERVISOR], "test password 1", None)
        await auth.users.set_monitoring("sal", None, ["sales"])
        http = HttpRouter()
        live.install_routes(http, rt, None, auth.users)

        async def calls(user: str, roles: frozenset[str]) -> list[dict[str, object]]:
            route, params = http.match("GET", "/calls")
            req = Request("GET", "/calls", params, {}, {}, b"")
            req.principal = Principal(user, roles, None, "token")
            resp = await http._run(route.handler, req)
            assert resp.status == 200, resp.body
            assert resp.body["queues"] == ({"sue": ["support"], "sal": ["sales"]}.get(user, []))
            found: list[dict[str, object]] = resp.body["calls"]
            return found

        assert await calls("root", frozenset({ADMIN})) == []
        await rt.agent_login("1003")
        await rt.enqueue(QueuedCall("c1", "support", {}, 0, "0901234567", {}))
        offers = await rt.next_offers(timeout=0.1)
        assert [o.agent_id for o in offers] == ["1003"]
        assert await calls("root", frozenset({ADMIN})) == []             # ringing: not a call yet
        assert await rt.offer_answered(offers[0])
        row = {"call_id": "c1", "agent": "1003", "agent_name": "Lê Minh Châu", "queue": "support", "caller": "0901234567",
               "talk_seconds": 0.0, "held": None, "worker": "api"}
        assert await calls("root", frozenset({ADMIN})) == [row]
        assert await calls("sue", frozenset({SUPERVISOR})) == [{**row, "caller": "*******567"}]
        assert await calls("sal", frozenset({SUPERVISOR})) == []          # not its queue
        await rt.call_finished("c1", "1003", 12.0)
        assert await calls("root", frozenset({ADMIN})) == []
    asyncio.run(main())
