"""The CDR store: schema, idempotent merging upserts and the KPI aggregate query.

The SQL is shared by SQLite and PostgreSQL (``sqlite_store``/``pg_store`` supply the connection
and the few dialect differences). The writer delivers every stream entry at least once, so each
write is idempotent:

* calls and legs are upserted by id and merged field by field: a snapshot with a higher
  ``version`` wins for the fields it knows; an older snapshot only fills fields still empty. So a
  late "answered" snapshot never erases the "ended" one, and a replay changes nothing.
* queue events are inserted by ``event_id`` with ON CONFLICT DO NOTHING.
* an agent's disposition overwrites the call's code unless a newer disposition is already stored.

FCR needs "did this customer contact this queue again within N days", which is asked of millions
of rows per report. Each inbound call therefore keeps ``next_contact_ts``: the start of the same
customer's next call to the same queue, maintained on every upsert (either arrival order works:
a call takes its successor's start and lowers its predecessor's). The window stays a report-time
parameter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from callcenter.cdr.record import CallRecord, Disposition, LegRecord, QueueEvent
from callcenter.exceptions import CallcenterError


class StoreUnavailable(CallcenterError):
    """The database cannot be reached; the writer keeps the entries and retries."""


# (record field, column) for CallRecord; merged by version.
CALL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("direction", "direction"), ("caller", "caller"), ("called", "called"), ("start", "start_ts"),
    ("answer", "answer_ts"), ("end", "end_ts"), ("ivr_path", "ivr_path"), ("ivr_digits", "ivr_digits"),
    ("language", "language"), ("queue", "queue"), ("enqueue", "enqueue_ts"), ("wait_seconds", "wait_seconds"),
    ("agent_id", "agent_id"), ("agent_answer", "agent_answer_ts"), ("talk_seconds", "talk_seconds"),
    ("hold_seconds", "hold_seconds"), ("wrapup_seconds", "wrapup_seconds"), ("hangup_side", "hangup_side"),
    ("hangup_cause", "hangup_cause"), ("disposition", "disposition"), ("resolved", "resolved"),
    ("campaign", "campaign"), ("customer_id", "customer_id"), ("survey", "survey"), ("csat", "csat"),
    ("transferred_to", "transferred_to"), ("callback", "callback"), ("outcome", "outcome"),
    ("worker_id", "worker_id"), ("hold_count", "hold_count"),
    ("recording", "recording"), ("recording_consent", "recording_consent"),
    ("recording_takes", "recording_takes"),
)
LEG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("call_id", "call_id"), ("kind", "kind"), ("uri", "uri"), ("agent_id", "agent_id"), ("start", "start_ts"),
    ("answer", "answer_ts"), ("end", "end_ts"), ("sip_code", "sip_code"), ("result", "result"),
)
AGG_COLUMNS_DDL = ("calls", "offered", "answered", "abandoned", "short_abandoned", "answered_in_sl", "timeouts",
                   "callbacks", "transfers", "wait_answered_sum", "wait_abandoned_sum", "max_wait", "talk_sum",
                   "hold_sum", "wrapup_sum", "csat_responses", "csat_sum", "csat_satisfied", "fcr_contacts",
                   "fcr_resolved", "connected")
_REAL = "{real}"
_TEXT = "TEXT"
_INT = "{int}"

CALL_TYPES = {
    "start_ts": _REAL, "answer_ts": _REAL, "end_ts": _REAL, "enqueue_ts": _REAL, "wait_seconds": _REAL,
    "agent_answer_ts": _REAL, "talk_seconds": _REAL, "hold_seconds": _REAL, "wrapup_seconds": _REAL,
    "resolved": _INT, "csat": _INT, "callback": _INT, "hold_count": _INT, "recording_consent": _INT,
    "recording_takes": _INT,
}
LEG_TYPES = {"start_ts": _REAL, "answer_ts": _REAL, "end_ts": _REAL, "sip_code": _INT}

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS cdr_calls (call_id TEXT PRIMARY KEY, "
    + ", ".join(f"{col} {CALL_TYPES.get(col, _TEXT)}" for _, col in CALL_COLUMNS)
    + ", cust_key TEXT, next_contact_ts {real}, disp_ts {real}, version {bigint} NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS cdr_legs (leg_id TEXT PRIMARY KEY, "
    + ", ".join(f"{col} {LEG_TYPES.get(col, _TEXT)}" for _, col in LEG_COLUMNS)
    + ", version {bigint} NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS cdr_events (event_id TEXT PRIMARY KEY, ts {real} NOT NULL, call_id TEXT, "
    "queue TEXT, agent_id TEXT, event TEXT NOT NULL, data TEXT)",
    "CREATE TABLE IF NOT EXISTS cdr_rollup (dim TEXT NOT NULL, bucket {real} NOT NULL, k TEXT NOT NULL, "
    + ", ".join(f"{c} {{real}}" for c in AGG_COLUMNS_DDL) + ", PRIMARY KEY (dim, bucket, k))",
    "CREATE TABLE IF NOT EXISTS cdr_rollup_dirty (bucket {real} PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS cdr_meta (name TEXT PRIMARY KEY, value TEXT)",
    "CREATE INDEX IF NOT EXISTS cdr_calls_start ON cdr_calls (start_ts)",
    "CREATE INDEX IF NOT EXISTS cdr_calls_queue_start ON cdr_calls (queue, start_ts)",
    "CREATE INDEX IF NOT EXISTS cdr_calls_agent_start ON cdr_calls (agent_id, start_ts)",
    "CREATE INDEX IF NOT EXISTS cdr_calls_campaign_start ON cdr_calls (campaign, start_ts)",
    "CREATE INDEX IF NOT EXISTS cdr_calls_contact ON cdr_calls (cust_key, queue, start_ts)",
    "CREATE INDEX IF NOT EXISTS cdr_calls_cust_start ON cdr_calls (cust_key, start_ts)",
    "CREATE INDEX IF NOT EXISTS cdr_legs_call ON cdr_legs (call_id)",
    "CREATE INDEX IF NOT EXISTS cdr_events_call ON cdr_events (call_id, ts)",
    "CREATE INDEX IF NOT EXISTS cdr_events_agent ON cdr_events (agent_id, ts)",
    "CREATE INDEX IF NOT EXISTS cdr_events_ts ON cdr_events (ts)",
    "CREATE INDEX IF NOT EXISTS cdr_events_kind_ts ON cdr_events (event, ts)",
]

_STRING_DEFAULTS = {"ivr_path", "ivr_digits", "language"}
ROLLUP_SECONDS = 900


CONTACT_COLUMNS = "cust_key, queue, start_ts, direction"   # what FCR links a call by (_link_contact)


def _merge(table: str, col: str) -> str:
    # The newer snapshot wins for what it knows; an older one only fills holes.
    return (f"{col} = CASE WHEN excluded.version >= {table}.version "
            f"THEN COALESCE(excluded.{col}, {table}.{col}) ELSE COALESCE({table}.{col}, excluded.{col}) END")


def _call_upsert_sql() -> str:
    cols = [c for _, c in CALL_COLUMNS]
    insert_cols = ["call_id", *cols, "cust_key", "version"]
    sets = []
    for c in [*cols, "cust_key"]:
        if c in ("disposition", "resolved"):
            # An agent's disposition (disp_ts set) outranks the one the worker carried.
            sets.append(f"{c} = CASE WHEN cdr_calls.disp_ts IS NOT NULL THEN cdr_calls.{c} ELSE "
                        f"{_merge('cdr_calls', c).split(' = ', 1)[1]} END")
        else:
            sets.append(_merge("cdr_calls", c))
    sets.append("version = CASE WHEN excluded.version > cdr_calls.version THEN excluded.version "
                "ELSE cdr_calls.version END")
    # RETURNING: the merged row's contact fields (_link_contact), without a SELECT after each upsert
    return (f"INSERT INTO cdr_calls ({', '.join(insert_cols)}) VALUES ({', '.join('?' * len(insert_cols))}) "
            f"ON CONFLICT (call_id) DO UPDATE SET {', '.join(sets)} RETURNING {CONTACT_COLUMNS}")


def _leg_upsert_sql() -> str:
    cols = [c for _, c in LEG_COLUMNS]
    insert_cols = ["leg_id", *cols, "version"]
    sets = [_merge("cdr_legs", c) for c in cols]
    sets.append("version = CASE WHEN excluded.version > cdr_legs.version THEN excluded.version "
                "ELSE cdr_legs.version END")
    return (f"INSERT INTO cdr_legs ({', '.join(insert_cols)}) VALUES ({', '.join('?' * len(insert_cols))}) "
            f"ON CONFLICT (leg_id) DO UPDATE SET {', '.join(sets)}")


CALL_UPSERT = _call_upsert_sql()
LEG_UPSERT = _leg_upsert_sql()
EVENT_INSERT = ("INSERT INTO cdr_events (event_id, ts, call_id, queue, agent_id, event, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING")
DISP_UPSERT = ("INSERT INTO cdr_calls (call_id, disposition, resolved, disp_ts, agent_id, version) "
               "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (call_id) DO UPDATE SET "
               "disposition = excluded.disposition, resolved = excluded.resolved, disp_ts = excluded.disp_ts, "
               "agent_id = COALESCE(cdr_calls.agent_id, excluded.agent_id) "
               "WHERE cdr_calls.disp_ts IS NULL OR excluded.disp_ts >= cdr_calls.disp_ts")
NEXT_CONTACT_SELF = ("UPDATE cdr_calls SET next_contact_ts = (SELECT MIN(c2.start_ts) FROM cdr_calls c2 "
                     "WHERE c2.cust_key = ? AND c2.queue = ? AND c2.start_ts > ? AND c2.direction = 'inbound') "
                     "WHERE call_id = ?")
PREV_CONTACT = ("SELECT call_id, start_ts, next_contact_ts FROM cdr_calls WHERE cust_key = ? AND queue = ? "
                "AND start_ts < ? AND direction = 'inbound' ORDER BY start_ts DESC LIMIT 1")
SET_NEXT_CONTACT = "UPDATE cdr_calls SET next_contact_ts = ? WHERE call_id = ?"
MARK_DIRTY = "INSERT INTO cdr_rollup_dirty (bucket) VALUES (?) ON CONFLICT (bucket) DO NOTHING"
CALL_START = "SELECT start_ts FROM cdr_calls WHERE call_id = ?"
# a customer's contacts (the agent's screen pop): its calls in a time range, newest first (cdr_calls_cust_start)
CONTACT_FIELDS = ("call_id", "start_ts", "direction", "queue", "campaign", "agent_id", "outcome", "disposition",
                  "resolved")
CONTACTS = (f"SELECT {', '.join(CONTACT_FIELDS)} FROM cdr_calls WHERE cust_key IN (?, ?) AND start_ts >= ? "
            "AND start_ts < ? AND call_id <> ? ORDER BY start_ts DESC LIMIT ?")


def cust_key(customer_id: str | None, number: str | None) -> str | None:
    """Whom a call is with, for FCR and the screen pop: the CRM's customer id, else the customer's number (the
    caller of an inbound call, the called of an outbound one)."""
    return customer_id or number or None


def call_row(rec: CallRecord | dict[str, Any]) -> list[Any]:
    """Parameters for CALL_UPSERT from a record or its dict (as it travels in the stream)."""
    d = rec.to_dict() if isinstance(rec, CallRecord) else dict(rec)
    survey = d.get("survey") or {}
    d["survey"] = json.dumps(survey, sort_keys=True) if survey else None
    csat = survey.get("csat") if isinstance(survey, dict) else None
    d["csat"] = int(csat) if isinstance(csat, (int, float)) and not isinstance(csat, bool) else None
    for key in ("resolved", "callback", "recording_consent"):
        if d.get(key) is not None:
            d[key] = int(bool(d[key]))
    for key in _STRING_DEFAULTS:
        if d.get(key) == "":
            d[key] = None
    customer = cust_key(d.get("customer_id"), d.get("called") if d.get("direction") == "outbound" else d.get("caller"))
    return [d["call_id"], *(d.get(f) for f, _ in CALL_COLUMNS), customer, int(d.get("version") or 0)]


def leg_row(rec: LegRecord | dict[str, Any]) -> list[Any]:
    d = rec.to_dict() if isinstance(rec, LegRecord) else dict(rec)
    return [d["leg_id"], *(d.get(f) for f, _ in LEG_COLUMNS), int(d.get("version") or 0)]


def event_row(ev: QueueEvent | dict[str, Any]) -> list[Any]:
    d = ev.to_dict() if isinstance(ev, QueueEvent) else dict(ev)
    return [d["event_id"], float(d["ts"]), d.get("call_id"), d.get("queue"), d.get("agent_id"), str(d["event"]),
            json.dumps(d.get("data") or {}, ensure_ascii=False, sort_keys=True)]


def disp_row(disp: Disposition | dict[str, Any]) -> list[Any]:
    d = disp.to_dict() if isinstance(disp, Disposition) else dict(disp)
    resolved = d.get("resolved")
    return [d["call_id"], d.get("code"), None if resolved is None else int(bool(resolved)), float(d["ts"]),
            d.get("agent_id")]


@dataclass(frozen=True)
class ReportParams:
    """What a report counts and how. Thresholds are in seconds."""

    dimension: str = "queue"            # "queue" | "agent" | "campaign"
    interval: str = "day"               # "15m" | "hour" | "day" | "total"
    start: float = 0.0
    end: float = float("inf")
    sl_seconds: float = 20.0            # service level target T, default for every queue
    sl_by_queue: dict[str, float] = field(default_factory=dict)
    short_abandon_seconds: float = 5.0
    fcr_window_seconds: float = 7 * 86400.0
    tz_offset_seconds: int = 0          # buckets align to local midnight (Vietnam: +25200)
    csat_satisfied_min: int = 4         # top-2-box on a 1..5 scale

    def __hash__(self) -> int:
        return hash((self.dimension, self.interval, self.start, self.end))


INTERVALS = {"15m": 900, "hour": 3600, "day": 86400, "total": 0}
DIMENSIONS = {"queue": "queue", "agent": "agent_id", "campaign": "campaign"}

# The per-call facts a KPI is made of (documented with their formulas in docs/KPIS.md).
_ANSWERED = "agent_answer_ts IS NOT NULL"
_ABANDONED = ("(agent_answer_ts IS NULL AND (outcome = 'abandoned' OR "
              "(outcome IS NULL AND hangup_side = 'caller' AND queue IS NOT NULL)))")

AGG_COLUMNS = AGG_COLUMNS_DDL


class Cursor(Protocol):
    """A query's result, sqlite3's or psycopg's: rows are tuples of column values."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    @property
    def description(self) -> Sequence[Sequence[Any]] | None: ...


class SqlStore:
    """Shared logic; subclasses provide ``_conn`` handling and the dialect bits below."""

    placeholder = "?"
    real_type = "REAL"
    int_type = "INTEGER"
    bigint_type = "INTEGER"

    # --- connection hooks -------------------------------------------------------------------------
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        raise NotImplementedError

    def _execute_many(self, sql: str, rows: list[list[Any]]) -> None:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _floor_div(self, expr: str, size: int) -> str:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def ping(self) -> bool:
        try:
            self._execute("SELECT 1").fetchall()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False

    # --- schema ---------------------------------------------------------------------------------
    def schema(self) -> list[str]:
        return [s.replace("{real}", self.real_type).replace("{int}", self.int_type)
                .replace("{bigint}", self.bigint_type) for s in SCHEMA]

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def migrate(self) -> list[str]:
        """Add the columns a store made by an older version lacks (CREATE TABLE IF NOT EXISTS keeps an old
        table as it was): each CALL_COLUMNS / LEG_COLUMNS column missing from the table, with its type.
        Returns the columns added ("table.column"). Stores call it right after `schema()`."""
        added = []
        for table, columns, types in (("cdr_calls", CALL_COLUMNS, CALL_TYPES), ("cdr_legs", LEG_COLUMNS, LEG_TYPES)):
            desc = self._execute(f"SELECT * FROM {table} LIMIT 0").description or []
            have = {str(d[0]) for d in desc}
            for _, col in columns:
                if col not in have:
                    kind = types.get(col, _TEXT).replace("{real}", self.real_type).replace("{int}", self.int_type)
                    self._execute(f"ALTER TABLE {table} ADD COLUMN {col} {kind}")
                    added.append(f"{table}.{col}")
        return added

    # --- writes ---------------------------------------------------------------------------------
    def apply(self, batch: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Write a batch of (kind, payload) stream entries in one transaction. Idempotent.

        Legs and queue events touch nothing else (a leg merges by version whatever the order; an event is
        kept once by id), so they go last, each table's rows in one executemany (PostgreSQL: one round trip);
        calls and dispositions go in order, one statement each."""
        n = 0
        legs: list[list[Any]] = []
        events: list[list[Any]] = []
        marked: set[float] = set()    # rollup buckets marked dirty in this transaction (one MARK_DIRTY each)
        with self._transaction():
            for kind, payload in batch:
                if kind == "leg":
                    legs.append(leg_row(payload))
                elif kind == "event":
                    events.append(event_row(payload))
                else:
                    self._apply_one(kind, payload, events, marked)
                n += 1
            if legs:
                self._execute_many(self._sql(LEG_UPSERT), legs)
            if events:
                self._execute_many(self._sql(EVENT_INSERT), events)
        return n

    def _apply_one(self, kind: str, payload: dict[str, Any], events: list[list[Any]], marked: set[float]) -> None:
        if kind == "call":
            row = call_row(payload)
            self._link_contact(row[0], self._execute(self._sql(CALL_UPSERT), row).fetchone(), marked)
        elif kind == "disp":
            row = disp_row(payload)
            self._execute(self._sql(DISP_UPSERT), row)
            start = self._execute(self._sql(CALL_START), [row[0]]).fetchone()
            self._mark_dirty(start[0] if start else None, marked)
            # The queue log records the disposition too; a deterministic id keeps a replay a no-op.
            call_id, code, resolved, ts, agent_id = row
            data = {"code": code, "resolved": None if resolved is None else bool(resolved)}
            events.append(event_row({
                "event_id": f"disp:{call_id}:{ts!r}", "ts": ts, "call_id": call_id, "queue": None,
                "agent_id": agent_id, "event": "DISPOSITION", "data": data}))
        else:
            raise ValueError(f"unknown CDR entry kind {kind!r}")

    def _mark_dirty(self, start: float | None, marked: set[float]) -> None:
        """The rollup bucket of a call starting at ``start`` is dirty; ``marked``: those its transaction marked."""
        if start is None:
            return
        bucket = float(int(start // ROLLUP_SECONDS) * ROLLUP_SECONDS)
        if bucket not in marked:
            marked.add(bucket)
            self._execute(self._sql(MARK_DIRTY), [bucket])

    def _link_contact(self, call_id: str, row: tuple[Any, ...] | None, marked: set[float]) -> None:
        """A call's upserted ``row`` (CONTACT_COLUMNS): its rollup bucket marked dirty, its FCR successor and
        its predecessor's linked."""
        if not row:
            return
        cust_key, queue, start, direction = row
        self._mark_dirty(start, marked)
        if not cust_key or not queue or start is None or direction != "inbound":
            return
        self._execute(self._sql(NEXT_CONTACT_SELF), [cust_key, queue, start, call_id])
        prev = self._execute(self._sql(PREV_CONTACT), [cust_key, queue, start]).fetchone()
        if prev and (prev[2] is None or prev[2] > start):
            self._execute(self._sql(SET_NEXT_CONTACT), [start, prev[0]])
            self._mark_dirty(prev[1], marked)

    def put_call(self, rec: CallRecord) -> None:
        self.apply([("call", rec.to_dict())])

    def put_leg(self, rec: LegRecord) -> None:
        self.apply([("leg", rec.to_dict())])

    # --- reads ----------------------------------------------------------------------------------
    def get_call(self, call_id: str) -> CallRecord | None:
        rows = self._select_calls("call_id = ?", [call_id], "", None)
        return rows[0] if rows else None

    def calls(self, since: float | None = None, until: float | None = None, queue: str | None = None,
              agent_id: str | None = None, campaign: str | None = None, limit: int | None = 10_000) -> list[CallRecord]:
        where, params = ["start_ts IS NOT NULL"], []
        for cond, value in (("start_ts >= ?", since), ("start_ts < ?", until), ("queue = ?", queue),
                            ("agent_id = ?", agent_id), ("campaign = ?", campaign)):
            if value is not None:
                where.append(cond)
                params.append(value)
        return self._select_calls(" AND ".join(where), params, "ORDER BY start_ts, call_id", limit)

    def _select_calls(self, where: str, params: list[Any], order: str, limit: int | None) -> list[CallRecord]:
        cols = ["call_id", *(c for _, c in CALL_COLUMNS), "version"]
        sql = f"SELECT {', '.join(cols)} FROM cdr_calls WHERE {where} {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out = []
        for row in self._execute(self._sql(sql), params).fetchall():
            d = dict(zip(cols, row, strict=True))
            rec: dict[str, Any] = {"call_id": d["call_id"], "version": d["version"]}
            for f, c in CALL_COLUMNS:
                rec[f] = d[c]
            rec["survey"] = json.loads(rec["survey"]) if rec["survey"] else {}
            rec.pop("csat")
            for key in _STRING_DEFAULTS:
                rec[key] = rec[key] or ""
            rec["resolved"] = None if rec["resolved"] is None else bool(rec["resolved"])
            rec["callback"] = bool(rec["callback"])
            rec["recording_consent"] = None if rec["recording_consent"] is None else bool(rec["recording_consent"])
            rec["hold_seconds"] = rec["hold_seconds"] or 0
            rec["hold_count"] = rec["hold_count"] or 0
            rec["recording_takes"] = rec["recording_takes"] or 0
            rec["direction"] = rec["direction"] or ""
            rec["caller"] = rec["caller"] or ""
            rec["called"] = rec["called"] or ""
            out.append(CallRecord.from_dict(rec))
        return out

    def legs(self, call_id: str) -> list[LegRecord]:
        cols = ["leg_id", *(c for _, c in LEG_COLUMNS), "version"]
        sql = f"SELECT {', '.join(cols)} FROM cdr_legs WHERE call_id = ? ORDER BY start_ts, leg_id"
        out = []
        for row in self._execute(self._sql(sql), [call_id]).fetchall():
            d = dict(zip(cols, row, strict=True))
            rec = {"leg_id": d["leg_id"], "version": d["version"], **{f: d[c] for f, c in LEG_COLUMNS}}
            rec["uri"] = rec["uri"] or ""
            out.append(LegRecord.from_dict(rec))
        return out

    def contacts(self, customer_id: str | None, number: str | None, since: float, until: float,
                 exclude: str = "", limit: int = 20) -> list[dict[str, Any]]:
        """A customer's calls (by its ``cust_key``: the CRM id or the number) that started in [since, until), newest
        first, at most ``limit``, without the call ``exclude``: id, start, direction, queue, campaign, agent,
        outcome, disposition and resolved (None: not said)."""
        keys = [k for k in (customer_id, number) if k] or [""]
        rows = self._execute(self._sql(CONTACTS), [keys[0], keys[-1], since, until, exclude, int(limit)]).fetchall()
        out = []
        for row in rows:
            d = dict(zip(CONTACT_FIELDS, row, strict=True))
            d["resolved"] = None if d["resolved"] is None else bool(d["resolved"])
            out.append(d)
        return out

    def events(self, call_id: str | None = None, *, agent_id: str | None = None, since: float | None = None,
               until: float | None = None, kinds: Sequence[str] | None = None) -> list[QueueEvent]:
        where, params = ["1 = 1"], []
        for cond, value in (("call_id = ?", call_id), ("agent_id = ?", agent_id), ("ts >= ?", since),
                            ("ts < ?", until)):
            if value is not None:
                where.append(cond)
                params.append(value)
        if kinds:
            where.append(f"event IN ({', '.join('?' * len(kinds))})")
            params.extend(kinds)
        sql = (f"SELECT event_id, ts, call_id, queue, agent_id, event, data FROM cdr_events "
               f"WHERE {' AND '.join(where)} ORDER BY ts, event_id")
        return [QueueEvent(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else {})
                for r in self._execute(self._sql(sql), params).fetchall()]

    def counts(self) -> dict[str, int]:
        return {t: int(self._execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("cdr_calls", "cdr_legs", "cdr_events")}

    # --- KPI aggregate --------------------------------------------------------------------------
    # Reports read pre-aggregated 15-minute rollups (one row per 15 min x queue / agent / campaign;
    # writes mark their bucket dirty in the same transaction, see refresh_rollups), so a month-long
    # report sums thousands of rows instead of scanning millions of calls. Rollups bake in the thresholds (SL targets,
    # short abandon, FCR window); a report asking for other thresholds, or a range edge that
    # cuts a 15-minute bucket, reads the calls table for what the rollups cannot answer.

    rollup_params: ReportParams = ReportParams()

    def _agg_sql(self, p: ReportParams, bucket_size: int, tz_offset: int) -> tuple[str, list[Any]]:
        dim = DIMENSIONS[p.dimension]
        off = int(tz_offset)
        bucket = "0" if not bucket_size else f"({self._floor_div(f'start_ts + {off}', bucket_size)} * {bucket_size} - {off})"
        params: list[Any] = []
        sl_expr = repr(float(p.sl_seconds))
        if p.sl_by_queue:
            whens = []
            for q, t in sorted(p.sl_by_queue.items()):
                whens.append(f"WHEN ? THEN {float(t)!r}")
                params.append(q)
            sl_expr = f"(CASE queue {' '.join(whens)} ELSE {float(p.sl_seconds)!r} END)"
        short = float(p.short_abandon_seconds)
        window = float(p.fcr_window_seconds)
        csat_min = int(p.csat_satisfied_min)
        offered = "queue IS NOT NULL"
        sql = f"""
SELECT {bucket} AS bucket, {dim} AS k,
  COUNT(*) AS calls,
  SUM(CASE WHEN {offered} THEN 1 ELSE 0 END) AS offered,
  SUM(CASE WHEN {_ANSWERED} THEN 1 ELSE 0 END) AS answered,
  SUM(CASE WHEN {_ABANDONED} THEN 1 ELSE 0 END) AS abandoned,
  SUM(CASE WHEN {_ABANDONED} AND COALESCE(wait_seconds, 0) < {short!r} THEN 1 ELSE 0 END) AS short_abandoned,
  SUM(CASE WHEN {_ANSWERED} AND COALESCE(wait_seconds, 0) <= {sl_expr} THEN 1 ELSE 0 END) AS answered_in_sl,
  SUM(CASE WHEN outcome = 'timeout' THEN 1 ELSE 0 END) AS timeouts,
  SUM(CASE WHEN callback = 1 OR outcome = 'callback' THEN 1 ELSE 0 END) AS callbacks,
  SUM(CASE WHEN transferred_to IS NOT NULL THEN 1 ELSE 0 END) AS transfers,
  SUM(CASE WHEN {_ANSWERED} THEN COALESCE(wait_seconds, 0) ELSE 0 END) AS wait_answered_sum,
  SUM(CASE WHEN {_ABANDONED} THEN COALESCE(wait_seconds, 0) ELSE 0 END) AS wait_abandoned_sum,
  MAX(CASE WHEN {offered} THEN wait_seconds END) AS max_wait,
  SUM(CASE WHEN {_ANSWERED} THEN COALESCE(talk_seconds, 0) ELSE 0 END) AS talk_sum,
  SUM(CASE WHEN {_ANSWERED} THEN COALESCE(hold_seconds, 0) ELSE 0 END) AS hold_sum,
  SUM(CASE WHEN {_ANSWERED} THEN COALESCE(wrapup_seconds, 0) ELSE 0 END) AS wrapup_sum,
  COUNT(csat) AS csat_responses,
  SUM(COALESCE(csat, 0)) AS csat_sum,
  SUM(CASE WHEN csat >= {csat_min} THEN 1 ELSE 0 END) AS csat_satisfied,
  SUM(CASE WHEN {_ANSWERED} AND direction = 'inbound' AND queue IS NOT NULL THEN 1 ELSE 0 END) AS fcr_contacts,
  SUM(CASE WHEN {_ANSWERED} AND direction = 'inbound' AND queue IS NOT NULL AND COALESCE(resolved, 1) = 1
      AND (next_contact_ts IS NULL OR next_contact_ts > start_ts + {window!r}) THEN 1 ELSE 0 END) AS fcr_resolved,
  SUM(CASE WHEN answer_ts IS NOT NULL THEN 1 ELSE 0 END) AS connected
FROM cdr_calls
WHERE start_ts >= ? AND start_ts < ? AND {dim} IS NOT NULL
GROUP BY 1, 2"""
        return sql, params

    @staticmethod
    def _fingerprint(p: ReportParams) -> str:
        return json.dumps([float(p.sl_seconds), sorted((q, float(t)) for q, t in p.sl_by_queue.items()),
                           float(p.short_abandon_seconds), float(p.fcr_window_seconds), int(p.csat_satisfied_min)])

    def _load_rollup_params(self) -> None:
        """Adopt the thresholds the rollups were built with (the writer sets them); build them if new."""
        row = self._execute(self._sql("SELECT value FROM cdr_meta WHERE name = 'rollup_params'")).fetchone()
        if not row:
            self.rebuild_rollups()
            return
        sl, by_queue, short, window, csat_min = json.loads(row[0])
        self.rollup_params = ReportParams(sl_seconds=sl, sl_by_queue={q: t for q, t in by_queue},
                                          short_abandon_seconds=short, fcr_window_seconds=window,
                                          csat_satisfied_min=csat_min)

    def set_rollup_params(self, p: ReportParams) -> None:
        """The thresholds rollups are built with (the operator's configured ones). Rebuilds on change."""
        self.rollup_params = p
        row = self._execute(self._sql("SELECT value FROM cdr_meta WHERE name = 'rollup_params'")).fetchone()
        if not row or row[0] != self._fingerprint(p):
            self.rebuild_rollups()

    def refresh_rollups(self) -> int:
        """Recompute the 15-minute buckets that writes touched since the last refresh.

        Writes only mark buckets dirty (cheap); the writer refreshes every few seconds and every
        report refreshes before it reads, so reports are always exact and a busy queue's bucket is
        not re-summed after every batch."""
        with self._transaction():
            return self._refresh_rollups()

    def _refresh_rollups(self) -> int:
        buckets = [r[0] for r in self._execute("SELECT bucket FROM cdr_rollup_dirty").fetchall()]
        for b in buckets:
            self._execute(self._sql("DELETE FROM cdr_rollup WHERE bucket = ?"), [b])
            self._insert_rollups(b, b + ROLLUP_SECONDS)
        if buckets:
            self._execute("DELETE FROM cdr_rollup_dirty")
        return len(buckets)

    def _insert_rollups(self, start: float, end: float) -> None:
        cols = ", ".join(AGG_COLUMNS)
        for dim in DIMENSIONS:
            p = ReportParams(**{**self.rollup_params.__dict__, "dimension": dim})
            sql, params = self._agg_sql(p, ROLLUP_SECONDS, 0)
            self._execute(self._sql(f"INSERT INTO cdr_rollup (dim, bucket, k, {cols}) "
                                    f"SELECT ?, sub.* FROM ({sql}) sub"), [dim, *params, float(start), float(end)])

    def rebuild_rollups(self) -> None:
        """Rebuild every rollup from the calls table (after a bulk load or a threshold change)."""
        with self._transaction():
            self._execute("DELETE FROM cdr_rollup")
            self._execute("DELETE FROM cdr_rollup_dirty")
            self._insert_rollups(-1e15, 1e15)
            self._execute(self._sql("DELETE FROM cdr_meta WHERE name = 'rollup_params'"))
            self._execute(self._sql("INSERT INTO cdr_meta (name, value) VALUES ('rollup_params', ?)"),
                          [self._fingerprint(self.rollup_params)])

    def _rollups_match(self, p: ReportParams) -> bool:
        if self._fingerprint(p) != self._fingerprint(self.rollup_params):
            return False
        row = self._execute(self._sql("SELECT value FROM cdr_meta WHERE name = 'rollup_params'")).fetchone()
        return bool(row) and row[0] == self._fingerprint(p)

    def aggregate(self, p: ReportParams, use_rollups: bool | None = None) -> list[dict[str, Any]]:
        """One row of additive sums per (bucket, dimension key): the inputs of every KPI formula.

        ``use_rollups``: None picks them when they answer the question; False forces a calls scan."""
        if p.dimension not in DIMENSIONS:
            raise ValueError(f"unknown report dimension {p.dimension!r}; expected one of {sorted(DIMENSIONS)}")
        if p.interval not in INTERVALS:
            raise ValueError(f"unknown interval {p.interval!r}; expected one of {sorted(INTERVALS)}")
        size = INTERVALS[p.interval]
        start, end = float(p.start), min(float(p.end), 1e15)
        lo = -(-start // ROLLUP_SECONDS) * ROLLUP_SECONDS
        hi = (end // ROLLUP_SECONDS) * ROLLUP_SECONDS
        usable = (use_rollups is not False and p.tz_offset_seconds % ROLLUP_SECONDS == 0 and lo < hi
                  and self._rollups_match(p))
        if use_rollups and not usable:
            raise ValueError("rollups cannot answer this report (thresholds differ or range too short)")
        parts: list[list[dict[str, Any]]] = []
        if usable:
            self.refresh_rollups()
            parts.append(self._from_rollups(p, size, lo, hi))
            if start < lo:
                parts.append(self._from_calls(p, size, start, lo))
            if hi < end:
                parts.append(self._from_calls(p, size, hi, end))
        else:
            parts.append(self._from_calls(p, size, start, end))
        if len(parts) == 1:
            rows = parts[0]
        else:
            merged: dict[tuple[Any, Any], dict[str, Any]] = {}
            for part in parts:
                for r in part:
                    m = merged.get((r["bucket"], r["key"]))
                    if m is None:
                        merged[(r["bucket"], r["key"])] = dict(r)
                        continue
                    for c in AGG_COLUMNS:
                        if c == "max_wait":
                            m[c] = r[c] if m[c] is None else (m[c] if r[c] is None else max(m[c], r[c]))
                        else:
                            m[c] += r[c]
            rows = list(merged.values())
        rows.sort(key=lambda r: (r["bucket"] or 0.0, str(r["key"])))
        return rows

    def _rows(self, sql: str, params: list[Any], size: int) -> list[dict[str, Any]]:
        out = []
        for r in self._execute(self._sql(sql), params).fetchall():
            d: dict[str, Any] = {"bucket": float(r[0]) if size else None, "key": r[1]}
            for name, v in zip(AGG_COLUMNS, r[2:], strict=True):
                d[name] = float(v) if v is not None else (None if name == "max_wait" else 0.0)
            out.append(d)
        return out

    def _from_calls(self, p: ReportParams, size: int, start: float, end: float) -> list[dict[str, Any]]:
        sql, params = self._agg_sql(p, size, p.tz_offset_seconds)
        return self._rows(sql, [*params, start, end], size)

    def _from_rollups(self, p: ReportParams, size: int, start: float, end: float) -> list[dict[str, Any]]:
        off = int(p.tz_offset_seconds)
        bucket = "0" if not size else f"({self._floor_div(f'bucket + {off}', size)} * {size} - {off})"
        sums = ", ".join(f"MAX({c})" if c == "max_wait" else f"SUM({c})" for c in AGG_COLUMNS)
        sql = (f"SELECT {bucket} AS b, k, {sums} FROM cdr_rollup WHERE dim = ? AND bucket >= ? AND bucket < ? "
               f"GROUP BY 1, 2")
        return self._rows(sql, [p.dimension, start, end], size)
