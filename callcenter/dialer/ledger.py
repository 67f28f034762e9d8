"""The abandonment ledger: live-answered and abandoned calls per campaign, per hour, kept 30+ days.

Abandonment rate = abandoned / calls answered by a person (TCPA's measure; machine answers are
excluded). The rolling windows are read from hour buckets: the oldest bucket is counted whole,
so the rate covers up to one extra hour and errs on the side of the callee.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callcenter.dialer.campaign import Campaign
from callcenter.dialer.keys import DialerKeys

HOUR = 3600


@dataclass(frozen=True)
class LedgerWindow:
    answered: int
    abandoned: int

    @property
    def rate(self) -> float:
        return self.abandoned / self.answered if self.answered else 0.0


@dataclass(frozen=True)
class LedgerView:
    day: LedgerWindow
    month: LedgerWindow


class AbandonLedger:
    def __init__(self, redis: Any, keys: DialerKeys) -> None:
        self.redis = redis
        self.keys = keys

    async def record(self, campaign_id: str, now: float, abandoned: bool) -> None:
        """One call answered by a person; ``abandoned`` when no agent took it within the grace time."""
        hour = int(now // HOUR)
        key = self.keys.ledger(campaign_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(key, f"{hour}:answered", 1)
        if abandoned:
            pipe.hincrby(key, f"{hour}:abandoned", 1)
        await pipe.execute()

    async def view(self, campaign_id: str, now: float, days: int = 30) -> LedgerView:
        raw = await self.redis.hgetall(self.keys.ledger(campaign_id))
        hour_now = int(now // HOUR)
        d_ans = d_ab = m_ans = m_ab = 0
        stale = []
        for field, value in raw.items():
            h_s, _, kind = field.partition(":")
            age = hour_now - int(h_s)
            n = int(value)
            if age > days * 24:
                stale.append(field)
                continue
            if kind == "answered":
                m_ans += n
                d_ans += n if age <= 24 else 0
            else:
                m_ab += n
                d_ab += n if age <= 24 else 0
        if stale:
            await self.redis.hdel(self.keys.ledger(campaign_id), *stale)
        return LedgerView(LedgerWindow(d_ans, d_ab), LedgerWindow(m_ans, m_ab))


def throttle(campaign: Campaign, view: LedgerView, headroom: float = 0.7) -> float:
    """The abandonment target predictive pacing may aim at now (0 = no dialing ahead at all).

    Throttles BEFORE the limit: from ``headroom`` x limit the target falls linearly to 0 at the
    limit, for both the rolling 24 h and the 30-day window. It also keeps enough budget that one
    more abandoned call cannot push the 30-day rate over the limit.
    """
    c = campaign.compliance
    target = campaign.pacing.target_abandon_rate
    for window, limit in ((view.day, c.max_abandon_rate_24h), (view.month, c.max_abandon_rate)):
        if limit <= 0:
            return 0.0
        rate = window.rate
        if rate >= limit:
            return 0.0
        if rate > headroom * limit:
            target = min(target, campaign.pacing.target_abandon_rate * (limit - rate) / (limit * (1 - headroom)))
    # Small samples: with 20 answered calls one abandon is 5%; require budget for one more.
    m = view.month
    if m.answered >= 1 and (m.abandoned + 1) / (m.answered + 1) > c.max_abandon_rate and m.answered < 1000:
        target = min(target, max(0.0, (c.max_abandon_rate * (m.answered + 1) - m.abandoned) / (m.answered + 1)))
    return max(0.0, target)
