"""Every route of a real worker's HTTP router is protected: it is walked from the worker's own route
table, and each answers 401 without credentials and 403 to users whose roles it does not allow. A
route added without thinking about who may call it fails here."""

from __future__ import annotations

import re

import pytest
from worker_proc import WorkerProc, api_user, flush, new_worker

from callcenter.api.http import HttpRouter
from callcenter.auth.roles import ADMIN, AGENT, PUBLIC, ROLES

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> WorkerProc:
    tmp = tmp_path_factory.mktemp("routes")
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url)
    w.start()
    yield w
    w.stop()


def concrete(pattern: str, own_value: str = "9999") -> str:
    """A path for the pattern: every {param} filled with a dummy value, agent ids not the caller's."""
    path = pattern.partition(" ")[2]
    return re.sub(r"\{(\w+)\}", own_value, path)


def test_every_route_declares_roles_and_refuses_strangers(worker: WorkerProc) -> None:
    status, body = worker.http("GET", "/admin/routes")
    assert status == 200
    routes = body["routes"]
    assert len(routes) >= 30, [r["pattern"] for r in routes]
    public = [r["pattern"] for r in routes if r["public"]]
    # open to anyone: the login, and the console's sign-in page and its scripts and styles
    assert sorted(public) == ["GET /console/login", "GET /console/static/{file}", "GET /console/vendor/{file}",
                              "POST /auth/login"]
    for r in routes:
        assert r["public"] or r["roles"] and set(r["roles"]) <= ROLES, r

    nobody = api_user(worker.redis_url, "no-roles", [])
    agent = api_user(worker.redis_url, "agent-a", [AGENT], agent="1001")
    checked = 0
    for r in routes:
        if r["public"]:
            continue
        method, path = r["method"], concrete(r["pattern"])
        query = "?agent=9999" if r["own"] == "agent" else ""
        body = {} if method in ("POST", "PUT", "PATCH", "DELETE") else None
        status, answer = worker.http(method, path + query, body, token=None)
        assert status == 401, (r["pattern"], status, answer)
        status, answer = worker.http(method, path + query, body, token=nobody)
        assert status == 403, (r["pattern"], status, answer)
        if AGENT not in r["roles"] or r["own"]:
            # not an agent's route, or an agent's route on someone else's agent id
            status, answer = worker.http(method, path + query, body, token=agent)
            assert status == 403, (r["pattern"], status, answer)
        if ADMIN not in r["roles"]:
            pytest.fail(f"{r['pattern']}: admins should be able to do everything")
        checked += 1
    assert checked == len(routes) - len(public)
    # /metrics is served beside the router: it wants its token too
    assert worker.http("GET", "/metrics", token=None)[0] == 401
    assert worker.http("GET", "/metrics", token=nobody)[0] == 401


def test_a_route_cannot_be_added_without_roles() -> None:
    async def handler(req: object) -> dict[str, str]:
        return {}

    router = HttpRouter()
    with pytest.raises(TypeError):
        router.add("GET /x", handler)  # type: ignore[call-arg]
    for bad in (frozenset(), set(), None, "admin"):
        with pytest.raises(ValueError):
            router.add("GET /x", handler, roles=bad)  # type: ignore[arg-type]
    router.add("POST /auth/login", handler, roles=PUBLIC)
    assert router.routes[0].roles is PUBLIC
