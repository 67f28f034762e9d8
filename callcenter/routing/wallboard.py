"""Real-time queue and agent state for wallboards and the Prometheus collector.

Synchronous on purpose: the collector calls these from a thread at scrape time. Read-only, so no
Lua is needed; pipelines keep it to a few round trips even with thousands of agents. ``client`` is a
:func:`callcenter.redisconn.connect_sync` client: its replies are str (redis-py's types say bytes | str).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis

from callcenter.routing.keys import Keys
from callcenter.routing.router import pause_limit

STATES = ("available", "reserved", "on_call", "wrap_up", "paused", "logged_out")
_BAND = 1e10   # score = -priority * 1e10 + enqueue time (see lua/enqueue.lua)


@dataclass(frozen=True)
class QueueStats:
    queue: str
    waiting: int
    oldest_wait_seconds: float
    agents_by_state: dict[str, int]
    offered_today: int
    answered_today: int
    abandoned_today: int
    answered_within_sl_today: int
    service_level: float          # answered within SL / (answered + abandoned) today; 1.0 if no calls
    paused_overdue: int = 0       # members paused longer than their reason allows (defaults.pause_reasons)
    sl_target: float = 0.8        # the queue's target share (routing_rules.yaml sl_target)
    sl_seconds: float = 20.0      # answered within this counts toward SL (service_level); a longer wait shows

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _oldest_enqueue(client: redis.Redis, key: str) -> float | None:
    """Waiting sets are ordered by priority first; the oldest caller is the head of one of the few
    priority bands, so walk band heads (O(bands * log n)) instead of reading the whole set."""
    oldest: float | None = None
    lo: str = "-inf"
    for _ in range(300):
        head = client.zrangebyscore(key, lo, "+inf", start=0, num=1, withscores=True)
        if not head:
            break
        score = float(head[0][1])
        prio = -(score // _BAND) if score < 0 else 0.0
        band_start = -prio * _BAND
        enq = score - band_start
        oldest = enq if oldest is None else min(oldest, enq)
        lo = f"({band_start + _BAND}"
    return oldest


def _overdue(limits: dict[str, str], reason: str | None, since: str | None, now: float) -> bool:
    limit = pause_limit(limits, reason)
    return bool(limit) and since is not None and now - float(since) > limit


def overdue_agents(client: redis.Redis, prefix: str = "cc:", now: float | None = None) -> list[dict[str, Any]]:
    """Agents paused longer than their reason's ``defaults.pause_reasons`` max, longest overdue first:
    {agent_id, reason, paused_seconds, limit_seconds}. Reasons with auto_ready only show here between
    the limit and the next tick (about a second)."""
    keys = Keys(prefix)
    now = time.time() if now is None else now
    limits = cast(dict[str, str], client.hgetall(keys.pause_rules()))
    if not limits:
        return []
    agents = sorted(cast(set[str], client.smembers(keys.agents())))
    pipe = client.pipeline(transaction=False)
    for a in agents:
        pipe.hmget(keys.agent(a), ["state", "pause_reason", "since"])
    out = []
    for a, (st, reason, since) in zip(agents, pipe.execute() if agents else [], strict=True):
        if st == "paused" and _overdue(limits, reason, since, now):
            out.append({"agent_id": a, "reason": reason, "paused_seconds": round(now - float(since), 1),
                        "limit_seconds": pause_limit(limits, reason)})
    return sorted(out, key=lambda x: x["limit_seconds"] - x["paused_seconds"])


def queue_stats(client: redis.Redis, prefix: str = "cc:", now: float | None = None) -> list[QueueStats]:
    keys = Keys(prefix)
    now = time.time() if now is None else now
    day = time.strftime("%Y%m%d", time.localtime(now))
    out = []
    limits = cast(dict[str, str], client.hgetall(keys.pause_rules()))
    for q in sorted(cast(set[str], client.smembers(keys.queues()))):
        pipe = client.pipeline(transaction=False)
        pipe.zcard(keys.waiting(q))
        pipe.hgetall(keys.stats(q, day))
        pipe.smembers(keys.members(q))
        pipe.hmget(keys.queue(q), ["sl_target", "service_level"])
        waiting, stats, members, (target, sl_seconds) = pipe.execute()
        stats = {k: float(v) for k, v in stats.items()}
        pipe = client.pipeline(transaction=False)
        members = sorted(members)
        for a in members:
            pipe.hmget(keys.agent(a), ["state", "pause_reason", "since"])
        by_state = dict.fromkeys(STATES, 0)
        overdue = 0
        for st, reason, since in pipe.execute() if members else []:
            s = st if st is not None else "logged_out"
            by_state[s] = by_state.get(s, 0) + 1
            if s == "paused" and _overdue(limits, reason, since, now):
                overdue += 1
        oldest = _oldest_enqueue(client, keys.waiting(q)) if waiting else None
        answered, abandoned = int(stats.get("answered", 0)), int(stats.get("abandoned", 0))
        within = int(stats.get("answered_sl", 0))
        out.append(QueueStats(
            queue=q, waiting=int(waiting),
            oldest_wait_seconds=round(max(0.0, now - oldest), 3) if oldest is not None else 0.0,
            agents_by_state=by_state, offered_today=int(stats.get("offered", 0)), answered_today=answered,
            abandoned_today=abandoned, answered_within_sl_today=within,
            service_level=round(within / (answered + abandoned), 4) if answered + abandoned else 1.0,
            paused_overdue=overdue,
            sl_target=round(float(target), 4) if target else 0.8,
            sl_seconds=float(sl_seconds) if sl_seconds else 20.0,
        ))
    return out


def agent_states(client: redis.Redis, prefix: str = "cc:") -> dict[str, int]:
    keys = Keys(prefix)
    agents = sorted(cast(set[str], client.smembers(keys.agents())))
    counts = dict.fromkeys(STATES, 0)
    if not agents:
        return counts
    pipe = client.pipeline(transaction=False)
    for a in agents:
        pipe.hget(keys.agent(a), "state")
    for st in pipe.execute():
        s = st if st is not None else "logged_out"
        counts[s] = counts.get(s, 0) + 1
    return counts
