"""Which agent a campaign contact belongs to: the agent who took it in preview, or the agent a dialed
call was connected to. It stays on the contact (field ``agent`` of its hash) after the call, so the
agent can still write the disposition during wrap-up.

The API uses it to keep agents to their own customers: a user whose only role is ``agent`` reads and
disposes only contacts assigned to its agent id (anything else would let an agent page through a debt
list by guessing numbers).
"""

from __future__ import annotations

from typing import Any

from callcenter.dialer.keys import DialerKeys

FIELD = "agent"


async def assign(redis: Any, keys: DialerKeys, cid: str, e164: str, agent: str) -> None:
    await redis.hset(keys.contact(cid, e164), FIELD, agent)


async def assigned_agent(redis: Any, keys: DialerKeys, cid: str, e164: str) -> str | None:
    value: str | None = await redis.hget(keys.contact(cid, e164), FIELD)
    return value or None
