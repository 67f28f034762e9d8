"""Campaign model: one YAML file per campaign in ``campaigns/*.yaml``, validated into frozen dataclasses.

Compliance rules are data (:class:`CompliancePolicy`), started from a named preset and editable
key by key in the campaign file, so legal can review one diff instead of code. Read with
:class:`callcenter.yamlsrc.Reader`: errors name file, key path and line; times are durations
(``30``, ``2.5``, ``"30s"``, ``"15m"``, ``"2h"``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter import yamlsrc
from callcenter.calls.recording import Policy, campaign_policy
from callcenter.exceptions import ConfigError
from callcenter.timeofday import time_of_day
from callcenter.yamlsrc import Located, Reader

CAMPAIGN_TYPES = ("telesales", "debt_reminder", "survey")
DIAL_MODES = ("preview", "progressive", "predictive", "agentless")
OUTCOMES = ("answered_human", "answered_machine", "busy", "no_answer", "rejected", "invalid", "failed",
            "unknown", "abandoned")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class CompliancePolicy:
    """The calling rules one campaign must never break. Times are the callee's local time."""

    preset: str
    calling_hours: tuple[tuple[dt.time, dt.time], ...]
    weekdays: frozenset[int]                 # 0 = Monday
    holidays: frozenset[dt.date]
    cap_group: str                           # campaigns sharing a group share the per-number cap
    max_calls_per_number: int                # 0 = no cap
    cap_window: float                        # seconds, rolling
    max_abandon_rate: float                  # over abandon_window_days (TCPA: 3% over 30 days)
    max_abandon_rate_24h: float
    abandon_window_days: int = 30
    abandon_grace: float = 2.0               # answered call must reach an agent within this (TCPA 2 s)


_ALL_DAYS = frozenset(range(7))
PRESETS: dict[str, CompliancePolicy] = {
    # Decree 91/2020/ND-CP art. 12: advertising calls 08:00-17:00 daily, at most 1 call per number
    # per 24 h, never to numbers on the do-not-call register. The decree says "daily" (no weekend
    # ban); operators who want to skip weekends/holidays set `weekdays`/`holidays` in the campaign.
    "vn_advertising": CompliancePolicy("vn_advertising", ((dt.time(8), dt.time(17)),), _ALL_DAYS, frozenset(),
                                       "vn_advertising", 1, 86400.0, 0.03, 0.03),
    # SBV Circular 18/2019/TT-NHNN (amending 43/2016): consumer-finance debt reminders at most
    # 5 times a day, only 07:00-21:00. "A day" is enforced as a rolling 24 h (stricter).
    "vn_debt_collection": CompliancePolicy("vn_debt_collection", ((dt.time(7), dt.time(21)),), _ALL_DAYS,
                                           frozenset(), "vn_debt_collection", 5, 86400.0, 0.03, 0.03),
    # TCPA 47 CFR 64.1200: 08:00-21:00 callee local time; abandonment <= 3% per campaign over 30 days;
    # abandoned calls get an identification message within 2 s.
    "us_tcpa": CompliancePolicy("us_tcpa", ((dt.time(8), dt.time(21)),), _ALL_DAYS, frozenset(),
                                "us_tcpa", 0, 86400.0, 0.03, 0.05),
}
DEFAULT_PRESET = {"telesales": "vn_advertising", "debt_reminder": "vn_debt_collection",
                  "survey": "vn_advertising"}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    delays: Mapping[str, float]              # outcome -> seconds until the next attempt

    def delay(self, outcome: str) -> float | None:
        return self.delays.get(outcome)


DEFAULT_RETRY = {"busy": 15 * 60.0, "no_answer": 2 * 3600.0, "rejected": 4 * 3600.0, "failed": 10 * 60.0,
                 "unknown": 30 * 60.0, "answered_machine": 4 * 3600.0, "abandoned": 3600.0}


@dataclass(frozen=True)
class Pacing:
    target_abandon_rate: float = 0.02        # what predictive aims at, below the legal limit
    initial_answer_rate: float = 0.3         # prior until calls are measured
    expected_aht: float = 240.0              # seconds, prior for talk + wrap-up
    wrapup: float = 15.0
    max_dial_ratio: float = 8.0              # calls in flight per waiting agent, hard ceiling
    ring_timeout: float = 25.0
    max_concurrent: int = 200                # calls in flight for agentless campaigns


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    type: str
    dial_mode: str
    queue: str | None
    ivr_flow: str | None
    caller_id: str
    dial_uri: str                            # template: {number} E.164 without '+', {e164}, {national}
    time_zone: str
    region: str
    compliance: CompliancePolicy
    retry: RetryPolicy
    pacing: Pacing
    amd_enabled: bool = False
    machine_flow: str | None = None          # IVR flow that leaves a message on a machine
    machine_prompt: str | None = None        # or one recorded message; neither = hang up
    abandon_prompt: str | None = None
    list_columns: tuple[str, ...] = ()
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    # the dial policy's class rules for this campaign's numbers (None: the site's `dialing` setting)
    allow_international: bool | None = None
    allow_premium: bool | None = None
    allowed_prefixes: tuple[str, ...] = ()
    # its own `recording:` policy (calls.recording; None: the worker config's recording.campaigns / queue / default)
    recording: Policy | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def _time(value: object, loc: Located, path: str) -> dt.time:
    try:
        return time_of_day(value)
    except ValueError as exc:
        raise loc.error(path, str(exc)) from None


def _compliance(r: Reader, ctype: str) -> CompliancePolicy:
    base = PRESETS[r.text("preset", DEFAULT_PRESET[ctype], choices=tuple(PRESETS))]
    changes: dict[str, Any] = {}
    if "calling_hours" in r:
        hours = r.items("calling_hours")
        if not hours:
            raise r.fail("calling_hours", "expected a list like ['08:00-12:00', '13:30-17:00']")
        windows = []
        for i, h in enumerate(hours):
            p = r.key_path(f"calling_hours[{i}]")
            parts = str(h).split("-")
            if len(parts) != 2:
                raise r.loc.error(p, f"expected HH:MM-HH:MM, got {h!r}")
            a, b = _time(parts[0], r.loc, p), _time(parts[1], r.loc, p)
            if a >= b:
                raise r.loc.error(p, "window start must be before its end")
            windows.append((a, b))
        changes["calling_hours"] = tuple(windows)
    if "weekdays" in r:
        days = r.items("weekdays")
        if any(str(d).lower()[:3] not in WEEKDAYS for d in days):
            raise r.fail("weekdays", f"expected a list of {', '.join(WEEKDAYS)}")
        changes["weekdays"] = frozenset(WEEKDAYS.index(str(d).lower()[:3]) for d in days)
    if "holidays" in r:
        hol = r.items("holidays")
        if not all(isinstance(d, dt.date) for d in hol):
            raise r.fail("holidays", "expected a list of dates YYYY-MM-DD")
        changes["holidays"] = frozenset(hol)
    if "cap_group" in r:
        changes["cap_group"] = r.text("cap_group")
    if "max_calls_per_number" in r:
        changes["max_calls_per_number"] = r.integer("max_calls_per_number", 0, 0, 1000)
    if "cap_window" in r:
        changes["cap_window"] = r.duration("cap_window", base.cap_window)
    if "max_abandon_rate" in r:
        changes["max_abandon_rate"] = r.number("max_abandon_rate", 0.03, 0.0, 1.0)
    if "max_abandon_rate_24h" in r:
        changes["max_abandon_rate_24h"] = r.number("max_abandon_rate_24h", 0.03, 0.0, 1.0)
    if "abandon_window_days" in r:
        changes["abandon_window_days"] = r.integer("abandon_window_days", 30, 1, 366)
    if "abandon_grace" in r:
        changes["abandon_grace"] = r.duration("abandon_grace", 2.0)
    return replace(base, **changes)


_TOP = ("id", "name", "type", "dial_mode", "queue", "ivr_flow", "caller_id", "dial_uri", "time_zone", "region",
        "compliance", "attempts", "pacing", "amd", "abandon_prompt", "list_columns", "extra", "dialing",
        "recording")


def parse_campaign(data: object, loc: Located, default_id: str | None = None) -> Campaign:
    """Validate one loaded campaign document."""
    r = Reader(data, loc, known=_TOP)
    cid = r.text("id", default_id)
    if not cid or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", cid):
        raise r.fail("id", "campaign id must be 1-64 letters, digits, '_', '-', '.'")
    ctype = r.text("type", choices=CAMPAIGN_TYPES, required=True) or CAMPAIGN_TYPES[0]
    mode = r.text("dial_mode", "agentless" if ctype == "debt_reminder" else "progressive", choices=DIAL_MODES)
    queue, flow = r.text("queue"), r.text("ivr_flow")
    if mode == "agentless" and not flow:
        raise r.fail("ivr_flow", "agentless campaigns need the IVR flow that takes answered calls")
    if mode != "agentless" and not queue:
        raise r.fail("queue", f"{mode} campaigns need the agent queue that takes answered calls")
    caller_id = r.text("caller_id")
    if not caller_id or not re.fullmatch(r"\+?[0-9]{3,15}", caller_id):
        raise r.fail("caller_id", "required: the number shown to callees (digits, optional '+')")
    tz = r.text("time_zone", "Asia/Ho_Chi_Minh")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.fail("time_zone", f"unknown IANA time zone {tz!r}") from None
    dial_uri = r.text("dial_uri", "sip:{number}@127.0.0.1:5080")
    if "{" not in dial_uri:
        raise r.fail("dial_uri", "template must contain {number}, {e164} or {national}")
    comp = _compliance(r.section("compliance", ("preset", "calling_hours", "weekdays", "holidays", "cap_group",
                                                "max_calls_per_number", "cap_window", "max_abandon_rate",
                                                "max_abandon_rate_24h", "abandon_window_days", "abandon_grace")),
                       ctype)
    a = r.section("attempts", ("max_attempts", "retry"))
    delays = dict(DEFAULT_RETRY)
    retry_r = a.section("retry", OUTCOMES)
    for outcome in retry_r.keys():
        delays[outcome] = retry_r.duration(outcome, 0.0)
    retry = RetryPolicy(a.integer("max_attempts", 3, 1, 100), delays)
    p = r.section("pacing", ("target_abandon_rate", "initial_answer_rate", "expected_aht", "wrapup",
                             "max_dial_ratio", "ring_timeout", "max_concurrent"))
    pacing = Pacing(p.number("target_abandon_rate", 0.02, 0.0, 0.5), p.number("initial_answer_rate", 0.3, 0.01, 1.0),
                    p.duration("expected_aht", 240.0), p.duration("wrapup", 15.0),
                    p.number("max_dial_ratio", 8.0, 1.0, 50.0), p.duration("ring_timeout", 25.0),
                    p.integer("max_concurrent", 200, 1, 10000))
    if pacing.target_abandon_rate > comp.max_abandon_rate:
        raise p.fail("target_abandon_rate",
                     f"above the compliance limit {comp.max_abandon_rate} of preset {comp.preset}")
    amd = r.section("amd", ("enabled", "machine_flow", "machine_prompt"))
    machine_flow, machine_prompt = amd.text("machine_flow"), amd.text("machine_prompt")
    if machine_flow and machine_prompt:
        raise amd.fail("machine_prompt", "give machine_flow or machine_prompt, not both")
    dialing = r.section("dialing", ("allow_international", "allow_premium", "allowed_prefixes"))
    prefixes = dialing.items("allowed_prefixes")
    if not all(isinstance(x, str) and re.fullmatch(r"\+[0-9]{1,14}", x) for x in prefixes):
        raise dialing.fail("allowed_prefixes", "expected a list of E.164 prefixes like '+4420'")
    return Campaign(id=cid, name=r.text("name", cid), type=ctype, dial_mode=mode, queue=queue, ivr_flow=flow,
                    caller_id=caller_id, dial_uri=dial_uri, time_zone=tz, region=r.text("region", "VN").upper(),
                    compliance=comp, retry=retry, pacing=pacing, amd_enabled=amd.flag("enabled", False),
                    machine_flow=machine_flow, machine_prompt=machine_prompt,
                    abandon_prompt=r.text("abandon_prompt"),
                    list_columns=tuple(str(c) for c in r.items("list_columns")),
                    source=loc.file, extra=r.mapping("extra"), allowed_prefixes=tuple(str(x) for x in prefixes),
                    allow_international=dialing.flag("allow_international"),
                    allow_premium=dialing.flag("allow_premium"),
                    recording=campaign_policy(r.section("recording")) if "recording" in r else None)


def load_campaign(path: str | Path) -> Campaign:
    data, loc = yamlsrc.load(path)
    return parse_campaign(data, loc, Path(path).stem)


def load_campaigns(directory: str | Path) -> dict[str, Campaign]:
    """Every ``*.yaml`` in the directory; duplicate ids are an error naming both files."""
    out: dict[str, Campaign] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        c = load_campaign(path)
        if c.id in out:
            raise ConfigError(f"campaign id {c.id!r} also defined in {out[c.id].source}", str(path), "id")
        out[c.id] = c
    return out


def in_calling_window(policy: CompliancePolicy, local: dt.datetime) -> bool:
    if local.weekday() not in policy.weekdays or local.date() in policy.holidays:
        return False
    t = local.time()
    return any(a <= t < b for a, b in policy.calling_hours)


def next_window_open(policy: CompliancePolicy, local: dt.datetime) -> dt.datetime | None:
    """The first local time >= ``local`` inside the policy's windows (None if none within 400 days)."""
    day = local.date()
    for offset in range(400):
        d = day + dt.timedelta(days=offset)
        if d.weekday() not in policy.weekdays or d in policy.holidays:
            continue
        for a, b in sorted(policy.calling_hours):
            start = dt.datetime.combine(d, a, local.tzinfo)
            end = dt.datetime.combine(d, b, local.tzinfo)
            if offset == 0 and local >= end:
                continue
            return max(start, local) if offset == 0 else start
    return None
