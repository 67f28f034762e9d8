"""GET /reports/{kind}?from=&to=&interval=&format=&tz=&sl=&sl_queue=&short_abandon=&fcr_window=

``kind`` is queue, agent or campaign. ``format`` is json (default), csv or table. Times are
YYYY-MM-DD[THH:MM] in ``tz`` (default +07:00) or unix timestamps; ``from`` defaults to local
midnight and ``to`` to now.
"""

from __future__ import annotations

import asyncio
import time

from callcenter.api.http import HttpError, HttpRouter, Request, Response
from callcenter.auth.roles import FLOOR_VIEW
from callcenter.cdr import report
from callcenter.cdr.store import DIMENSIONS, INTERVALS, ReportParams, SqlStore, StoreUnavailable


def params_from_request(req: Request, kind: str, configured: ReportParams | None = None) -> ReportParams:
    """Thresholds not given in the query are the configured ones (those the rollups use)."""
    c = configured or ReportParams()
    if kind not in DIMENSIONS:
        raise HttpError(404, f"unknown report {kind!r}; expected one of {', '.join(sorted(DIMENSIONS))}")
    try:
        tz = report.parse_tz(req.arg("tz", "+07:00") or "+07:00")
        now = time.time()
        start_arg, end_arg = req.arg("from"), req.arg("to")
        start = report.parse_time(start_arg, tz) if start_arg else float(((int(now) + tz) // 86400) * 86400 - tz)
        end = report.parse_time(end_arg, tz) if end_arg else now
        interval = req.arg("interval", "day") or "day"
        if interval not in INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(sorted(INTERVALS))}")
        if end <= start:
            raise ValueError("'to' must be after 'from'")
        return ReportParams(
            dimension=kind, interval=interval, start=start, end=end,
            sl_seconds=report.parse_duration(req.arg("sl") or str(c.sl_seconds)),
            sl_by_queue=(report.parse_sl_targets(req.query["sl_queue"]) if "sl_queue" in req.query
                         else dict(c.sl_by_queue)),
            short_abandon_seconds=report.parse_duration(req.arg("short_abandon") or str(c.short_abandon_seconds)),
            fcr_window_seconds=report.parse_duration(req.arg("fcr_window") or str(c.fcr_window_seconds)),
            tz_offset_seconds=tz)
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None


def install_routes(router: HttpRouter, store: SqlStore) -> None:
    async def get_report(req: Request) -> Response:
        params = params_from_request(req, req.params["kind"], store.rollup_params)
        fmt = req.arg("format", "json") or "json"
        if fmt not in report.FORMATS:
            raise HttpError(400, f"format must be one of {', '.join(report.FORMATS)}")
        try:
            rows = await asyncio.to_thread(report.build, store, params)
        except StoreUnavailable as exc:
            raise HttpError(503, f"CDR store unavailable: {exc}") from None
        text = report.render(rows, params, fmt)
        if fmt == "json":
            import json

            return Response(json.loads(text))
        ctype = "text/csv; charset=utf-8" if fmt == "csv" else "text/plain; charset=utf-8"
        return Response(text.encode(), content_type=ctype)

    router.add("GET /reports/{kind}", get_report, roles=FLOOR_VIEW)
