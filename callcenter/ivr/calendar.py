"""Business hours and holidays (``ivr_scripts/calendar.yaml``).

::

    timezone: Asia/Ho_Chi_Minh
    calendars:
      hotline:
        always_open: true            # the demo answers 24/7; set false to use the hours below
        hours:
          mon-fri: "08:00-17:30"
          sat: "08:00-12:00"
        holidays:
          - 2026-01-01
          - {from: 2026-02-14, to: 2026-02-22, name: Tết Nguyên Đán}

A script names its calendar (``calendar: hotline``); branch conditions then read
``business_hours`` (open now) and ``holiday`` (today is a holiday). The environment variable
``CALLCENTER_FORCE_HOURS=open|closed`` overrides every calendar (tests, maintenance nights).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter import yamlsrc
from callcenter.timeofday import minutes

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
FORCE_ENV = "CALLCENTER_FORCE_HOURS"


@dataclass(frozen=True)
class Calendar:
    name: str
    tz: dt.tzinfo
    always_open: bool = False
    # weekday (0=Mon) -> list of (start, end) minutes since midnight
    hours: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    holidays: tuple[tuple[dt.date, dt.date, str], ...] = ()

    def holiday(self, now: dt.datetime) -> str | None:
        """The holiday's name if ``now`` falls on one."""
        day = now.astimezone(self.tz).date()
        for start, end, name in self.holidays:
            if start <= day <= end:
                return name or "holiday"
        return None

    def is_open(self, now: dt.datetime) -> bool:
        forced = os.environ.get(FORCE_ENV, "").strip().lower()
        if forced in ("open", "closed"):
            return forced == "open"
        if self.always_open:
            return True
        if self.holiday(now):
            return False
        local = now.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        return any(a <= minute < b for a, b in self.hours.get(local.weekday(), ()))


@dataclass(frozen=True)
class Calendars:
    calendars: dict[str, Calendar]

    @classmethod
    def empty(cls) -> Calendars:
        return cls({})

    def get(self, name: str | None) -> Calendar | None:
        return self.calendars.get(name) if name else None

    @classmethod
    def load(cls, path: str | Path) -> Calendars:
        data, loc = yamlsrc.load(path)
        if not isinstance(data, dict):
            raise loc.error("", "calendar file must be a mapping with 'calendars'")
        tzname = data.get("timezone", "Asia/Ho_Chi_Minh")
        try:
            tz = ZoneInfo(str(tzname))
        except (ZoneInfoNotFoundError, ValueError):
            raise loc.error("timezone", f"unknown time zone {tzname!r}") from None
        raw = data.get("calendars")
        if not isinstance(raw, dict):
            raise loc.error("calendars", "must be a mapping of calendar name -> settings")
        out = {}
        for name, spec in raw.items():
            out[str(name)] = _calendar(str(name), spec, tz, loc)
        return cls(out)


def _calendar(name: str, spec: Any, tz: dt.tzinfo, loc: yamlsrc.Located) -> Calendar:
    path = f"calendars.{name}"
    fields = yamlsrc.Reader(spec, loc, path, known=("always_open", "hours", "holidays", "timezone"))
    spec = fields.data
    if "timezone" in spec:
        try:
            tz = ZoneInfo(str(spec["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise loc.error(f"{path}.timezone", f"unknown time zone {spec['timezone']!r}") from None
    hours: dict[int, list[tuple[int, int]]] = {}
    for days, ranges in (spec.get("hours") or {}).items():
        key = f"{path}.hours.{days}"
        m = re.fullmatch(r"(\w{3})(?:-(\w{3}))?", str(days).lower())
        if not m or m[1] not in _DAYS or (m[2] and m[2] not in _DAYS):
            raise loc.error(key, "days are mon..sun or a range like mon-fri")
        a = _DAYS.index(m[1])
        b = _DAYS.index(m[2]) if m[2] else a
        for r in [ranges] if isinstance(ranges, str) else list(ranges or []):
            try:
                start, end = (minutes(x) for x in str(r).split("-"))
            except ValueError:
                raise loc.error(key, f"bad hours {r!r}: use \"08:00-17:30\"") from None
            if end <= start:
                raise loc.error(key, f"bad hours {r!r}: end before start")
            for day in range(a, b + 1):
                hours.setdefault(day, []).append((start, end))
    holidays = []
    for i, h in enumerate(spec.get("holidays") or []):
        key = f"{path}.holidays[{i}]"
        try:
            if isinstance(h, dt.date):
                holidays.append((h, h, ""))
            elif isinstance(h, dict):
                raw_from = h.get("from", h.get("date"))
                raw_to = h.get("to", raw_from)
                first = raw_from if isinstance(raw_from, dt.date) else dt.date.fromisoformat(str(raw_from))
                last = raw_to if isinstance(raw_to, dt.date) else dt.date.fromisoformat(str(raw_to))
                if last < first:
                    raise ValueError("to before from")
                holidays.append((first, last, str(h.get("name", ""))))
            else:
                d = dt.date.fromisoformat(str(h))
                holidays.append((d, d, ""))
        except ValueError as exc:
            raise loc.error(key, f"bad holiday ({exc}): use 2026-01-01 or {{from:, to:, name:}}") from None
    return Calendar(name, tz, fields.flag("always_open", False),
                    {d: tuple(v) for d, v in hours.items()}, tuple(holidays))
