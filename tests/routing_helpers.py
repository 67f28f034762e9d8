"""Shared helpers for the routing tests (a controllable clock, rules, a connected Router)."""

from __future__ import annotations

from callcenter.redisconn import connect
from callcenter.routing import rules as R
from callcenter.routing.router import Offer, QueuedCall, Router

# An atomic snapshot audit of the routing invariants (test only; KEYS is fine on a test server).
AUDIT = """
local bad = {}
for _, oid in ipairs(redis.call('ZRANGE', 'cc:rt:leases', 0, -1)) do
  local a = string.match(oid, '^(.+)#%d+$')
  if not a or redis.call('HGET', 'cc:rt:a:' .. a, 'offer') ~= oid then bad[#bad + 1] = oid .. ' leased but not held' end
end
for _, a in ipairs(redis.call('SMEMBERS', 'cc:rt:agents')) do
  local f = redis.call('HMGET', 'cc:rt:a:' .. a, 'state', 'offer', 'call')
  local has_offer = f[2] ~= false and f[2] ~= ''
  if (f[1] == 'reserved') ~= has_offer then
    bad[#bad + 1] = a .. ' is ' .. tostring(f[1]) .. (has_offer and ' with' or ' without') .. ' an offer'
  elseif has_offer and not redis.call('ZSCORE', 'cc:rt:leases', f[2]) then
    bad[#bad + 1] = a .. ' holds offer ' .. f[2] .. ' without a lease'
  end
  for _, q in ipairs(redis.call('SMEMBERS', 'cc:rt:queues')) do
    local member = redis.call('SISMEMBER', 'cc:rt:q:' .. q .. ':members', a) == 1
    local staffed = redis.call('SISMEMBER', 'cc:rt:q:' .. q .. ':staffed', a) == 1
    if staffed ~= (member and f[1] ~= 'paused' and f[1] ~= 'logged_out') then
      bad[#bad + 1] = a .. ' staffed flag wrong in ' .. q .. ' while ' .. tostring(f[1])
    end
    if redis.call('ZSCORE', 'cc:rt:q:' .. q .. ':free', a) and f[1] ~= 'available' then
      bad[#bad + 1] = a .. ' in free set of ' .. q .. ' while ' .. tostring(f[1])
    end
  end
  if f[1] == 'on_call' and redis.call('HGET', 'cc:rt:c:' .. f[3], 'agent') ~= a then
    bad[#bad + 1] = a .. ' on a call that is not connected to it'
  end
end
for _, q in ipairs(redis.call('SMEMBERS', 'cc:rt:queues')) do
  local n = 0
  for _, c in ipairs(redis.call('ZRANGE', 'cc:rt:q:' .. q .. ':waiting', 0, -1)) do
    n = n + 1
    local f = redis.call('HMGET', 'cc:rt:c:' .. c, 'state', 'sig')
    if f[1] ~= 'waiting' then bad[#bad + 1] = c .. ' queued but not waiting' end
    if not redis.call('ZSCORE', 'cc:rt:q:' .. q .. ':w:' .. tostring(f[2]), c) then
      bad[#bad + 1] = c .. ' missing from its signature set'
    end
  end
  local indexed = 0
  for _, sig in ipairs(redis.call('SMEMBERS', 'cc:rt:q:' .. q .. ':sigset')) do
    indexed = indexed + redis.call('ZCARD', 'cc:rt:q:' .. q .. ':w:' .. sig)
  end
  if indexed ~= n then bad[#bad + 1] = q .. ': signature sets hold ' .. indexed .. ' ~= waiting ' .. n end
end
return bad
"""



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
