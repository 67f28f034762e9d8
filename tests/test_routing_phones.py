"""Routing knows the SIP edge's registrations (phones.lua, Router.phones; routing/phones.py polls them): an
agent with no phone is paused no_phone and never offered, one whose phone registers is offered at once, and
without a known set (no edge polled) every agent is offerable as before. Real Redis."""

from __future__ import annotations

import asyncio

import ports
import pytest
from routing_helpers import Clock, call, make, offers, one_offer, rules_text

from callcenter.exceptions import ConfigError
from callcenter.routing.keys import Keys
from callcenter.routing.phones import EdgeSettings, _live_aors, parse_settings, poll
from callcenter.yamlsrc import Reader, loads

NO_PHONE_RULE = rules_text().replace("service_level: 20}",
                                     "service_level: 20, pause_reasons: {no_phone: {max: 60, auto_ready: true}}}")


def run(coro):
    return asyncio.run(coro)


def test_an_agent_without_a_phone_is_never_offered_and_one_whose_phone_registers_is_at_once(redis_url):
    async def main():
        clock = Clock()
        rt = await make(redis_url, clock=clock, text=NO_PHONE_RULE)
        await rt.agent_login("a1")
        await rt.agent_login("a2")
        assert await rt.phones(["a1"], 10) == (0, 1)                # a2 was available: paused, not offered
        info = await rt.agent_info("a2")
        assert (info["state"], info["pause_reason"], info["misses"]) == ("paused", "no_phone", 0), info
        await rt.agent_login("a3")                                  # logs in ready with no phone: paused at once
        assert (await rt.agent_info("a3"))["pause_reason"] == "no_phone"
        await rt.agent_ready("a3")                                  # ready pressed: still no phone
        assert (await rt.agent_info("a3"))["pause_reason"] == "no_phone"
        await call(rt, "c1")
        o = await one_offer(rt)
        assert o.agent_id == "a1"
        assert await rt.offer_answered(o)
        await call(rt, "c2")                                        # a1 busy, a2/a3 have no phone: c2 waits
        clock.advance(61)                                           # no_phone's auto-ready is due, no phone yet
        await rt.tick()
        assert await offers(rt) == []
        assert (await rt.agent_info("a2"))["pause_reason"] == "no_phone"
        assert await rt.phones(["a1", "a2"], 10) == (1, 0)          # a2's phone registered: offered c2 at once
        o = await one_offer(rt)
        assert (o.call_id, o.agent_id) == ("c2", "a2")
        assert await rt.phones(["a1", "a2"], 10) == (0, 0)          # the same registrations again: no change
        # a1's phone goes while it talks: when its call ends it is paused no_phone, not made available
        assert await rt.phones(["a2"], 10) == (0, 0)
        await rt.call_finished("c1", "a1", 30)
        assert (await rt.agent_info("a1"))["pause_reason"] == "no_phone"
    run(main())


def test_without_a_known_set_every_agent_is_offerable(redis_url):
    """The set lapses (no poll, the edge down): agents are offered as before (the edge's 480 is the check)."""
    async def main():
        rt = await make(redis_url, text=NO_PHONE_RULE)
        await rt.phones([], 10)
        await rt.agent_login("a1")
        assert (await rt.agent_info("a1"))["pause_reason"] == "no_phone"
        await rt.redis.delete(Keys(rt.prefix).phones())             # as when it expires
        await rt.agent_ready("a1")
        await call(rt, "c1")
        assert (await one_offer(rt)).agent_id == "a1"
    run(main())


def test_live_aors_skip_expired_contacts() -> None:
    dump = {"Domains": [{"Domain": {"Domain": "location", "AoRs": [
        {"Info": {"AoR": "1001", "Contacts": [{"Contact": {"Address": "sip:a", "Expires": 59}}]}},
        {"Info": {"AoR": "1002", "Contacts": [{"Contact": {"Address": "sip:b", "Expires": "expired"}}]}},
        {"Info": {"AoR": "1003@callcenter", "Contacts": [{"Contact": {"Expires": "deleted"}},
                                                         {"Contact": {"Expires": "permanent"}}]}}]}}]}
    assert sorted(_live_aors(dump)) == ["1001", "1003"]


def test_edge_section_is_validated_with_file_key_and_line() -> None:
    def read(text: str) -> EdgeSettings:
        data, loc = loads(text, "callcenter.yaml")
        return parse_settings(Reader(data, loc))

    assert read("sip: {}\n") == EdgeSettings()
    s = read("edge:\n  registrations: [http://10.0.0.2:5065/RPC]\n  poll_every: 500ms\n")
    assert s.registrations == ("http://10.0.0.2:5065/RPC",) and s.poll_every == 0.5 and s.valid_for == 6.0
    with pytest.raises(ConfigError, match=r"callcenter.yaml:4: edge.registrations\[1\]"):
        read("edge:\n  registrations:\n    - http://a:1/RPC\n    - ftp://b\n")
    with pytest.raises(ConfigError, match="poll_every"):
        read("edge: {poll_every: 0}\n")


def test_an_edge_that_does_not_answer_takes_no_phone_away(redis_url):
    """A poll whose edge is down writes nothing (the agents keep their state; the set lapses by itself), and
    within one period only the worker holding the guard asks."""
    async def main():
        rt = await make(redis_url, text=NO_PHONE_RULE)
        await rt.agent_login("a1")
        port = ports.port()                                         # nothing listens there
        settings = EdgeSettings((f"http://127.0.0.1:{port}/RPC",), poll_every=5)
        assert await poll(rt.redis, rt, settings) is None
        assert not await rt.redis.exists(Keys(rt.prefix).phones())
        assert (await rt.agent_info("a1"))["state"] == "available"
        assert await rt.redis.get(Keys(rt.prefix).phones_guard()) == "w1"
        await rt.redis.delete(Keys(rt.prefix).phones_guard())
    run(main())
