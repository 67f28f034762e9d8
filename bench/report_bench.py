"""Report generation over N synthetic CDRs (default 10 million) in SQLite and/or PostgreSQL.

    .venv/bin/python bench/report_bench.py --rows 1000000 --store sqlite
    .venv/bin/python bench/report_bench.py --store both          # 10M rows, starts a temp PostgreSQL

Rows are generated inside the database (recursive CTE / generate_series) with the store's own
schema and indexes, over 30 days, 20 queues, 500 agents, 10 campaigns; then each report is timed
through the same code path as `callcenter report` (SqlStore.aggregate + kpi formulas).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from callcenter.cdr import report  # noqa: E402
from callcenter.cdr.store import ReportParams, SqlStore  # noqa: E402
from callcenter.cdr.writer import open_store  # noqa: E402

T0 = 1_790_000_000.0     # 2026-09-21
SL_TARGETS = {"q1": 30.0, "q2": 10.0}   # the operator's per-queue targets; rollups are built with them
DAYS = 30


def columns_sql(i: str, r1: str, r2: str, r3: str, mod: str) -> str:
    """SELECT list of one synthetic call from row number ``i`` and random integers r1..r3."""
    span = DAYS * 86400
    return f"""
  'c' || {i},
  CASE WHEN {mod}({r1}, 5) = 0 THEN 'outbound' ELSE 'inbound' END,
  '09' || {mod}({r2}, 100000000), '19001234',
  {T0} + {i} * {span}.0 / :rows,
  {T0} + {i} * {span}.0 / :rows + 1,
  {T0} + {i} * {span}.0 / :rows + 300,
  'q' || {mod}({r1}, 20),
  {T0} + {i} * {span}.0 / :rows + 20,
  {mod}({r3}, 120),
  CASE WHEN {mod}({r2}, 10) < 8 THEN 'a' || {mod}({r3}, 500) END,
  CASE WHEN {mod}({r2}, 10) < 8 THEN {T0} + {i} * {span}.0 / :rows + 40 END,
  CASE WHEN {mod}({r2}, 10) < 8 THEN 60 + {mod}({r1}, 400) END,
  CASE WHEN {mod}({r2}, 10) < 8 THEN {mod}({r3}, 30) ELSE 0 END,
  CASE WHEN {mod}({r2}, 10) < 8 THEN {mod}({r2}, 60) END,
  CASE WHEN {mod}({r2}, 10) >= 8 THEN 'caller' ELSE 'agent' END,
  CASE WHEN {mod}({r2}, 10) < 8 THEN 'answered' WHEN {mod}({r2}, 10) = 8 THEN 'abandoned' ELSE 'timeout' END,
  CASE WHEN {mod}({r1}, 5) = 0 THEN 'camp' || {mod}({r2}, 10) END,
  CASE WHEN {mod}({r3}, 7) = 0 THEN 1 + {mod}({r1}, 5) END,
  CASE WHEN {mod}({r1}, 50) = 0 THEN 'q0' END,
  CASE WHEN {mod}({r2}, 40) = 0 THEN 1 ELSE 0 END,
  'k' || {mod}({r2}, 2000000),
  CASE WHEN {mod}({r3}, 6) = 0 THEN {T0} + {i} * {span}.0 / :rows + {mod}({r1}, 14 * 86400) END,
  1"""


INSERT_COLS = ("call_id, direction, caller, called, start_ts, answer_ts, end_ts, queue, enqueue_ts, wait_seconds, "
               "agent_id, agent_answer_ts, talk_seconds, hold_seconds, wrapup_seconds, hangup_side, outcome, "
               "campaign, csat, transferred_to, callback, cust_key, next_contact_ts, version")


def load_sqlite(store: SqlStore, rows: int) -> None:
    conn = store._conn  # type: ignore[attr-defined]
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-200000")
    idx = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
                                      "AND tbl_name='cdr_calls'")]
    for name in [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index' "
                                            "AND sql IS NOT NULL AND tbl_name='cdr_calls'")]:
        conn.execute(f"DROP INDEX {name}")
    r = "abs(random())"
    sel = columns_sql("i", r, r, r, "mod").replace(":rows", str(rows))
    sel = sel.replace("mod(", "_m(")
    conn.create_function("_m", 2, lambda a, b: a % b, deterministic=True)
    conn.execute("BEGIN")
    conn.execute(f"WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < {rows - 1}) "
                 f"INSERT INTO cdr_calls ({INSERT_COLS}) SELECT {sel} FROM seq")
    conn.execute("COMMIT")
    for stmt in idx:
        conn.execute(stmt)
    conn.execute("ANALYZE")


def load_pg(store: SqlStore, rows: int) -> None:
    r = "(random() * 2147483647)::bigint"
    sel = columns_sql("i", "r1", "r2", "r3", "mod").replace(":rows", str(rows))
    conn = store._connect()  # type: ignore[attr-defined]
    idx = [r_[0] for r_ in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'cdr_calls' "
                                        "AND indexname <> 'cdr_calls_pkey'").fetchall()]
    for name in [r_[0] for r_ in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'cdr_calls' "
                                              "AND indexname <> 'cdr_calls_pkey'").fetchall()]:
        conn.execute(f"DROP INDEX {name}")
    conn.execute(f"INSERT INTO cdr_calls ({INSERT_COLS}) SELECT {sel} FROM "
                 f"(SELECT i, {r} AS r1, {r} AS r2, {r} AS r3 FROM generate_series(0, {rows - 1}) AS i) g")
    for stmt in idx:
        conn.execute(stmt)
    conn.execute("VACUUM ANALYZE cdr_calls")


REPORTS = [
    ("day x queue, 30 days", dict(dimension="queue", interval="day")),
    ("day x queue, calls scan", dict(dimension="queue", interval="day", scan=True)),
    ("hour x queue, 30 days", dict(dimension="queue", interval="hour")),
    ("day x agent, 30 days", dict(dimension="agent", interval="day")),
    ("day x campaign, 30 days", dict(dimension="campaign", interval="day")),
    ("15m x queue, 1 day", dict(dimension="queue", interval="15m", days=1)),
]


def run_reports(name: str, store: SqlStore, rows: int) -> list[tuple[str, float, int]]:
    out = []
    for label, spec in REPORTS:
        spec = dict(spec)
        days = spec.pop("days", DAYS)
        scan = spec.pop("scan", False)
        start = T0 + 10 * 86400 if days == 1 else T0 - 86400
        p = ReportParams(start=start, end=start + (days + 1) * 86400 if days != 1 else start + 86400,
                         tz_offset_seconds=7 * 3600, sl_by_queue=SL_TARGETS, **spec)
        t = time.perf_counter()
        if scan:   # the same report without rollups: what a non-default threshold costs
            result = [report.kpi.from_sums(s) for s in store.aggregate(p, use_rollups=False)]
        else:
            result = report.build(store, p, now=T0 + 40 * 86400)
        text = report.render(result, p, "csv")
        dt = time.perf_counter() - t
        out.append((label, dt, len(result)))
        print(f"{name:10s} {rows:>10,} rows  {label:26s} {dt:7.2f} s  ({len(result)} rows, {len(text)} bytes)",
              flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--store", choices=["sqlite", "pg", "both"], default="both")
    ap.add_argument("--sqlite-path", help="reuse/keep this SQLite file (default: a temp file)")
    ap.add_argument("--pg-dsn", help="use this PostgreSQL (tables are dropped!); default: start a temporary one")
    args = ap.parse_args()

    if args.store in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="cc-bench-") as tmp:
            path = args.sqlite_path or f"{tmp}/cdr.db"
            store = open_store(f"sqlite:///{path}")
            have = store.counts()["cdr_calls"]
            if have != args.rows:
                store._conn.execute("DELETE FROM cdr_calls")  # type: ignore[attr-defined]
                store._conn.execute("DELETE FROM cdr_rollup")  # type: ignore[attr-defined]
                t = time.perf_counter()
                load_sqlite(store, args.rows)
                print(f"sqlite     loaded {args.rows:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
                t = time.perf_counter()
                store.rollup_params = ReportParams(sl_by_queue=SL_TARGETS)
                store.rebuild_rollups()
                print(f"sqlite     built 15-minute rollups in {time.perf_counter() - t:.1f} s", flush=True)
            run_reports("sqlite", store, args.rows)
            store.close()

    if args.store in ("pg", "both"):
        server = None
        dsn = args.pg_dsn
        if dsn is None:
            sys.path.insert(0, str(REPO / "tests"))
            from pg import PgServer, pg_missing_reason

            reason = pg_missing_reason()
            if reason:
                print(f"postgres   skipped: {reason}")
                return 0
            server = PgServer().start()
            dsn = server.dsn
        try:
            store = open_store(dsn)
            store._execute("TRUNCATE cdr_calls, cdr_rollup, cdr_rollup_dirty")
            t = time.perf_counter()
            load_pg(store, args.rows)
            print(f"postgres   loaded {args.rows:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
            t = time.perf_counter()
            store.rollup_params = ReportParams(sl_by_queue=SL_TARGETS)
            store.rebuild_rollups()
            print(f"postgres   built 15-minute rollups in {time.perf_counter() - t:.1f} s", flush=True)
            run_reports("postgres", store, args.rows)
            store.close()
        finally:
            if server is not None:
                server.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
