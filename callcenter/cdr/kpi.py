"""KPI formulas. Every definition here is documented next to its formula in docs/KPIS.md.

The store reduces CDRs to additive sums per (interval, queue|agent|campaign) with one SQL
GROUP BY; this module turns the sums into the ratios a contact center is judged by. Ratios are
``None`` when their denominator is zero (a quiet interval has no service level, not 0 %).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from callcenter.cdr.record import AGENTLOGIN, AGENTLOGOFF, PAUSE, UNPAUSE, QueueEvent

SESSION_EVENTS = (AGENTLOGIN, AGENTLOGOFF, PAUSE, UNPAUSE)


def ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


@dataclass
class Kpi:
    bucket: float | None          # interval start (unix time), None for a whole-range report
    key: str                      # queue, agent id or campaign
    calls: int
    offered: int
    answered: int
    abandoned: int                # all abandons, short ones included
    short_abandoned: int
    answered_in_sl: int
    service_level: float | None   # answered_in_sl / (offered - short_abandoned)
    abandon_rate: float | None    # (abandoned - short) / (offered - short)
    abandon_rate_incl_short: float | None  # abandoned / offered
    asa: float | None             # seconds
    longest_wait: float | None    # seconds
    aht: float | None             # seconds: (talk + hold + wrap-up) / answered
    avg_talk: float | None
    avg_hold: float | None
    avg_wrapup: float | None
    handle_seconds: float
    occupancy: float | None       # agent report only
    available_seconds: float | None
    transfers: int
    callbacks: int
    timeouts: int
    csat: float | None            # share of survey answers >= the satisfied score
    csat_avg: float | None
    csat_responses: int
    fcr: float | None             # fcr_resolved / fcr_contacts
    fcr_contacts: int
    fcr_resolved: int
    connected: int                # calls the far end answered (outbound: the connect count)
    connect_rate: float | None    # connected / calls

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def from_sums(s: dict[str, Any], available_seconds: float | None = None) -> Kpi:
    """Build the KPIs of one row of ``SqlStore.aggregate`` sums."""
    offered, answered = int(s["offered"]), int(s["answered"])
    abandoned, short = int(s["abandoned"]), int(s["short_abandoned"])
    handle = float(s["talk_sum"]) + float(s["hold_sum"]) + float(s["wrapup_sum"])
    occupancy = None
    if available_seconds is not None:
        occupancy = ratio(handle, available_seconds)
    return Kpi(
        bucket=s["bucket"], key=str(s["key"]), calls=int(s["calls"]), offered=offered, answered=answered,
        abandoned=abandoned, short_abandoned=short, answered_in_sl=int(s["answered_in_sl"]),
        service_level=ratio(s["answered_in_sl"], offered - short),
        abandon_rate=ratio(abandoned - short, offered - short),
        abandon_rate_incl_short=ratio(abandoned, offered),
        asa=ratio(s["wait_answered_sum"], answered),
        longest_wait=s["max_wait"],
        aht=ratio(handle, answered),
        avg_talk=ratio(s["talk_sum"], answered), avg_hold=ratio(s["hold_sum"], answered),
        avg_wrapup=ratio(s["wrapup_sum"], answered),
        handle_seconds=handle, occupancy=occupancy, available_seconds=available_seconds,
        transfers=int(s["transfers"]), callbacks=int(s["callbacks"]), timeouts=int(s["timeouts"]),
        csat=ratio(s["csat_satisfied"], s["csat_responses"]), csat_avg=ratio(s["csat_sum"], s["csat_responses"]),
        csat_responses=int(s["csat_responses"]),
        fcr=ratio(s["fcr_resolved"], s["fcr_contacts"]), fcr_contacts=int(s["fcr_contacts"]),
        fcr_resolved=int(s["fcr_resolved"]),
        connected=int(s["connected"]), connect_rate=ratio(s["connected"], s["calls"]),
    )


def total(rows: Iterable[dict[str, Any]], key: str = "TOTAL") -> dict[str, Any]:
    """Add aggregate sums over several rows (all the sums are additive; max_wait takes the max)."""
    out: dict[str, Any] = defaultdict(float)
    max_wait: float | None = None
    for r in rows:
        for k, v in r.items():
            if k in ("bucket", "key"):
                continue
            if k == "max_wait":
                if v is not None:
                    max_wait = v if max_wait is None else max(max_wait, v)
                continue
            out[k] += v
    out["max_wait"] = max_wait
    out["bucket"] = None
    out["key"] = key
    return dict(out)


def bucket_of(ts: float, size: int, tz_offset: int) -> float | None:
    if not size:
        return None
    return float(((int(ts) + tz_offset) // size) * size - tz_offset)


def available_seconds(events: Iterable[QueueEvent], start: float, end: float, size: int, tz_offset: int = 0,
                      now: float | None = None) -> dict[tuple[float | None, str], float]:
    """Logged-in, un-paused seconds per (interval, agent) inside [start, end).

    Built from AGENTLOGIN/AGENTLOGOFF/PAUSE/UNPAUSE events; a session still open at the end of
    the data counts up to ``now`` (or ``end``)."""
    by_agent: dict[str, list[QueueEvent]] = defaultdict(list)
    for ev in events:
        if ev.agent_id and ev.event in SESSION_EVENTS:
            by_agent[ev.agent_id].append(ev)
    horizon = end if now is None else min(end, now)
    out: dict[tuple[float | None, str], float] = defaultdict(float)
    for agent, evs in by_agent.items():
        evs.sort(key=lambda e: (e.ts, e.event_id))
        logged_in = paused = False
        since = 0.0
        for step in [*evs, None]:
            t = horizon if step is None else step.ts
            if logged_in and not paused:
                _spread(out, agent, max(since, start), min(t, horizon), size, tz_offset)
            if step is None:
                break
            if step.event == AGENTLOGIN:
                if not logged_in:
                    logged_in, paused = True, False
            elif step.event == AGENTLOGOFF:
                logged_in = paused = False
            elif step.event == PAUSE:
                paused = True
            elif step.event == UNPAUSE:
                paused = False
            since = t
    return dict(out)


def _spread(out: dict[tuple[float | None, str], float], agent: str, a: float, b: float, size: int,
            tz_offset: int) -> None:
    if b <= a:
        return
    if not size:
        out[(None, agent)] += b - a
        return
    t = a
    while t < b:
        bucket = bucket_of(t, size, tz_offset)
        assert bucket is not None
        nxt = min(b, bucket + size)
        out[(bucket, agent)] += nxt - t
        t = nxt
