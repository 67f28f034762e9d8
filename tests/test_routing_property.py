"""Hypothesis state machine: random agent/caller/phone/clock events against one real Redis; after
every step the routing invariants hold (atomic audit) and every call is accounted for."""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from routing_helpers import AUDIT, Clock

from callcenter.redisconn import connect, connect_sync
from callcenter.routing import rules as R
from callcenter.routing.router import Offer, QueuedCall, QueueFull, Router

RULES = """
defaults: {ring_timeout: 10, wrapup: 5, miss_limit: 2, max_length: 6}
queues:
  sales:
    skills: {sales: 1}
    strategy: round_robin
    escalation:
      - {after: 20, relax_by: 3}
      - {after: 40, overflow: [support]}
      - {after: 90, fallback: callback}
  support: {skills: {support: 1}, strategy: ring_all, max_wait: 120}
agents:
  a1: {uri: "sip:a1@127.0.0.1:5070", skills: {sales: 5, support: 2}, queues: {sales: 2, support: 1}}
  a2: {uri: "sip:a2@127.0.0.1:5070", skills: {sales: 9}, queues: {sales: 1}}
  a3: {uri: "sip:a3@127.0.0.1:5070", skills: {support: 6}, queues: {support: 3}}
  a4: {uri: "sip:a4@127.0.0.1:5070", skills: {sales: 2, support: 9}, queues: {sales: 1, support: 1}}
"""
AGENTS = ("a1", "a2", "a3", "a4")
URL: list[str] = []
SEEN: dict[str, int] = {}   # what the runs exercised, printed with -s


class RoutingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sync = connect_sync(URL[0])
        self.sync.flushall()
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        self.rt = Router(connect(URL[0]), "w1", clock=self.clock)
        self.run(self.rt.apply_rules(R.loads(RULES)))
        for a in AGENTS:
            self.run(self.rt.agent_login(a))
        self.offers: dict[str, Offer] = {}
        self.connected: dict[str, str] = {}     # call -> agent
        self.n = 0
        self.calls: set[str] = set()
        self.done: set[str] = set()            # finished, abandoned, fallen back or rejected

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.rt.redis.aclose())
        self.loop.close()
        self.sync.close()

    def _pump(self) -> None:
        for o in self.run(self.rt.next_offers(timeout=0)):
            self.offers[o.offer_id] = o

    def _events(self, events: list) -> None:
        for e in events:
            if e.kind == "offer_cancelled":
                self.offers.pop(e.data["offer_id"], None)
            elif e.kind == "fallback" and not e.data["kept_in_queue"]:
                self.done.add(e.call_id)
            SEEN[e.kind] = SEEN.get(e.kind, 0) + 1

    @rule(queue=st.sampled_from(["sales", "support"]), prio=st.integers(0, 3), level=st.integers(1, 7))
    def enqueue(self, queue: str, prio: int, level: int) -> None:
        self.n += 1
        cid = f"c{self.n}"
        self.calls.add(cid)
        try:
            self.run(self.rt.enqueue(QueuedCall(cid, queue, {queue: level}, prio, f"09000000{self.n:02d}", {})))
        except QueueFull:
            self.done.add(cid)
        self._pump()

    @rule(agent=st.sampled_from(AGENTS),
          action=st.sampled_from(["login", "ready", "ready", "pause", "logout", "skills"]))
    def agent(self, agent: str, action: str) -> None:
        if action == "login":
            self.run(self.rt.agent_login(agent))
        elif action == "ready":
            try:
                self.run(self.rt.agent_ready(agent))
            except Exception:  # noqa: BLE001, S110 - logged out is a legitimate refusal here
                pass
        elif action == "pause":
            try:
                self.run(self.rt.agent_pause(agent, "break"))
            except Exception:  # noqa: BLE001, S110
                pass
        elif action == "logout":
            self.run(self.rt.agent_logout(agent))
        else:
            self.run(self.rt.set_skills(agent, {"sales": 7, "support": 7}))
        self._pump()

    @rule(data=st.data())
    def phone(self, data: st.DataObject) -> None:
        self._pump()
        if not self.offers:
            return
        oid = data.draw(st.sampled_from(sorted(self.offers)))
        o = self.offers.pop(oid)
        if data.draw(st.booleans()):
            if self.run(self.rt.offer_answered(o)):
                assert o.call_id not in self.connected, "a call connected twice"
                assert o.agent_id not in self.connected.values(), "an agent holds two calls"
                self.connected[o.call_id] = o.agent_id
                SEEN["connected"] = SEEN.get("connected", 0) + 1
        else:
            self.run(self.rt.offer_failed(o, data.draw(st.sampled_from(["no_answer", "busy", "rejected"]))))
        self._pump()

    @rule(data=st.data())
    def hang_up(self, data: st.DataObject) -> None:
        if self.connected and data.draw(st.booleans()):
            cid = data.draw(st.sampled_from(sorted(self.connected)))
            self.run(self.rt.call_finished(cid, self.connected.pop(cid), 30))
            self.done.add(cid)
        else:
            waiting = sorted(self.calls - self.done - set(self.connected))
            if waiting:
                cid = data.draw(st.sampled_from(waiting))
                if data.draw(st.booleans()):
                    self.run(self.rt.request_callback(cid, "0911111111"))
                else:
                    self.run(self.rt.abandon(cid))
                    if self.sync.exists(f"cc:rt:c:{cid}") == 0:
                        self.done.add(cid)
        self._pump()

    @rule(strategy=st.sampled_from(["round_robin", "longest_idle", "fewest_calls", "skill_weighted", "ring_all"]))
    def reload(self, strategy: str) -> None:
        """PUT /admin/rules with callers waiting: a different strategy, same queues and agents."""
        self.run(self.rt.apply_rules(R.loads(RULES.replace("strategy: round_robin", f"strategy: {strategy}"))))
        self._pump()

    @rule(seconds=st.sampled_from([1, 5, 14, 30]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self._events(self.run(self.rt.tick()))
        self._pump()

    @invariant()
    def consistent(self) -> None:
        assert self.sync.eval(AUDIT, 0) == []
        # every call is accounted for: in Redis exactly while it is not done
        for cid in self.calls:
            assert (self.sync.exists(f"cc:rt:c:{cid}") == 1) == (cid not in self.done), cid
        for cid, agent in self.connected.items():
            assert self.sync.hget(f"cc:rt:a:{agent}", "call") == cid


@pytest.mark.timeout(240)
def test_routing_state_machine(redis_url):
    URL[:] = [redis_url]
    run_state_machine_as_test(RoutingMachine, settings=settings(
        max_examples=int(os.environ.get("ROUTING_FUZZ_EXAMPLES", "40")), stateful_step_count=40, deadline=None,
        suppress_health_check=list(HealthCheck)))
    print("exercised:", SEEN)
