"""Outcomes of dial attempts and agent dispositions: what happens to the contact next.

The decision (:func:`decide`, :func:`decide_disposition`) is pure; :class:`OutcomeRecorder`
applies it in Redis with one Lua script that also releases the dialer's lease.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from callcenter import logs
from callcenter.dialer.campaign import Campaign
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.scripts import script

log = logs.get("dialer.outcomes")

DISPOSITIONS = ("sale", "promise_to_pay", "callback", "wrong_number", "dnc", "not_interested", "completed",
                "no_contact")


@dataclass(frozen=True)
class Decision:
    state: str                      # pending | answered | done | exhausted | invalid | dnc
    next_at: float | None = None    # epoch of the next attempt when pending
    add_dnc: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


def decide(campaign: Campaign, outcome: str, attempts: int, now: float) -> Decision:
    """After a dial attempt. ``answered_human`` waits for the agent's (or IVR's) disposition."""
    if outcome == "answered_human":
        return Decision("answered")
    if outcome == "invalid":
        return Decision("invalid")
    delay = campaign.retry.delay(outcome)
    if delay is None:
        return Decision("done")
    if attempts >= campaign.retry.max_attempts:
        return Decision("exhausted")
    return Decision("pending", now + delay)


def decide_disposition(campaign: Campaign, disposition: str, now: float, attempts: int,
                       details: dict[str, Any] | None = None) -> Decision:
    """After a conversation: close, reschedule (callback) or add to DNC. Raises ValueError on bad input."""
    details = dict(details or {})
    if disposition not in DISPOSITIONS:
        raise ValueError(f"unknown disposition {disposition!r}; one of {', '.join(DISPOSITIONS)}")
    fields = {"disposition": disposition, **{f"d_{k}": v for k, v in details.items()}}
    if disposition == "callback":
        at = details.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) or at <= now:
            raise ValueError("callback needs 'at' (epoch seconds in the future)")
        return Decision("pending", float(at), fields=fields)
    if disposition == "promise_to_pay":
        if "amount" not in details or "date" not in details:
            raise ValueError("promise_to_pay needs 'amount' and 'date'")
        return Decision("done", fields=fields)
    if disposition == "wrong_number":
        return Decision("invalid", fields=fields)
    if disposition == "dnc":
        return Decision("dnc", add_dnc=True, fields=fields)
    if disposition == "no_contact":      # answered but nobody useful (child, hang-up): retry normally
        d = decide(campaign, "no_answer", attempts, now)
        return Decision(d.state, d.next_at, fields=fields)
    return Decision("done", fields=fields)


class OutcomeRecorder:
    def __init__(self, redis: Any, keys: DialerKeys) -> None:
        self.redis = redis
        self.keys = keys

    async def apply(self, campaign: Campaign, e164: str, outcome: str, decision: Decision, now: float,
                    dialer_id: str = "") -> bool:
        """Write the decision; False when ``dialer_id`` no longer owns the lease (it was recovered)."""
        k = self.keys
        # A callee's "do not call me" reaches every campaign that advertises; a debtor's stops
        # this campaign only (debt reminders within Circular 18 limits remain lawful).
        dnc_key = k.dnc_campaign(campaign.id) if campaign.type == "debt_reminder" else k.dnc_global()
        ok = await script(self.redis, "finish")(
            keys=[k.contact(campaign.id, e164), k.due(campaign.id), k.leases(dialer_id or "-"),
                  k.stats(campaign.id), dnc_key],
            args=[repr(now), outcome, decision.state, "" if decision.next_at is None else repr(decision.next_at),
                  dialer_id, e164, k.lease_member(campaign.id, e164), "1" if decision.add_dnc else "0",
                  json.dumps(decision.fields, ensure_ascii=False, default=str) if decision.fields else "{}"])
        if not int(ok):
            log.warning("outcome for a lease we no longer own", campaign=campaign.id, number=e164,
                        outcome=outcome)
        return bool(int(ok))

    async def attempts(self, campaign_id: str, e164: str) -> int:
        v = await self.redis.hget(self.keys.contact(campaign_id, e164), "attempts")
        return int(v or 0)

    async def dispose(self, campaign: Campaign, e164: str, disposition: str, now: float,
                      details: dict[str, Any] | None = None) -> Decision:
        """An agent's (or IVR's) disposition for a contact that was answered. KeyError if unknown."""
        state = await self.redis.hget(self.keys.contact(campaign.id, e164), "state")
        if state is None:
            raise KeyError(f"no such contact in campaign {campaign.id}")
        d = decide_disposition(campaign, disposition, now, await self.attempts(campaign.id, e164), details)
        await self.apply(campaign, e164, disposition, d, now)
        return d
