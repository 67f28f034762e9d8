"""Campaign run state (running / paused / stopped) and live statistics, shared through Redis.

The state is read by the reservation script on every dial, so pause and stop take effect for the
very next dial in every dialer process, without waiting for a loop to notice.
"""

from __future__ import annotations

import time
from typing import Any

from callcenter import logs
from callcenter.dialer.campaign import Campaign
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.ledger import AbandonLedger
from callcenter.events import bus

log = logs.get("dialer.control")
STATES = ("running", "paused", "stopped")


class CampaignControl:
    def __init__(self, redis: Any, keys: DialerKeys) -> None:
        self.redis = redis
        self.keys = keys
        self.ledger = AbandonLedger(redis, keys)

    async def set_state(self, campaign_id: str, state: str, now: float | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        now = time.time() if now is None else now
        await self.redis.hset(self.keys.campaign_state(campaign_id), mapping={"state": state, "updated": repr(now)})
        log.info("campaign state", campaign=campaign_id, state=state)
        await bus.publish(self.redis, self.keys.prefix, {"type": "campaign.state", "ts": now, "campaign": campaign_id,
                                                         "state": state})

    async def state(self, campaign_id: str) -> str:
        v: str | None = await self.redis.hget(self.keys.campaign_state(campaign_id), "state")
        return v or "stopped"

    async def stats(self, campaign: Campaign, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(k.campaign_state(campaign.id), "state")
        pipe.zcard(k.due(campaign.id))
        pipe.zcount(k.due(campaign.id), "-inf", now)
        pipe.hgetall(k.stats(campaign.id))
        pipe.hlen(k.lists(campaign.id))
        pipe.scard(k.dnc_campaign(campaign.id))
        state, due, due_now, counters, lists, dnc = await pipe.execute()
        view = await self.ledger.view(campaign.id, now, campaign.compliance.abandon_window_days)
        counts = {a: int(b) for a, b in counters.items()}
        return {
            "campaign": campaign.id, "name": campaign.name, "type": campaign.type, "dial_mode": campaign.dial_mode,
            "state": state or "stopped", "pending": due, "due_now": due_now, "lists": lists,
            "campaign_dnc": dnc, "dials": counts.get("dials", 0),
            "outcomes": {a[8:]: b for a, b in counts.items() if a.startswith("outcome:")},
            "blocked": {a[8:]: b for a, b in counts.items() if a.startswith("blocked:")},
            "abandonment": {
                "24h": {"answered": view.day.answered, "abandoned": view.day.abandoned, "rate": view.day.rate,
                        "limit": campaign.compliance.max_abandon_rate_24h},
                "30d": {"answered": view.month.answered, "abandoned": view.month.abandoned,
                        "rate": view.month.rate, "limit": campaign.compliance.max_abandon_rate},
            },
            "compliance_preset": campaign.compliance.preset,
        }
