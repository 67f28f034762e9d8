"""A campaign's per-contact results as CSV (``GET /campaigns/{id}/results``): one row per contact of every
list uploaded to it, with where its dialing stands and its last outcome, then the list's own columns.

Cells are made inert for spreadsheets (``upload.neutralise``: a list may carry a formula someone typed);
times are UTC ISO 8601."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.upload import neutralise

COLUMNS = ("phone", "state", "attempts", "last_outcome", "last_at", "next_at", "list", "line")
TIMES = ("last_at", "next_at")
BATCH = 500


async def contacts(redis: Any, keys: DialerKeys, campaign_id: str) -> list[dict[str, str]]:
    """Every contact hash of the campaign (SCAN over its contact keys, read in pipelined batches)."""
    out: list[dict[str, str]] = []
    batch: list[str] = []

    async def read() -> None:
        pipe = redis.pipeline(transaction=False)
        for key in batch:
            pipe.hgetall(key)
        out.extend(h for h in await pipe.execute() if h)
        batch.clear()

    async for key in redis.scan_iter(match=keys.contact(campaign_id, "*"), count=BATCH):
        batch.append(key.decode() if isinstance(key, bytes) else key)
        if len(batch) >= BATCH:
            await read()
    if batch:
        await read()
    return out


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
