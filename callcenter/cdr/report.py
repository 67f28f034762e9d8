"""KPI reports: run the aggregate, apply the formulas, render as a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from callcenter import yamlsrc
from callcenter.cdr import kpi
from callcenter.cdr.kpi import Kpi
from callcenter.cdr.store import INTERVALS, ReportParams, SqlStore

FORMATS = ("table", "csv", "json")

# Columns shown per dimension (JSON always carries every field).
COLUMNS = {
    "queue": ["offered", "answered", "abandoned", "short_abandoned", "service_level", "abandon_rate", "asa",
              "longest_wait", "aht", "transfers", "callbacks", "timeouts", "csat", "fcr"],
    "agent": ["answered", "aht", "avg_talk", "avg_hold", "avg_wrapup", "occupancy", "transfers", "csat", "fcr"],
    "campaign": ["calls", "connected", "connect_rate", "offered", "answered", "abandoned", "abandon_rate",
                 "service_level", "aht", "callbacks", "csat"],
}
PERCENT = {"service_level", "abandon_rate", "abandon_rate_incl_short", "occupancy", "csat", "fcr", "connect_rate"}
SECONDS = {"asa", "longest_wait", "aht", "avg_talk", "avg_hold", "avg_wrapup"}


def build(store: SqlStore, params: ReportParams, now: float | None = None) -> list[Kpi]:
    """KPI rows per (interval, key), followed by one TOTAL row per interval when several keys exist."""
    sums = store.aggregate(params)
    available: dict[tuple[float | None, str], float] | None = None
    if params.dimension == "agent":
        # Sessions may have started before the range: look back a day for the login.
        events = store.events(since=params.start - 86400, until=min(params.end, 1e15), kinds=kpi.SESSION_EVENTS)
        available = kpi.available_seconds(events, params.start, params.end, INTERVALS[params.interval],
                                          params.tz_offset_seconds, now=time.time() if now is None else now)
    rows: list[Kpi] = []
    by_bucket: dict[float | None, list[dict[str, Any]]] = {}
    for s in sums:
        by_bucket.setdefault(s["bucket"], []).append(s)
    for bucket, group in by_bucket.items():
        for s in group:
            avail = None if available is None else available.get((bucket, str(s["key"])))
            rows.append(kpi.from_sums(s, avail))
        if len(group) > 1 and params.dimension != "agent":
            t = kpi.total(group)
            t["bucket"] = bucket
            rows.append(kpi.from_sums(t))
    return rows


def bucket_label(bucket: float | None, interval: str, tz_offset: int) -> str:
    if bucket is None:
        return "all"
    tz = timezone(timedelta(seconds=tz_offset))
    dt = datetime.fromtimestamp(bucket, tz)
    return dt.strftime("%Y-%m-%d") if interval == "day" else dt.strftime("%Y-%m-%d %H:%M")


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in PERCENT:
        return f"{100 * value:.1f}%"
    if name in SECONDS:
        return f"{value:.1f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(rows: list[Kpi], params: ReportParams, fmt: str = "table") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    cols = COLUMNS[params.dimension]
    head = ["interval", params.dimension, *cols]
    if fmt == "json":
        return json.dumps({
            "dimension": params.dimension, "interval": params.interval,
            "from": params.start, "to": None if params.end == float("inf") else params.end,
            "sl_seconds": params.sl_seconds, "sl_by_queue": params.sl_by_queue,
            "short_abandon_seconds": params.short_abandon_seconds,
            "fcr_window_seconds": params.fcr_window_seconds,
            "rows": [{"interval": bucket_label(r.bucket, params.interval, params.tz_offset_seconds),
                      **r.to_dict()} for r in rows]}, ensure_ascii=False, indent=1)
    lines = [[bucket_label(r.bucket, params.interval, params.tz_offset_seconds), r.key,
              *(_cell(c, getattr(r, c)) for c in cols)] for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(head)
        # CSV keeps raw numbers (ratios 0..1, seconds) so a spreadsheet can compute with them.
        for r in rows:
            w.writerow([bucket_label(r.bucket, params.interval, params.tz_offset_seconds), r.key,
                        *("" if getattr(r, c) is None else round(getattr(r, c), 4) for c in cols)])
        return buf.getvalue()
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    if not lines:
        out.append(f"(no calls from {_when(params.start, params.tz_offset_seconds)} "
                   f"to {_when(params.end, params.tz_offset_seconds)})")
    return "\n".join(out) + "\n"


def _when(ts: float, tz_offset: int) -> str:
    if ts == float("inf"):
        return "now"
    return datetime.fromtimestamp(ts, timezone(timedelta(seconds=tz_offset))).strftime("%Y-%m-%d %H:%M")


def parse_time(value: str, tz_offset: int = 0) -> float:
    """``2026-11-01``, ``2026-11-01T08:00`` (local to tz_offset) or a unix timestamp."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"bad time {value!r}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM or a unix timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone(timedelta(seconds=tz_offset)))
    return dt.timestamp()


def parse_tz(value: str) -> int:
    """``+07:00`` / ``-0330`` / ``UTC`` -> seconds east of UTC."""
    v = value.strip().upper()
    if v in ("UTC", "Z", ""):
        return 0
    sign = -1 if v.startswith("-") else 1
    digits = v.lstrip("+-").replace(":", "")
    if not digits.isdigit() or len(digits) not in (2, 4):
        raise ValueError(f"bad timezone offset {value!r}: use +07:00")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    return sign * (hours * 3600 + minutes * 60)


def parse_duration(value: str) -> float:
    """``7d``, ``12h``, ``30m``, ``20s`` or plain seconds: the grammar of every YAML file (yamlsrc.duration)."""
    seconds = yamlsrc.duration(value.strip().lower())
    if seconds is None:
        raise ValueError(f"bad duration {value!r}: use e.g. 7d, 12h, 30m, 20s")
    return seconds


def parse_sl_targets(items: list[str]) -> dict[str, float]:
    """``["billing=30", "sales=15"]`` -> per-queue service-level targets in seconds."""
    out = {}
    for item in items:
        q, sep, t = item.partition("=")
        if not sep or not q:
            raise ValueError(f"bad service-level target {item!r}: use QUEUE=SECONDS")
        out[q] = parse_duration(t)
    return out
