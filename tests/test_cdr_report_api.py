"""`callcenter report` and GET /reports/{kind}: formats, parameters, and clear errors on bad input."""

from __future__ import annotations

import asyncio
import json

import pytest

from callcenter import cli
from callcenter.api.http import HttpError, HttpRouter, Request
from callcenter.api.reports import install_routes
from callcenter.cdr import report
from callcenter.cdr.record import CallRecord
from callcenter.cdr.writer import open_store

TZ = 7 * 3600
D = report.parse_time("2026-11-02", TZ)


@pytest.fixture
def db(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/cdr.db"
    store = open_store(url)
    for i, (wait, answered) in enumerate([(5, True), (30, True), (2, False), (50, False)]):
        store.put_call(CallRecord(f"r{i}", "inbound", f"090100000{i}", "1900", start=D + 3600 * (8 + i),
                                  queue="billing", wait_seconds=wait, agent_id="ag1" if answered else None,
                                  agent_answer=D + 3600 * (8 + i) + wait if answered else None,
                                  talk_seconds=100 if answered else None,
                                  outcome="answered" if answered else "abandoned"))
    store.close()
    return url


def test_cli_report_csv(db: str, capsys) -> None:
    rc = cli.main(["report", "--store", db, "--by", "queue", "--interval", "day", "--from", "2026-11-02",
                   "--to", "2026-11-03", "--format", "csv"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    # offered 4, answered 2, abandoned 2 (1 short); SL = 1 / (4 - 1)
    assert lines[1].startswith("2026-11-02,billing,4,2,2,1,0.3333,")


def test_cli_report_table_and_json(db: str, capsys, tmp_path) -> None:
    assert cli.main(["report", "--store", db, "--from", "2026-11-02", "--to", "2026-11-03"]) == 0
    out = capsys.readouterr().out
    assert "billing" in out and "33.3%" in out
    target = tmp_path / "r.json"
    assert cli.main(["report", "--store", db, "--from", "2026-11-02", "--to", "2026-11-03", "--format", "json",
                     "--sl-queue", "billing=30", "-o", str(target)]) == 0
    data = json.loads(target.read_text())
    assert data["rows"][0]["service_level"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("args, message", [
    (["--from", "yesterday"], "bad time 'yesterday'"),
    (["--from", "2026-11-03", "--to", "2026-11-02"], "--to must be after --from"),
    (["--sl-queue", "billing"], "use QUEUE=SECONDS"),
    (["--tz", "Asia/Saigon"], "bad timezone offset"),
])
def test_cli_report_bad_input(db: str, capsys, args: list[str], message: str) -> None:
    assert cli.main(["report", "--store", db, *args]) == 2
    assert message in capsys.readouterr().err


def handler(db: str):
    router = HttpRouter()
    install_routes(router, open_store(db))
    route, = router.routes
    assert route.method == "GET" and route.regex.match("/reports/queue")
    return route.handler


def request(kind: str, **query: str) -> Request:
    return Request("GET", f"/reports/{kind}", {"kind": kind}, {k: [v] for k, v in query.items()}, {}, b"")


def test_api_report_json_and_csv(db: str) -> None:
    fn = handler(db)
    resp = asyncio.run(fn(request("queue", **{"from": "2026-11-02", "to": "2026-11-03", "interval": "hour"})))
    assert resp.status == 200
    rows = resp.body["rows"]
    assert [r["interval"] for r in rows] == ["2026-11-02 08:00", "2026-11-02 09:00", "2026-11-02 10:00",
                                             "2026-11-02 11:00"]
    resp = asyncio.run(fn(request("agent", **{"from": "2026-11-02", "to": "2026-11-03", "format": "csv"})))
    assert resp.content_type.startswith("text/csv")
    assert resp.body.decode().splitlines()[1].startswith("2026-11-02,ag1,2,")


@pytest.mark.parametrize("kind, query, status", [
    ("nope", {}, 404),
    ("queue", {"interval": "week"}, 400),
    ("queue", {"from": "soon"}, 400),
    ("queue", {"format": "xml"}, 400),
])
def test_api_report_bad_request(db: str, kind: str, query: dict[str, str], status: int) -> None:
    with pytest.raises(HttpError) as err:
        asyncio.run(handler(db)(request(kind, **query)))
    assert err.value.status == status


def test_cli_report_defaults_to_configured_thresholds(db: str, capsys) -> None:
    from callcenter.cdr.store import ReportParams

    store = open_store(db)
    store.set_rollup_params(ReportParams(sl_by_queue={"billing": 30.0}))   # what `cdr-writer --sl-queue` does
    store.close()
    assert cli.main(["report", "--store", db, "--from", "2026-11-02", "--to", "2026-11-03", "--format", "csv"]) == 0
    # waits 5 and 30 are both within 30 s: SL = 2 / (4 - 1)
    assert capsys.readouterr().out.splitlines()[1].startswith("2026-11-02,billing,4,2,2,1,0.6667,")
