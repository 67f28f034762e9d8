"""A campaign's per-contact results as CSV (``GET /campaigns/{id}/results``): one row per contact of every
list uploaded to it, with where its dialing stands and its last outcome, then the list's own columns. And an
uploaded list reset, recycled or deleted (``change_list``).

Cells are made inert for spreadsheets (``upload.neutralise``: a list may carry a formula someone typed);
times are UTC ISO 8601."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from callcenter import logs
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.scripts import script
from callcenter.dialer.upload import neutralise

log = logs.get("dialer.lists")

COLUMNS = ("phone", "state", "attempts", "last_outcome", "last_at", "next_at", "list", "line")
TIMES = ("last_at", "next_at")
BATCH = 500


async def contact_keys(redis: Any, keys: DialerKeys, campaign_id: str) -> AsyncIterator[list[str]]:
    """The campaign's contact keys (SCAN), in batches of at most BATCH."""
    batch: list[str] = []
    async for key in redis.scan_iter(match=keys.contact(campaign_id, "*"), count=BATCH):
        batch.append(key.decode() if isinstance(key, bytes) else key)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def contacts(redis: Any, keys: DialerKeys, campaign_id: str) -> list[dict[str, str]]:
    """Every contact hash of the campaign, read in pipelined batches."""
    out: list[dict[str, str]] = []
    async for batch in contact_keys(redis, keys, campaign_id):
        pipe = redis.pipeline(transaction=False)
        for key in batch:
            pipe.hgetall(key)
        out.extend(h for h in await pipe.execute() if h)
    return out


LIST_OPS = ("reset", "recycle", "delete")


async def change_list(redis: Any, keys: DialerKeys, campaign_id: str, list_id: str, op: str,
                      now: float) -> dict[str, Any]:
    """Reset, recycle or delete one uploaded list's contacts (``lua/list_op.lua``, a batch of contacts per call,
    so the dialer's reserve never sees half a contact); delete also forgets the list. KeyError: no such list."""
    if op not in LIST_OPS:
        raise ValueError(f"op must be one of {', '.join(LIST_OPS)}")
    if not await redis.hexists(keys.lists(campaign_id), list_id):
        raise KeyError(list_id)
    run = script(redis, "list_op")
    changed = leased = 0
    async for batch in contact_keys(redis, keys, campaign_id):
        done, busy = await run(keys=[keys.due(campaign_id), *batch], args=[op, list_id, repr(now)])
        changed, leased = changed + int(done), leased + int(busy)
    if op == "delete":
        await redis.hdel(keys.lists(campaign_id), list_id)
    log.info("list changed", campaign=campaign_id, list_id=list_id, op=op, changed=changed, leased=leased)
    return {"campaign": campaign_id, "list_id": list_id, "op": op, "changed": changed, "leased": leased}


def _when(value: str | None) -> str:
    try:
        return datetime.fromtimestamp(float(value or ""), UTC).isoformat(timespec="seconds") if value else ""
    except ValueError:
        return ""


def to_csv(rows: list[dict[str, str]]) -> str:
    """The CSV text: COLUMNS, then the lists' columns (in the order first seen), contacts by list and line."""
    data = [json.loads(r.get("data") or "{}") for r in rows]
    extra: dict[str, None] = {}
    for d in data:
        extra.update(dict.fromkeys(k for k in d if k not in COLUMNS))
    order = sorted(range(len(rows)), key=lambda i: (rows[i].get("list", ""), int(rows[i].get("line") or 0)))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*COLUMNS, *extra])
    for i in order:
        r = rows[i]
        fixed = [_when(r.get(c)) if c in TIMES else r.get(c, "") for c in COLUMNS]
        w.writerow([neutralise(str(v)) for v in (*fixed, *(data[i].get(k, "") for k in extra))])
    return buf.getvalue()
