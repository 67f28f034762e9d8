"""KPIs over a hand-built set of CDRs, the expected figures worked out by hand in each test.

Runs against SQLite and a real PostgreSQL 15: the aggregate SQL is shared, the numbers must agree.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callcenter.cdr import report
from callcenter.cdr.record import AGENTLOGIN, AGENTLOGOFF, PAUSE, UNPAUSE, CallRecord, QueueEvent
from callcenter.cdr.store import ReportParams, SqlStore
from callcenter.cdr.writer import open_store

TZ = 7 * 3600                                   # Vietnam, UTC+7
D = report.parse_time("2026-11-02", TZ)         # local midnight of the report day
H = 3600.0
DAY = 86400.0


def call(cid: str, caller: str, start: float, queue: str = "billing", *, wait: float, answered: bool = False,
         outcome: str | None = None, talk: float = 0, hold: float = 0, wrapup: float = 0, agent: str | None = None,
         **kw: object) -> CallRecord:
    return CallRecord(
        call_id=cid, direction="inbound", caller=caller, called="19001234", start=start, answer=start,
        end=start + wait + talk + hold + 1, queue=queue, enqueue=start + 1, wait_seconds=wait,
        agent_id=agent if answered else None, agent_answer=start + 1 + wait if answered else None,
        talk_seconds=talk if answered else None, hold_seconds=hold, wrapup_seconds=wrapup if answered else None,
        outcome=outcome or ("answered" if answered else None), **kw)  # type: ignore[arg-type]


# Day D, queue billing (default T = 20 s), callers A..G:
#   c1 A wait 10 answered talk 200 hold 30 wrap 20 csat 5   (agent ag1, 08:10)
#   c2 B wait 25 answered talk 100 hold  0 wrap 10 csat 3   (agent ag1, 09:40)
#   c3 C wait  3 abandoned   -> a short abandon (< 5 s)
#   c4 D wait 40 abandoned
#   c5 E wait 15 answered talk 300 hold 60 wrap 30, transferred to sales (agent ag2)
#   c6 F wait 60 left on the queue timeout
#   c7 G wait  8 chose a callback
# Later: A calls billing again on D+3 (inside the 7-day window: c1 is not resolved at first contact),
#        B calls billing again on D+8 (outside the window: c2 counts as resolved),
#        E calls *sales* on D+1 (another queue: c5 still counts as resolved for billing).
DAY_D = [
    call("c1", "0901000001", D + 8 * H + 600, wait=10, answered=True, talk=200, hold=30, wrapup=20, agent="ag1",
         survey={"csat": 5}),
    call("c2", "0901000002", D + 9 * H + 2400, wait=25, answered=True, talk=100, wrapup=10, agent="ag1",
         survey={"csat": 3}),
    call("c3", "0901000003", D + 10 * H, wait=3, outcome="abandoned", hangup_side="caller"),
    call("c4", "0901000004", D + 10 * H + 60, wait=40, outcome="abandoned", hangup_side="caller"),
    call("c5", "0901000005", D + 11 * H, wait=15, answered=True, talk=300, hold=60, wrapup=30, agent="ag2",
         transferred_to="sales"),
    call("c6", "0901000006", D + 12 * H, wait=60, outcome="timeout"),
    call("c7", "0901000007", D + 13 * H, wait=8, outcome="callback", callback=True),
]
LATER = [
    call("c8", "0901000001", D + 3 * DAY + 9 * H, wait=5, answered=True, talk=60, agent="ag1"),
    call("c9", "0901000002", D + 8 * DAY + 9 * H, wait=5, answered=True, talk=60, agent="ag1"),
    call("c10", "0901000005", D + 1 * DAY + 9 * H, "sales", wait=5, answered=True, talk=60, agent="ag2"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/cdr.db")
    else:
        s = open_store(request.getfixturevalue("pg_dsn"))
    # Arrival order is not call order (several workers, a writer catching up): load newest first.
    for rec in reversed(DAY_D + LATER):
        s.put_call(rec)
    yield s
    s.close()


def day_report(store: SqlStore, **kw: object) -> dict[str, report.Kpi]:
    p = ReportParams(dimension="queue", interval="day", start=D, end=D + DAY, tz_offset_seconds=TZ, **kw)  # type: ignore[arg-type]
    return {r.key: r for r in report.build(store, p)}


def test_counts_service_level_and_abandons(store: SqlStore) -> None:
    k = day_report(store)["billing"]
    assert (k.offered, k.answered, k.abandoned, k.short_abandoned) == (7, 3, 2, 1)
    # answered within T=20 s: c1 (10 s) and c5 (15 s); c2 waited 25 s.
    # SL = answered within T / (offered - short abandons) = 2 / (7 - 1)
    assert k.answered_in_sl == 2
    assert k.service_level == pytest.approx(2 / 6)
    # abandon rate without short abandons: (2 - 1) / (7 - 1); with them: 2 / 7
    assert k.abandon_rate == pytest.approx(1 / 6)
    assert k.abandon_rate_incl_short == pytest.approx(2 / 7)
    assert (k.timeouts, k.callbacks, k.transfers) == (1, 1, 1)


def test_short_abandon_threshold_is_configurable(store: SqlStore) -> None:
    # Threshold 0: nothing is "short"; SL = 2 / 7, abandon rate = 2 / 7.
    k = day_report(store, short_abandon_seconds=0)["billing"]
    assert k.short_abandoned == 0
    assert k.service_level == pytest.approx(2 / 7)
    assert k.abandon_rate == pytest.approx(2 / 7)
    # Threshold 45 s: both abandons (3 s, 40 s) are short; SL = 2 / (7 - 2), abandon rate 0 / 5.
    k = day_report(store, short_abandon_seconds=45)["billing"]
    assert k.short_abandoned == 2
    assert k.service_level == pytest.approx(2 / 5)
    assert k.abandon_rate == 0


def test_per_queue_service_level_target(store: SqlStore) -> None:
    # T = 30 s for billing: c2 (25 s) now counts too -> 3 / 6.
    assert day_report(store, sl_by_queue={"billing": 30.0})["billing"].service_level == pytest.approx(3 / 6)
    assert day_report(store, sl_seconds=5.0)["billing"].service_level == 0


def test_asa_longest_wait_aht(store: SqlStore) -> None:
    k = day_report(store)["billing"]
    # ASA over answered calls only: (10 + 25 + 15) / 3
    assert k.asa == pytest.approx(50 / 3)
    # longest wait over every offered call: c6's 60 s on the timeout
    assert k.longest_wait == 60
    # AHT = (talk + hold + wrap-up) / answered = ((200+30+20) + (100+0+10) + (300+60+30)) / 3 = 750 / 3
    assert k.aht == pytest.approx(250.0)
    assert k.avg_hold == pytest.approx(90 / 3)


def test_csat(store: SqlStore) -> None:
    k = day_report(store)["billing"]
    # two survey answers, 5 and 3: one satisfied (>= 4) -> 50 %, average 4.0
    assert (k.csat_responses, k.csat, k.csat_avg) == (2, 0.5, 4.0)


def test_fcr_repeats_inside_and_outside_window(store: SqlStore) -> None:
    k = day_report(store)["billing"]
    # answered inbound contacts: c1 (A repeats on D+3: inside 7 d -> not FCR), c2 (B repeats on D+8:
    # outside -> FCR), c5 (E's next call is to another queue -> FCR) = 2 / 3
    assert (k.fcr_contacts, k.fcr_resolved) == (3, 2)
    assert k.fcr == pytest.approx(2 / 3)
    # A 2-day window puts A's repeat outside too: 3 / 3
    assert day_report(store, fcr_window_seconds=2 * DAY)["billing"].fcr == 1.0
    # A 9-day window catches B's repeat as well: 1 / 3
    assert day_report(store, fcr_window_seconds=9 * DAY)["billing"].fcr == pytest.approx(1 / 3)


def test_fcr_honours_agent_resolution_flag(store: SqlStore) -> None:
    # The agent marks c5 unresolved: only c2 remains resolved at first contact -> 1 / 3
    store.apply([("disp", {"call_id": "c5", "code": "needs_followup", "resolved": False, "ts": D + 12 * H})])
    assert day_report(store)["billing"].fcr == pytest.approx(1 / 3)
    assert store.get_call("c5").disposition == "needs_followup"


def test_intervals_and_totals(store: SqlStore) -> None:
    p = ReportParams(dimension="queue", interval="day", start=D, end=D + 10 * DAY, tz_offset_seconds=TZ)
    rows = report.build(store, p)
    got = [(report.bucket_label(r.bucket, "day", TZ), r.key, r.offered) for r in rows]
    assert got == [("2026-11-02", "billing", 7), ("2026-11-03", "sales", 1), ("2026-11-05", "billing", 1),
                   ("2026-11-10", "billing", 1)]
    p = ReportParams(dimension="queue", interval="hour", start=D, end=D + DAY, tz_offset_seconds=TZ)
    hours = [(report.bucket_label(r.bucket, "hour", TZ), r.offered) for r in report.build(store, p)]
    assert hours == [("2026-11-02 08:00", 1), ("2026-11-02 09:00", 1), ("2026-11-02 10:00", 2),
                     ("2026-11-02 11:00", 1), ("2026-11-02 12:00", 1), ("2026-11-02 13:00", 1)]
    p = ReportParams(dimension="queue", interval="15m", start=D + 10 * H, end=D + 11 * H, tz_offset_seconds=TZ)
    assert [(report.bucket_label(r.bucket, "15m", TZ), r.offered) for r in report.build(store, p)] == [
        ("2026-11-02 10:00", 2)]
    # A whole-range report over two queues gets a TOTAL row summing them.
    p = ReportParams(dimension="queue", interval="total", start=D, end=D + 10 * DAY, tz_offset_seconds=TZ)
    by_key = {r.key: r for r in report.build(store, p)}
    assert by_key["TOTAL"].offered == by_key["billing"].offered + by_key["sales"].offered == 10
    assert by_key["TOTAL"].longest_wait == 60


def test_agent_occupancy(store: SqlStore) -> None:
    # ag1 logs in at 08:00, pauses 09:00-09:30, logs off at 10:00: 2 h - 30 min = 5400 s available.
    # ag1 handled c1 (200+30+20 = 250 s) and c2 (100+0+10 = 110 s) -> occupancy 360 / 5400.
    evs = [(D + 8 * H, AGENTLOGIN), (D + 9 * H, PAUSE), (D + 9.5 * H, UNPAUSE), (D + 10 * H, AGENTLOGOFF)]
    store.apply([("event", QueueEvent(f"s{i}", ts, None, None, "ag1", ev).to_dict()) for i, (ts, ev) in enumerate(evs)])
    p = ReportParams(dimension="agent", interval="day", start=D, end=D + DAY, tz_offset_seconds=TZ)
    by_agent = {r.key: r for r in report.build(store, p, now=D + 2 * DAY)}
    ag1 = by_agent["ag1"]
    assert ag1.answered == 2 and ag1.handle_seconds == 360
    assert ag1.available_seconds == 5400
    assert ag1.occupancy == pytest.approx(360 / 5400)
    assert ag1.aht == pytest.approx(180.0)
    assert by_agent["ag2"].occupancy is None      # no session events: occupancy unknown, not 0
    # Per hour: 08-09 has c1 (250 s) over 3600 s; 09-10 has c2 (110 s) over 1800 s (paused half).
    p = ReportParams(dimension="agent", interval="hour", start=D, end=D + DAY, tz_offset_seconds=TZ)
    hourly = {report.bucket_label(r.bucket, "hour", TZ): r for r in report.build(store, p, now=D + 2 * DAY)
              if r.key == "ag1"}
    assert hourly["2026-11-02 08:00"].occupancy == pytest.approx(250 / 3600)
    assert hourly["2026-11-02 09:00"].occupancy == pytest.approx(110 / 1800)


def test_campaign_connect_rate(store: SqlStore) -> None:
    base = D + 14 * H
    for i, answered in enumerate([True, True, False]):
        store.put_call(CallRecord(f"o{i}", "outbound", "19001234", f"09020000{i:02d}", start=base + i,
                                  answer=base + i + 5 if answered else None, end=base + i + 60,
                                  campaign="promo", outcome="answered" if answered else "no_answer"))
    p = ReportParams(dimension="campaign", interval="day", start=D, end=D + DAY, tz_offset_seconds=TZ)
    (k,) = report.build(store, p)
    assert (k.key, k.calls, k.connected) == ("promo", 3, 2)
    assert k.connect_rate == pytest.approx(2 / 3)


def test_render_formats(store: SqlStore) -> None:
    p = ReportParams(dimension="queue", interval="day", start=D, end=D + DAY, tz_offset_seconds=TZ)
    rows = report.build(store, p)
    table = report.render(rows, p, "table")
    assert "billing" in table and "33.3%" in table
    csv_text = report.render(rows, p, "csv")
    assert csv_text.splitlines()[0].startswith("interval,queue,offered,answered")
    assert "2026-11-02,billing,7,3,2,1,0.3333" in csv_text
    import json

    data = json.loads(report.render(rows, p, "json"))
    assert data["rows"][0]["service_level"] == pytest.approx(1 / 3)
    assert data["rows"][0]["interval"] == "2026-11-02"


@pytest.mark.parametrize("dimension", ["queue", "agent", "campaign"])
@pytest.mark.parametrize("interval", ["15m", "hour", "day", "total"])
def test_rollups_agree_with_a_calls_scan(store: SqlStore, dimension: str, interval: str) -> None:
    # Rollups are maintained incrementally as records arrive (out of order here), including the
    # predecessor re-rolled when a repeat contact lands and a late disposition.
    store.apply([("disp", {"call_id": "c1", "code": "ok", "resolved": False, "ts": D + 9 * H})])
    store.put_call(call("c11", "0901000002", D + 9 * DAY, wait=2, answered=True, talk=30, agent="ag2"))
    for start, end in [(D, D + 10 * DAY), (D + 8 * H + 300, D + 30 * H + 7)]:  # aligned, and cut mid-bucket
        p = ReportParams(dimension=dimension, interval=interval, start=start, end=end, tz_offset_seconds=TZ)
        fast = store.aggregate(p)
        assert fast == store.aggregate(p, use_rollups=False)
    # with the configured thresholds, the rollups can answer a day report (no ValueError)
    store.aggregate(ReportParams(dimension=dimension, interval=interval, start=D, end=D + DAY,
                                 tz_offset_seconds=TZ), use_rollups=True)


def test_rollup_thresholds_follow_configuration(store: SqlStore) -> None:
    p = ReportParams(dimension="queue", interval="day", start=D, end=D + DAY, tz_offset_seconds=TZ,
                     sl_by_queue={"billing": 30.0})
    with pytest.raises(ValueError, match="rollups cannot answer"):
        store.aggregate(p, use_rollups=True)
    store.set_rollup_params(p)
    assert store.aggregate(p, use_rollups=True) == store.aggregate(p, use_rollups=False)
    assert store.aggregate(p)[0]["answered_in_sl"] == 3
