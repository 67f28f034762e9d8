"""The audit log: who did what to which target, from where, when, and how it ended.

Written for every state change made through the API and every read of contact data (a list's
customer columns are personal data). Entries go to one Redis stream (``cc:audit``), capped with
``MAXLEN ~`` so it cannot fill Redis; admins read it with ``GET /admin/audit``. Phone numbers in a
target are masked like in the logs (the audit log is read by more people than the contact list).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from callcenter.auth.keys import AuthKeys
from callcenter.logs import mask_number

NUMBER_FIELDS = frozenset({"number", "phone"})


@dataclass(frozen=True)
class Entry:
    user: str
    roles: list[str]
    action: str          # "POST /agents/{id}/pause" (the route pattern, never the raw path) or "login"
    target: dict[str, str]
    address: str
    status: int
    at: float
    id: str = ""         # its stream id: the next page of a query starts before it

    def as_dict(self) -> dict[str, Any]:
        return {"user": self.user, "roles": self.roles, "action": self.action, "target": self.target,
                "address": self.address, "status": self.status, "at": self.at, "id": self.id}


def mask_target(target: dict[str, Any]) -> dict[str, str]:
    return {k: mask_number(str(v)) if k in NUMBER_FIELDS else str(v) for k, v in target.items() if v is not None}


class AuditLog:
    def __init__(self, redis: Any, keys: AuthKeys, max_entries: int = 1_000_000) -> None:
        self.redis = redis
        self.keys = keys
        self.max_entries = max_entries

    async def record(self, user: str, roles: list[str] | frozenset[str], action: str, target: dict[str, Any],
                     address: str, status: int) -> None:
        fields = {"user": user, "roles": ",".join(sorted(roles)), "action": action,
                  "target": json.dumps(mask_target(target), sort_keys=True), "address": address,
                  "status": str(status)}
        await self.redis.xadd(self.keys.audit(), fields, maxlen=self.max_entries, approximate=True)

    async def query(self, user: str | None = None, action: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 100, before: str | None = None) -> list[Entry]:
        """Newest first. ``action`` matches a substring of the action ("/dnc", "login"); ``before``: an entry's
        id, for the entries older than it (the next page; instead of ``until``)."""
        hi = f"({before}" if before is not None else f"{int((until if until is not None else time.time() + 1) * 1000)}"
        lo = f"{int(since * 1000)}" if since is not None else "-"
        out: list[Entry] = []
        while len(out) < limit:
            batch = await self.redis.xrevrange(self.keys.audit(), max=hi, min=lo, count=500)
            if not batch:
                break
            for sid, raw in batch:
                d: dict[str, str] = raw
                if user and d.get("user") != user or action and action not in d.get("action", ""):
                    continue
                out.append(Entry(d.get("user", ""), [r for r in d.get("roles", "").split(",") if r],
                                 d.get("action", ""), json.loads(d.get("target") or "{}"), d.get("address", ""),
                                 int(d.get("status") or 0), int(sid.split("-")[0]) / 1000, sid))
                if len(out) >= limit:
                    break
            last: str = batch[-1][0]
            ms, seq = (int(x) for x in last.split("-"))
            hi = f"{ms}-{seq - 1}" if seq else f"{ms - 1}"   # exclusive of the last one read
            if len(batch) < 500:
                break
        return out
