"""Shared helpers for the routing tests (a controllable clock, rules, a connected Router)."""

from __future__ import annotations

from callcenter.routing import rules as R
from callcenter.routing.router import Offer, QueuedCall, Router, connect


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def rules_text(strategy: str = "longest_idle", wrapup: float = 0, extra_queue: str = "",
               agents: str | None = None, escalation: str = "", miss_limit: int = 3) -> str:
    if agents is None:
        agents = """
  a1: {uri: "sip:a1@127.0.0.1:5070", skills: {sales: 5}, queues: {sales: 1}}
  a2: {uri: "sip:a2@127.0.0.1:5070", skills: {sales: 7}, queues: {sales: 1}}
  a3: {uri: "sip:a3@127.0.0.1:5070", skills: {sales: 9}, queues: {sales: 1}}
"""
    return f"""
defaults: {{ring_timeout: 10, wrapup: {wrapup}, miss_limit: {miss_limit}, service_level: 20}}
queues:
  sales:
    skills: {{sales: 1}}
    strategy: {strategy}
{escalation}
  support:
    skills: {{support: 1}}
{extra_queue}
agents:{agents}
"""


async def make(url: str, worker: str = "w1", clock: Clock | None = None, text: str | None = None) -> Router:
    rt = Router(connect(url), worker, clock=clock or Clock())
    await rt.apply_rules(R.loads(text if text is not None else rules_text(), "test_rules.yaml"))
    return rt


async def call(rt: Router, cid: str, queue: str = "sales", prio: int = 0, **skills: int) -> None:
    await rt.enqueue(QueuedCall(cid, queue, dict(skills), prio, "0901234567", {}))


async def offers(rt: Router) -> list[Offer]:
    return await rt.next_offers(timeout=0)


async def one_offer(rt: Router) -> Offer:
    got = await offers(rt)
    assert len(got) == 1, got
    return got[0]


async def serve(rt: Router, talk: float = 10.0) -> Offer:
    """Answer and finish the one pending offer."""
    o = await one_offer(rt)
    assert await rt.offer_answered(o)
    await rt.call_finished(o.call_id, o.agent_id, talk)
    return o
