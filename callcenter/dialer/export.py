"""A campaign's per-contact results as CSV (``GET /campaigns/{id}/results``): one row per contact of every
list uploaded to it, with where its dialing stands and its last outcome, then the list's own columns, made and
sent a page at a time (``results_csv``). And an uploaded list reset, recycled or deleted (``change_list``).

Cells are made inert for spreadsheets (``upload.neutralise``: a list may carry a formula someone typed);
times are UTC ISO 8601."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import WatchError

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


LIST_OPS = ("reset", "recycle", "delete")


async def change_list(redis: Any, keys: DialerKeys, campaign_id: str, list_id: str, op: str,
                      now: float) -> dict[str, Any]:
    """Reset, recycle or delete one uploaded list's contacts (``lua/list_op.lua``, a batch of contacts per call,
    so the dialer's reserve never sees half a contact); delete also forgets the list (``lua/list_forget.lua``),
    but not the results of the dials it left running: those contacts stay in the export under the list's id.
    KeyError: no such list."""
    if op not in LIST_OPS:
        raise ValueError(f"op must be one of {', '.join(LIST_OPS)}")
    if not await redis.hexists(keys.lists(campaign_id), list_id):
        raise KeyError(list_id)
    run, index = script(redis, "list_op"), keys.list_contacts(campaign_id, list_id)
    changed = leased = 0
    async for batch in contact_keys(redis, keys, campaign_id):
        done, busy = await run(keys=[keys.due(campaign_id), index, *batch], args=[op, list_id, repr(now)])
        changed, leased = changed + int(done), leased + int(busy)
    if op == "delete":
        await script(redis, "list_forget")(
            keys=[keys.lists(campaign_id), keys.lists_deleted(campaign_id), index], args=[list_id])
    log.info("list changed", campaign=campaign_id, list_id=list_id, op=op, changed=changed, leased=leased)
    return {"campaign": campaign_id, "list_id": list_id, "op": op, "changed": changed, "leased": leased}


def _when(value: str | None) -> str:
    try:
        return datetime.fromtimestamp(float(value or ""), UTC).isoformat(timespec="seconds") if value else ""
    except ValueError:
        return ""


async def results_csv(redis: Any, keys: DialerKeys, campaign_id: str, page: int = BATCH) -> AsyncGenerator[bytes, None]:
    """The CSV as it is made, a page of contacts at a time (bounded memory whatever the campaign's size): the
    header (COLUMNS, then the lists' own columns in upload order), then each list's contacts in line order, read
    off its index (``keys.list_contacts``) in pages of ``page`` by line, their hashes pipelined, the page's rows
    written in a thread. A list uploaded before the index had it is indexed first (one SCAN of the campaign, once:
    its summary is marked). A deleted list's contacts that were being dialed then come under its id."""
    live = await redis.hgetall(keys.lists(campaign_id))
    unindexed = {k for k, v in live.items() if not json.loads(v).get("indexed")}
    if unindexed:
        await _index(redis, keys, campaign_id, unindexed)
    # a deleted list's index holds what its delete left (list_op.lua)
    found = {**(await redis.hgetall(keys.lists_deleted(campaign_id))), **live}
    summaries = {k: json.loads(v) for k, v in found.items()}
    lists = sorted(summaries, key=lambda k: (float(summaries[k].get("uploaded_at") or 0), k))
    extra: dict[str, None] = {}
    for k in lists:
        phone_column = summaries[k].get("phone_column")
        extra.update(dict.fromkeys(c for c in summaries[k].get("columns") or () if c != phone_column and c not in COLUMNS))
    yield await asyncio.to_thread(_rows, [[*COLUMNS, *extra]])
    for list_id in lists:
        index, after = keys.list_contacts(campaign_id, list_id), "-inf"
        while True:       # by line (unique in a list), not by rank: a contact deleted meanwhile shifts no page
            members = await redis.zrangebyscore(index, after, "+inf", start=0, num=page, withscores=True)
            if not members:
                break
            after = f"({members[-1][1]!r}"
            pipe = redis.pipeline(transaction=False)
            for e164, _ in members:
                pipe.hgetall(keys.contact(campaign_id, e164))
            rows = [h for h in await pipe.execute() if h.get("list") == list_id]
            yield await asyncio.to_thread(_rows, [_row(h, extra) for h in rows])


async def _index(redis: Any, keys: DialerKeys, campaign_id: str, lists: set[str]) -> None:
    """``lists``' contacts into their indexes, from the campaign's contact hashes (SCAN batches; idempotent),
    then the lists marked indexed, so the next export reads their indexes."""
    async for batch in contact_keys(redis, keys, campaign_id):
        pipe = redis.pipeline(transaction=False)
        for key in batch:
            pipe.hmget(key, "list", "line", "phone")
        found = [f for f in await pipe.execute() if f[0] in lists and f[2]]
        pipe = redis.pipeline(transaction=False)
        for list_id, line, e164 in found:
            pipe.zadd(keys.list_contacts(campaign_id, list_id), {e164: int(line or 0)})
        await pipe.execute()
    key = keys.lists(campaign_id)
    async with redis.pipeline(transaction=True) as pipe:
        # marked only if no upload or delete changed the lists meanwhile (a deleted one must not come back);
        # else the next export indexes them again (idempotent)
        await pipe.watch(key)
        ids = sorted(lists)
        summaries = await pipe.hmget(key, ids)
        pipe.multi()
        for list_id, summary in zip(ids, summaries, strict=True):
            if summary:
                pipe.hset(key, list_id, json.dumps({**json.loads(summary), "indexed": True}, ensure_ascii=False))
        try:
            await pipe.execute()
        except WatchError:
            log.info("lists changed while indexed: marked on the next export", campaign=campaign_id)
            return
    log.info("lists indexed for the results export", campaign=campaign_id, lists=len(lists))


def _row(contact: dict[str, str], extra: dict[str, None]) -> list[str]:
    data = json.loads(contact.get("data") or "{}")
    fixed = [_when(contact.get(c)) if c in TIMES else contact.get(c, "") for c in COLUMNS]
    return [neutralise(str(v)) for v in (*fixed, *(data.get(k, "") for k in extra))]


def _rows(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")
