"""The event bus's pure logic (who sees what, the queue log as events, signing, the config) and, on a real
redis-server, that routing's Lua publishes agent states and queue joins once, with the change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aredis
from repo import REPO

from callcenter.dialer.control import CampaignControl
from callcenter.dialer.keys import DialerKeys
from callcenter.events import keys
from callcenter.events.bus import parse_id, read_after, tip
from callcenter.events.schema import Viewer, decode, from_queue_log, screen_pop, visible
from callcenter.events.settings import EventSettings, parse_settings
from callcenter.events.webhooks import Webhook, sign, verify
from callcenter.exceptions import ConfigError
from callcenter.redisconn import connect
from callcenter.routing import rules as routing_rules
from callcenter.routing.router import QueuedCall, Router
from callcenter.routing.scripts import library
from callcenter.yamlsrc import Reader, loads

ADMIN_V = Viewer("root", frozenset({"admin"}))
AGENT_A = Viewer("ana", frozenset({"agent"}), "1001", agent_queues=frozenset({"sales", "vip"}))
AGENT_B = Viewer("binh", frozenset({"agent"}), "1002", agent_queues=frozenset({"support"}))
SUP_SALES = Viewer("sue", frozenset({"supervisor"}), queues=frozenset({"sales"}))
SUP_ALL = Viewer("sam", frozenset({"supervisor"}))
MANAGER = Viewer("cm", frozenset({"campaign_manager"}))

OFFER = {"type": "call.offered", "ts": 1.0, "call_id": "c1", "queue": "sales", "agent": "1001",
         "caller": "0901234567", "wait_s": 3.2, "data": {"name": "An"}}
STATE = {"type": "agent.state", "ts": 1.0, "agent": "1001", "state": "paused", "queues": ["sales", "vip"]}
STATS = {"type": "queue.stats", "ts": 1.0, "queue": "support", "waiting": 2}


def test_an_agent_sees_its_own_calls_and_state_and_its_queues_figures_only() -> None:
    assert visible(OFFER, AGENT_A) == OFFER                  # its own offer, the number in clear
    assert visible(STATE, AGENT_A) is not None
    assert visible(OFFER, AGENT_B) is None                   # another agent's offer
    assert visible(STATE, AGENT_B) is None
    assert visible(STATS, AGENT_B) is not None               # its queue's figures
    assert visible(STATS, AGENT_A) is None


def test_a_transfer_reaches_both_agents() -> None:
    ev = {"type": "call.transferred", "ts": 1.0, "call_id": "c1", "queue": "support", "agent": "1002",
          "from_agent": "1001", "caller": "0901234567"}
    assert visible(ev, AGENT_A) == ev and visible(ev, AGENT_B) == ev


def test_a_supervisor_sees_its_queues_with_the_number_masked() -> None:
    seen = visible(OFFER, SUP_SALES)
    assert seen is not None and seen["caller"] != OFFER["caller"] and seen["caller"].endswith("567")
    assert OFFER["caller"] == "0901234567"                   # the shared event is not changed
    assert visible(STATE, SUP_SALES) is not None             # an agent of its queue
    assert visible({**OFFER, "queue": "support"}, SUP_SALES) is None
    assert visible({**STATE, "queues": ["support"]}, SUP_SALES) is None
    assert visible(STATS, SUP_SALES) is None
    assert visible(STATS, SUP_ALL) is not None               # no queues: every queue
    assert visible({"type": "campaign.started", "ts": 1.0, "campaign": "x"}, SUP_ALL) is None


def test_admins_see_everything_and_managers_campaigns_and_figures() -> None:
    assert visible(OFFER, ADMIN_V) == OFFER
    assert visible(STATS, MANAGER) is not None
    assert visible({"type": "campaign.started", "ts": 1.0}, MANAGER) is not None
    assert visible(OFFER, MANAGER) is None and visible(STATE, MANAGER) is None


def test_queue_log_lines_become_call_events() -> None:
    ev = from_queue_log("COMPLETEAGENT", "c1", "sales", "1001",
                        {"holdtime": 4.0, "talktime": 30.5, "onhold": 2.0, "holds": 1}, 5.0)
    assert ev == {"type": "call.ended", "ts": 5.0, "call_id": "c1", "queue": "sales", "agent": "1001",
                  "wait_s": 4.0, "talk_s": 30.5, "hold_s": 2.0, "holds": 1, "cause": "agent_hangup"}
    assert from_queue_log("ENTERQUEUE", "c1", "sales", None, {}, 1.0) is None   # routing's Lua publishes it
    assert from_queue_log("HOLD", "c1", "sales", "1001", {"by": "phone"}, 1.0)["type"] == "call.held"


def test_the_screen_pop_keeps_what_an_agent_may_see() -> None:
    pop = screen_pop("0901234567", {"name": "Nguyễn An", "vip": True, "card": "4111", "customer_id": "C-9",
                                    "ivr_path": "hotline.menu>hotline.queue", "pin": "***"}, 100.0, 103.5)
    assert pop == {"caller": "0901234567", "wait_s": 3.5,
                   "data": {"name": "Nguyễn An", "vip": "True", "customer_id": "C-9",
                            "ivr_path": "hotline.menu>hotline.queue"}}


def test_stream_ids_compare_as_numbers() -> None:
    assert parse_id("1700000000000-10") > parse_id("1700000000000-9")  # type: ignore[operator]
    assert parse_id("nope") is None
    assert decode({"data": '{"type": "agent.state", "queues": {}}'}) == {"type": "agent.state", "queues": []}
    assert decode({"data": "[1]"}) is None


def test_a_signature_verifies_and_a_changed_body_or_old_stamp_does_not() -> None:
    body, secret = b'{"id":"1-0"}', "s3cret-s3cret-s3cret"
    now = int(time.time())
    header = sign(secret, body, now)
    assert header.startswith(f"t={now},v1=")
    assert verify(secret, body, header, now)
    assert not verify(secret, body + b" ", header, now)
    assert not verify("another secret value!", body, header, now)
    assert not verify(secret, body, header, now + 3600)


def test_webhook_filters_and_backoff() -> None:
    h = Webhook("crm", "http://x", "s" * 16, ("call.*", "agent.state"), backoff=1.0, max_backoff=5.0)
    assert h.wants("call.ended") and h.wants("agent.state") and not h.wants("queue.stats")
    assert 0.5 <= h.delay(1) <= 1.0 and 2.0 <= h.delay(3) <= 4.0 and 2.5 <= h.delay(10) <= 5.0


def _settings(text: str, env: dict[str, str]) -> EventSettings:
    data, loc = loads(text, "callcenter.yaml")
    return parse_settings(Reader(data, loc), env)


def test_webhook_config_is_validated_naming_file_key_and_line() -> None:
    env = {"CRM_SECRET": "0123456789abcdef"}
    ok = _settings("webhooks:\n  crm:\n    url: http://127.0.0.1:9/h\n    secret_env: CRM_SECRET\n"
                   "    events: [call.ended]\n    max_attempts: 3\n", env)
    hook = ok.webhooks[0]
    assert (hook.name, hook.events, hook.max_attempts, hook.secret) == ("crm", ("call.ended",), 3, env["CRM_SECRET"])
    assert "0123456789abcdef" not in repr(hook)              # never in a log line or traceback
    for text, where in (
            ("webhooks:\n  crm:\n    url: ftp://x\n    secret_env: CRM_SECRET\n", "callcenter.yaml:3: webhooks.crm.url"),
            ("webhooks:\n  crm:\n    url: http://x\n    secret_env: NOPE\n", "callcenter.yaml:4: webhooks.crm.secret_env"),
            ("webhooks:\n  crm:\n    url: http://x\n    secret_env: CRM_SECRET\n    events: [Calls]\n",
             "callcenter.yaml:5: webhooks.crm.events[0]"),
            ("webhooks:\n  crm:\n    url: http://x\n    secret_env: CRM_SECRET\n    colour: red\n",
             "callcenter.yaml:5: webhooks.crm.colour"),
            ("events: {heartbeat: 0}\n", "callcenter.yaml:1: events.heartbeat")):
        with pytest.raises(ConfigError) as exc:
            _settings(text, env)
        assert str(exc.value).startswith(where), str(exc.value)


def test_lua_writes_the_stream_this_package_reads() -> None:
    _, lua = library()
    assert 'E.stream = function() return PREFIX .. "ev:stream" end' in lua
    assert keys.EventKeys("").stream() == "ev:stream"
    assert f"local EVENTS_MAX = {keys.STREAM_MAX}" in lua


Body = Callable[[aredis.Redis], Awaitable[None]]


def on_redis(redis_url: str, body: Body) -> None:
    """Run ``body`` with a client of that Redis (asyncio)."""
    async def go() -> None:
        r = connect(redis_url)
        try:
            await body(r)
        finally:
            await r.aclose()

    asyncio.run(go())


async def routing(r: aredis.Redis, worker_id: str = "w-test", **kw: Any) -> Router:
    """A Router with the shipped rules applied and its heartbeat in."""
    router = Router(r, worker_id, **kw)
    await router.apply_rules(routing_rules.load(REPO / "routing_rules.yaml"))
    await router.heartbeat()
    return router


async def published(r: aredis.Redis, after: str) -> list[dict[str, Any]]:
    return [ev for _, ev in await read_after(r, "cc:", after, 100)]


def test_routing_publishes_agent_states_and_queue_joins_with_the_change(redis_url: str) -> None:
    async def body(r: aredis.Redis) -> None:
        router = await routing(r)
        start = await tip(r, "cc:")
        await router.agent_login("1003", ready=True)                    # support only
        await router.agent_pause("1003", "break")
        await router.enqueue(QueuedCall("call-1", "sales", {}, 0, caller="0901234567"))
        evs = await published(r, start)
        assert [(e["type"], e.get("agent"), e.get("state")) for e in evs] == [
            ("agent.state", "1003", "available"), ("agent.state", "1003", "paused"), ("call.queued", None, None)]
        assert evs[0]["queues"] == ["support"] and evs[1]["reason"] == "break"
        assert evs[2]["queue"] == "sales" and evs[2]["position"] == 1 and evs[2]["call_id"] == "call-1"
        assert "0901234567" not in str(evs)                            # the queue join carries no number
        assert all(isinstance(e["ts"], float | int) and e["ts"] > 1e9 for e in evs)

    on_redis(redis_url, body)


def test_a_campaign_state_change_is_published(redis_url: str) -> None:
    async def body(r: aredis.Redis) -> None:
        await CampaignControl(r, DialerKeys()).set_state("telesales", "paused", 1700000000.5)
        evs = await published(r, "0-0")
        assert evs == [{"type": "campaign.state", "ts": 1700000000.5, "campaign": "telesales", "state": "paused"}]
        assert visible(evs[0], MANAGER) and not visible(evs[0], SUP_ALL) and not visible(evs[0], AGENT_A)

    on_redis(redis_url, body)


def test_a_failed_offer_requeues_and_a_skills_change_are_published(redis_url: str) -> None:
    async def body(r: aredis.Redis) -> None:
        router = await routing(r)
        await router.agent_login("1001", ready=True)                    # vip + sales
        start = await tip(r, "cc:")
        await router.enqueue(QueuedCall("call-2", "sales", {}, 0, caller="0901234567"))
        [offer] = await router.next_offers(timeout=0)
        await router.offer_failed(offer, "no_answer")                   # back to its place; nobody else
        await router.set_skills("1001", {"sales": 9})                     # free again: it takes the call
        evs = await published(r, start)
        assert [(e["type"], e.get("state"), e.get("position"), e.get("requeued")) for e in evs] == [
            ("agent.state", "reserved", None, None), ("call.queued", None, 0, None),
            ("call.queued", None, 1, True), ("agent.state", "available", None, None),
            ("agent.skills", None, None, None), ("agent.state", "reserved", None, None)]
        assert evs[-2]["skills"] == {"sales": 9} and sorted(evs[-2]["queues"]) == ["sales", "vip"]

    on_redis(redis_url, body)


def test_a_dead_workers_waiting_caller_ends_on_the_bus(redis_url: str) -> None:
    async def body(r: aredis.Redis) -> None:
        victim = await routing(r, "victim")
        start = await tip(r, "cc:")
        await victim.enqueue(QueuedCall("call-3", "support", {}, 0, caller="0901234567"))
        later = await routing(r, "survivor", clock=lambda: time.time() + 60)   # the victim's beat is a minute old
        await later.tick()
        evs = await published(r, start)
        assert [(e["type"], e["call_id"], e.get("cause")) for e in evs] == [
            ("call.queued", "call-3", None), ("call.ended", "call-3", "worker_died")]
        assert evs[1]["queue"] == "support"

    on_redis(redis_url, body)
