"""Compliance enforced at dial time: DNC lists, calling windows in the callee's local time,
per-number caps shared across campaigns, and the attempt reservation (one Lua script).

Upload-time checks are only a courtesy; numbers join the DNC list and windows close after
upload, so every dial goes through :meth:`Compliance.reserve` just before the INVITE.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter import logs
from callcenter.dialer import phone
from callcenter.dialer.campaign import Campaign, in_calling_window, next_window_open
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.scripts import run_durable, script
from callcenter.metrics import DIALER_BLOCKED_TOTAL

log = logs.get("dialer.compliance")



@dataclass(frozen=True)
class Reservation:
    ok: bool
    reason: str = ""
    attempt: int = 0
    retry_at: float | None = None


def callee_zone(campaign: Campaign, e164: str, contact_tz: str | None = None) -> ZoneInfo:
    """The callee's zone: the list's ``timezone`` column, else the number's country, else the campaign's."""
    for name in (contact_tz, phone.country_time_zone(e164), campaign.time_zone):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def window_check(campaign: Campaign, e164: str, now: float, contact_tz: str | None = None) -> float | None:
    """None when ``now`` is inside the callee's calling window, else the epoch when it next opens
    (``inf`` if never)."""
    local = dt.datetime.fromtimestamp(now, callee_zone(campaign, e164, contact_tz))
    if in_calling_window(campaign.compliance, local):
        return None
    nxt = next_window_open(campaign.compliance, local)
    return nxt.timestamp() if nxt else float("inf")


class Compliance:
    def __init__(self, redis: Any, keys: DialerKeys) -> None:
        self.redis = redis
        self.keys = keys

    def _dnc(self, campaign_id: str | None) -> str:
        return self.keys.dnc_campaign(campaign_id) if campaign_id else self.keys.dnc_global()

    async def add_dnc(self, number: str, campaign_id: str | None = None) -> None:
        await self.redis.sadd(self._dnc(campaign_id), number)
        log.info("dnc added", number=number, campaign=campaign_id or "*")

    async def add_dnc_list(self, numbers: list[str], campaign_id: str | None = None, batch: int = 1000) -> int:
        """Put many numbers on a DNC list (an uploaded file); returns how many were not on it yet."""
        added = 0
        for i in range(0, len(numbers), batch):
            added += int(await self.redis.sadd(self._dnc(campaign_id), *numbers[i:i + batch]))
        log.info("dnc list added", numbers=len(numbers), added=added, campaign=campaign_id or "*")
        return added

    async def remove_dnc(self, number: str, campaign_id: str | None = None) -> bool:
        key = self._dnc(campaign_id)
        removed = await self.redis.srem(key, number)
        log.info("dnc removed", number=number, campaign=campaign_id or "*", found=bool(removed))
        return bool(removed)

    async def is_dnc(self, number: str, campaign_id: str | None = None) -> bool:
        if await self.redis.sismember(self.keys.dnc_global(), number):
            return True
        return bool(campaign_id and await self.redis.sismember(self.keys.dnc_campaign(campaign_id), number))

    async def reserve(self, campaign: Campaign, e164: str, now: float, dialer_id: str,
                      contact_tz: str | None = None) -> Reservation:
        """Check every rule for one dial and, if all pass, lease the contact and count the attempt."""
        k = self.keys
        opens = window_check(campaign, e164, now, contact_tz)
        if opens is not None:
            retry = opens if opens != float("inf") else None
            # Out of window is not a failure of the contact: move it to when the window opens.
            if retry is not None:
                await self.redis.zadd(k.due(campaign.id), {e164: retry}, xx=True)
            await self.redis.hincrby(k.stats(campaign.id), "blocked:outside_window", 1)
            self.blocked(campaign, e164, "outside_window")
            return Reservation(False, "outside_window", retry_at=retry)
        c = campaign.compliance
        res = await run_durable(
            self.redis, "reserve",
            keys=[k.campaign_state(campaign.id), k.contact(campaign.id, e164), k.due(campaign.id), k.dnc_global(),
                  k.dnc_campaign(campaign.id), k.cap(c.cap_group, e164), k.leases(dialer_id), k.stats(campaign.id)],
            args=[repr(now), e164, c.max_calls_per_number, c.cap_window, dialer_id,
                  campaign.retry.max_attempts, f"{campaign.id}:{uuid.uuid4().hex}",
                  k.lease_member(campaign.id, e164)])
        if int(res[0]) == 1:
            return Reservation(True, attempt=int(res[1]))
        reason: str = res[1]
        retry_at = float(res[2]) if res[2] else None
        if reason in ("dnc", "number_cap", "max_attempts"):
            self.blocked(campaign, e164, reason)
        return Reservation(False, reason, retry_at=retry_at)

    async def number_cap(self, group: str, e164: str, now: float, cap: int, window: float, *,
                         count: bool, member: str = "") -> float | None:
        """A dial outside campaigns against a cap group's per-number cap (the zset campaign dials of that
        group count in): None when under ``cap`` dials in ``window`` seconds (and, with ``count``, this dial
        is counted), else when the number may be dialed again. ``cap`` 0: no cap."""
        if cap <= 0:
            return None
        res = await script(self.redis, "number_cap")(
            keys=[self.keys.cap(group, e164)],
            args=[repr(now), cap, window, member or uuid.uuid4().hex, "1" if count else "0"])
        return None if int(res[0]) == 1 else float(res[1])

    @staticmethod
    def blocked(campaign: Campaign, e164: str, reason: str) -> None:
        """Count and log a dial that a rule stopped."""
        DIALER_BLOCKED_TOTAL.labels(campaign.id, reason).inc()
        log.info("dial blocked", campaign=campaign.id, number=e164, reason=reason)
