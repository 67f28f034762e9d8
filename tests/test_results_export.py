"""A campaign's per-contact results CSV (dialer/export.results_csv), made a page at a time on a real
redis-server: two lists of a few thousand contacts (one uploaded before the per-list index existed, indexed on
the way), a number of the second list merged into the first, some contacts dialed. Every contact comes once,
by list (upload order) and line, with its state, attempts, outcome and its list's columns; the CSV comes in
pages, never whole. Through a real worker's HTTP (``GET /campaigns/{id}/results``, http.ChunksBody): chunked,
complete, and a client that goes away in the middle costs nothing (the next download is whole)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis
from worker_proc import WorkerProc, api_user, fetch, running

from callcenter import yamlsrc
from callcenter.auth.roles import CAMPAIGN_MANAGER
from callcenter.dialer import export
from callcenter.dialer.campaign import parse_campaign
from callcenter.dialer.compliance import Compliance
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.outcomes import Decision, OutcomeRecorder
from callcenter.dialer.upload import import_list, parse_csv
from callcenter.redisconn import connect

CAMPAIGN = 'id: ex1\ntype: telesales\ndial_mode: progressive\nqueue: sales\ncaller_id: "02873001234"\n'
FIRST, SECOND = 2500, 1500          # contacts of each list
PAGE = 400


def number(i: int) -> str:
    return f"0912{i:06d}"


async def before_the_index(r: Redis, keys: DialerKeys, list_id: str) -> None:
    """The list as an upload made before the per-list index: no index, no "indexed" in its summary."""
    await r.delete(keys.list_contacts("ex1", list_id))
    summary = json.loads(await r.hget(keys.lists("ex1"), list_id))
    del summary["indexed"]
    await r.hset(keys.lists("ex1"), list_id, json.dumps(summary))


def test_results_csv_is_complete_and_in_pages(redis_url: str) -> None:
    first = "phone,name,amount\n" + "".join(f"{number(i)},Khách {i},={i}+1\n" for i in range(FIRST))
    # the second list: its own column, and the first list's last number again (merged: stays the first's)
    second = "sdt;city\n" + "".join(f"{number(FIRST + i)};Huế {i}\n" for i in range(SECOND)) + f"{number(FIRST - 1)};Vinh\n"
    data, loc = yamlsrc.loads(CAMPAIGN, "ex1.yaml")
    campaign, keys = parse_campaign(data, loc), DialerKeys("t:")

    async def go() -> list[bytes]:
        r = connect(redis_url)
        try:
            await import_list(r, keys, campaign, parse_csv(first.encode()), now=1000.0, list_id="L1")
            await import_list(r, keys, campaign, parse_csv(second.encode()), now=2000.0, list_id="L2")
            await before_the_index(r, keys, "L1")
            await r.hset(keys.contact("ex1", "+84912000007"), mapping={
                "state": "done", "attempts": 2, "last_outcome": "answered", "last_at": 1_800_000_000})
            return [chunk async for chunk in export.results_csv(r, keys, "ex1", page=PAGE)]
        finally:
            await r.aclose()

    chunks = asyncio.run(go())
    assert len(chunks) == 1 + -(-FIRST // PAGE) + -(-SECOND // PAGE)      # the header, then one a page
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8"))))
    assert list(rows[0]) == [*export.COLUMNS, "name", "amount", "city"]
    assert len(rows) == FIRST + SECOND
    assert [r["phone"] for r in rows] == [f"+84{number(i)[1:]}" for i in range(FIRST + SECOND)]
    assert [(r["list"], r["line"]) for r in rows] == [("L1", str(i + 2)) for i in range(FIRST)] + \
        [("L2", str(i + 2)) for i in range(SECOND)]
    assert rows[0] == {"phone": "+84912000000", "state": "pending", "attempts": "0", "last_outcome": "",
                       "last_at": "", "next_at": "1970-01-01T00:16:40+00:00", "list": "L1", "line": "2",
                       "name": "Khách 0", "amount": "'=0+1", "city": ""}
    assert (rows[7]["state"], rows[7]["attempts"], rows[7]["last_outcome"], rows[7]["last_at"]) == \
        ("done", "2", "answered", "2027-01-15T08:00:00+00:00")
    merged = rows[FIRST - 1]
    assert (merged["list"], merged["name"], merged["city"]) == ("L1", f"Khách {FIRST - 1}", "Vinh")
    assert (rows[FIRST]["name"], rows[FIRST]["city"]) == ("", "Huế 0")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[WorkerProc]:
    yield from running(tmp_path_factory.mktemp("results_export"), redis_server.url)


@pytest.mark.sip
@pytest.mark.timeout(120)
def test_results_download_is_chunked_and_whole(worker: WorkerProc) -> None:
    cid, n = "debt_reminder_demo", 3000
    token = api_user(worker.redis_url, "mai", [CAMPAIGN_MANAGER])
    listing = "phone,name\n" + "".join(f"{number(i)},Khách {i}\n" for i in range(n))
    req = urllib.request.Request(f"http://127.0.0.1:{worker.http_port}/campaigns/{cid}/lists",
                                 data=listing.encode(), method="POST",
                                 headers={"authorization": f"Bearer {token}", "content-type": "text/csv"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 201 and json.loads(resp.read())["accepted"] == n

    # a client that reads the start of the answer and goes away
    with socket.create_connection(("127.0.0.1", worker.http_port), timeout=10) as sock:
        sock.sendall(f"GET /campaigns/{cid}/results HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")

    status, headers, body = fetch(worker, f"/campaigns/{cid}/results", token)
    assert status == 200 and headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in headers
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    assert [(r["phone"], r["name"], r["line"]) for r in rows] == \
        [(f"+84{number(i)[1:]}", f"Khách {i}", str(i + 2)) for i in range(n)]
    assert "Traceback" not in worker.tail(200) and "streamed answer failed" not in worker.tail(200)


def test_old_list_indexed_once_and_deleted_list_keeps_its_dials(redis_url: str) -> None:
    """A list from before the index is indexed by the first export only (marked: the next export does no SCAN).
    A list deleted while one of its contacts is being dialed: the other contacts are gone, that one's dial result
    stays in the export under the list's id and it is never dialed again; a list deleted with none being dialed
    leaves nothing behind."""
    data, loc = yamlsrc.loads(CAMPAIGN, "ex1.yaml")
    campaign, keys = parse_campaign(data, loc), DialerKeys("t:")
    old = "phone,name\n" + "".join(f"{number(i)},Cũ {i}\n" for i in range(5))
    doomed = "phone,name\n" + "".join(f"{number(100 + i)},Xoá {i}\n" for i in range(5))
    gone = "phone,name\n" + "".join(f"{number(200 + i)},Hết {i}\n" for i in range(3))

    async def export_rows(r: Redis) -> list[dict[str, str]]:
        chunks = [chunk async for chunk in export.results_csv(r, keys, "ex1")]
        return list(csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8"))))

    async def scans(r: Redis) -> int:
        stats = await r.info("commandstats")
        return int(stats.get("cmdstat_scan", {}).get("calls", 0))

    async def go() -> None:
        r = connect(redis_url)
        try:
            await import_list(r, keys, campaign, parse_csv(old.encode()), now=1000.0, list_id="OLD")
            await import_list(r, keys, campaign, parse_csv(doomed.encode()), now=2000.0, list_id="DEL")
            await import_list(r, keys, campaign, parse_csv(gone.encode()), now=3000.0, list_id="GONE")
            await before_the_index(r, keys, "OLD")

            before = await scans(r)
            assert len(await export_rows(r)) == 13
            assert await scans(r) > before                          # the first export indexed OLD
            assert json.loads(await r.hget(keys.lists("ex1"), "OLD"))["indexed"] is True
            before = await scans(r)
            assert [x["name"] for x in await export_rows(r)][:5] == [f"Cũ {i}" for i in range(5)]
            assert await scans(r) == before                         # the next one read its index

            dialed = keys.contact("ex1", f"+84{number(102)[1:]}")
            await r.hset(dialed, mapping={"state": "leased", "attempts": 1, "lease_owner": "d1"})
            report = await export.change_list(r, keys, "ex1", "DEL", "delete", now=4000.0)
            assert (report["changed"], report["leased"]) == (4, 1)
            assert (await export.change_list(r, keys, "ex1", "GONE", "delete", now=4000.0))["leased"] == 0
            assert not await r.exists(keys.list_contacts("ex1", "GONE"))
            assert sorted(await r.hkeys(keys.lists("ex1"))) == ["OLD"]          # the manager's lists
            assert await r.hkeys(keys.lists_deleted("ex1")) == ["DEL"]
            # the dial ends after the delete, unanswered: not dialed again (finish.lua), its result exported
            # under DEL
            e164 = f"+84{number(102)[1:]}"
            assert await OutcomeRecorder(r, keys).apply(campaign, e164, "no_answer", Decision("pending", 5000.0),
                                                        now=4500.0, dialer_id="d1")
            assert await r.zscore(keys.due("ex1"), e164) is None
            rows = await export_rows(r)
            assert [x["phone"] for x in rows] == [f"+84{number(i)[1:]}" for i in (0, 1, 2, 3, 4, 102)]
            assert {k: rows[-1][k] for k in ("state", "attempts", "last_outcome", "list", "line", "name")} == \
                {"state": "deleted", "attempts": "1", "last_outcome": "no_answer", "list": "DEL", "line": "4",
                 "name": "Xoá 2"}
            # queued again all the same (as a dead dialer's lease recovery does): reserve.lua refuses to dial it
            await r.hset(dialed, "state", "pending")
            await r.zadd(keys.due("ex1"), {e164: 5000.0})
            await r.hset(keys.campaign_state("ex1"), "state", "running")
            held = await Compliance(r, keys).reserve(campaign, e164, 1_800_000_000.0, "d2")
            assert (held.ok, held.reason) == (False, "not_pending")
            assert await r.hget(dialed, "state") == "deleted" and await r.zscore(keys.due("ex1"), e164) is None
        finally:
            await r.aclose()

    asyncio.run(go())
