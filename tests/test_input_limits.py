"""Input limits of the parsers, without a worker: YAML alias bombs and nesting, CSV headers, skill
names and counts, per-route body caps. (The same limits over a live worker's HTTP port, with a call
up, are in test_input_limits_worker.py.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from alias_bomb import BOMB

from callcenter import yamlsrc
from callcenter.api.http import JSON_MAX_BODY, HttpRouter
from callcenter.dialer.upload import UploadError, UploadLimits, parse_csv
from callcenter.exceptions import ConfigError
from callcenter.routing import rules


def test_the_bomb_is_small() -> None:
    assert len(BOMB) < 350


def test_api_yaml_refuses_anchors_and_aliases_at_once_naming_the_line() -> None:
    t = time.monotonic()
    with pytest.raises(ConfigError) as exc:
        yamlsrc.loads("queues:\n  sales: {skills: {sales: 1}}\n  vip: &v {skills: {sales: 5}}\n",
                      "PUT /admin/rules", allow_aliases=False)
    assert exc.value.line == 3 and "anchors" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        yamlsrc.loads(BOMB, "PUT /admin/rules", allow_aliases=False)
    assert exc.value.line == 1
    assert time.monotonic() - t < 0.5


def test_rules_from_the_api_refuse_the_bomb() -> None:
    with pytest.raises(ConfigError) as exc:
        rules.loads(BOMB, "PUT /admin/rules", allow_aliases=False)
    assert str(exc.value).startswith("PUT /admin/rules:1: anchors")


def test_trusted_files_keep_aliases_but_not_bombs() -> None:
    data, _ = yamlsrc.loads("base: &b {wrapup: 5}\nsales: *b\n")
    assert data == {"base": {"wrapup": 5}, "sales": {"wrapup": 5}}
    t = time.monotonic()
    with pytest.raises(ConfigError) as exc:
        yamlsrc.loads(BOMB, "rules.yaml")
    assert "expands to more than" in exc.value.message and exc.value.file == "rules.yaml"
    assert time.monotonic() - t < 5


@pytest.mark.parametrize("allow_aliases", [True, False])
def test_deep_nesting_is_a_config_error_not_a_crash(allow_aliases: bool) -> None:
    with pytest.raises(ConfigError) as exc:
        yamlsrc.loads("[" * 50_000, "deep.yaml", allow_aliases=allow_aliases)
    assert exc.value.file == "deep.yaml"


def test_api_yaml_without_aliases_still_names_lines() -> None:
    with pytest.raises(ConfigError) as exc:
        rules.loads("queues:\n  sales:\n    strategy: random\n", "PUT /admin/rules", allow_aliases=False)
    assert exc.value.line == 3 and exc.value.key == "queues.sales.strategy"


RULES = """queues:
  sales: {{skills: {queue_skills}}}
agents:
  '1001': {{uri: "sip:1001@127.0.0.1:5070", skills: {agent_skills}, queues: [sales]}}
"""


def load_rules(queue_skills: str = "{sales: 1}", agent_skills: str = "{sales: 5}") -> rules.RoutingRules:
    return rules.loads(RULES.format(queue_skills=queue_skills, agent_skills=agent_skills), "rules.yaml")


@pytest.mark.parametrize("name", ["Sales", "sa:les", "-x", ".x", "a" * 33, "s les", "vé"])
def test_skill_names_are_validated_in_rules(name: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_rules(agent_skills=f"{{'{name}': 5}}")
    assert exc.value.line == 4 and exc.value.key == f"agents.1001.skills.{name}"
    assert "not a valid skill name" in exc.value.message


def test_skill_names_that_are_fine() -> None:
    r = load_rules("{sales: 1, lang.vi: 2}", "{sales: 5, lang.vi: 9, tier_2: 1, 'x-y': 3}")
    assert r.agents["1001"].skills == {"sales": 5, "lang.vi": 9, "tier_2": 1, "x-y": 3}


def test_skill_count_is_capped_per_agent_and_queue() -> None:
    many = "{" + ", ".join(f"s{i}: 1" for i in range(rules.MAX_SKILLS + 1)) + "}"
    with pytest.raises(ConfigError) as exc:
        load_rules(agent_skills=many)
    assert exc.value.key == "agents.1001.skills" and "at most 64" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        load_rules(queue_skills=many)
    assert exc.value.key == "queues.sales.skills"
    exactly = "{" + ", ".join(f"s{i}: 1" for i in range(rules.MAX_SKILLS)) + "}"
    assert len(load_rules(agent_skills=exactly).agents["1001"].skills) == rules.MAX_SKILLS


def test_csv_with_100k_header_columns_is_refused_fast() -> None:
    header = ",".join(f"c{i}" for i in range(100_000)).encode()
    t = time.monotonic()
    with pytest.raises(UploadError, match="header has 100000 columns; the limit is 200"):
        parse_csv(header + b"\n0912345678\n")
    assert time.monotonic() - t < 1.0


def test_csv_header_check_is_linear_in_the_columns() -> None:
    # With the cap lifted, 50k distinct columns (and then one duplicate) are checked in well under a
    # second; the old nested check took minutes.
    n = 50_000
    names = [f"c{i}" for i in range(n)]
    limits = UploadLimits(max_columns=n + 1)
    t = time.monotonic()
    parsed = parse_csv((",".join(["phone", *names]) + "\n0912345678\n").encode(), limits=limits)
    assert len(parsed.columns) == n + 1 and parsed.phone_column == "phone"
    with pytest.raises(UploadError, match="appears twice"):
        parse_csv((",".join(["phone", *names, "c7"]) + "\n0912345678\n").encode(),
                  limits=UploadLimits(max_columns=n + 2))
    assert time.monotonic() - t < 3.0


def test_router_body_caps_per_route() -> None:
    async def h(req):  # pragma: no cover - never called
        return {}

    router = HttpRouter()
    roles = frozenset({"admin"})
    router.add("PUT /admin/rules", h, roles=roles, max_body=1024 * 1024)
    router.add("POST /campaigns/{id}/lists", h, roles=roles, max_body=50 * 1024 * 1024)
    router.add("POST /dnc", h, roles=roles)
    assert router.body_limit("POST", "/dnc") == JSON_MAX_BODY == 64 * 1024
    assert router.body_limit("PUT", "/admin/rules") == 1024 * 1024
    assert router.body_limit("POST", "/campaigns/x/lists") == 50 * 1024 * 1024
    assert router.body_limit("GET", "/campaigns/x/lists") == JSON_MAX_BODY     # no such route: the default
    assert router.body_limit("POST", "/nowhere") == JSON_MAX_BODY
    assert router.largest_body == 50 * 1024 * 1024


def test_deeply_nested_json_is_a_400() -> None:
    from callcenter.api.http import HttpError, Request

    req = Request("POST", "/dnc", {}, {}, {}, b"[" * 60_000)
    for _ in range(2):       # the error is kept: a second json() does not parse again
        with pytest.raises(HttpError) as exc:
            req.json()
        assert exc.value.status == 400


def test_skills_api_validates_names_and_count(redis_url: str) -> None:
    from callcenter.api import agents
    from callcenter.api.http import Request
    from callcenter.redisconn import connect, connect_sync
    from callcenter.routing.router import Router as RoutingRouter

    async def go() -> list[tuple[int, dict]]:
        r = connect(redis_url)
        rt = RoutingRouter(r, "w1")
        await rt.apply_rules(load_rules())
        api = HttpRouter()
        agents.install_routes(api, rt, connect_sync(redis_url))
        route, params = api.match("PUT", "/agents/1001/skills")
        out = []
        for body in (b'{"Sales!": 5}', b'{"' + b"a" * 40 + b'": 5}',
                     ("{" + ", ".join(f'"s{i}": 1' for i in range(65)) + "}").encode(), b'{"lang.vi": 7}'):
            resp = await api._run(route.handler, Request("PUT", "/agents/1001/skills", params, {}, {}, body))
            out.append((resp.status, resp.body))
        await r.aclose()
        return out

    bad_name, too_long, too_many, ok = asyncio.run(go())
    assert bad_name[0] == 400 and "not a valid skill name" in bad_name[1]["error"]
    assert too_long[0] == 400
    assert too_many[0] == 400 and "at most 64" in too_many[1]["error"]
    assert ok[0] == 200 and ok[1]["agent"]["skills"] == {"lang.vi": 7}


def test_csv_cells_are_capped_in_size_and_number() -> None:
    big = "x" * 5000
    parsed = parse_csv(f"phone;note\n0912345678;{big}\n0912345679;ok\n".encode())
    assert parsed.rejected == [{"line": 2, "reason": "a cell has more than 4096 characters"}]
    assert [c.e164 for c in parsed.contacts] == ["+84912345679"]
    # 200 columns of nothing per row: refused once the cells kept pass the cap, not gigabytes later
    header = "phone;" + ";".join(f"c{i}" for i in range(199))
    rows = "".join(f"09{i:08d}" + ";" * 199 + "\n" for i in range(1000))
    t = time.monotonic()
    with pytest.raises(UploadError, match="more than 100000 cells"):
        parse_csv(f"{header}\n{rows}".encode(), limits=UploadLimits(max_cells=100_000))
    assert time.monotonic() - t < 2
