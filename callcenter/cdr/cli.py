"""``callcenter report`` and ``callcenter cdr-writer``.

    callcenter report --store sqlite:///var/cdr.db --by queue --interval day \\
        --from 2026-11-01 --to 2026-11-08 --tz +07:00 --format table
    callcenter cdr-writer --redis redis://127.0.0.1:6379/0 --store postgresql:///cdr
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import time

from callcenter import logs
from callcenter.cdr import report
from callcenter.cdr.store import DIMENSIONS, INTERVALS, ReportParams, StoreUnavailable

DEFAULT_STORE = "sqlite:///var/cdr.db"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``report`` and ``cdr-writer`` on the main CLI's subparsers."""
    p = subparsers.add_parser("report", help="KPI report from the CDR store (table, CSV, JSON)")
    p.add_argument("--store", default=os.environ.get("CALLCENTER_CDR_STORE", DEFAULT_STORE),
                   help="sqlite:///path.db or postgresql://... (env CALLCENTER_CDR_STORE)")
    p.add_argument("--by", "--kind", dest="by", choices=sorted(DIMENSIONS), default="queue")
    p.add_argument("--interval", choices=sorted(INTERVALS), default="day")
    p.add_argument("--from", dest="start", help="YYYY-MM-DD[THH:MM] in --tz, or unix time (default: today)")
    p.add_argument("--to", dest="end", help="exclusive end (default: now)")
    p.add_argument("--tz", default="+07:00", help="offset intervals align to (default +07:00, Vietnam)")
    # Thresholds default to the ones the writer built the rollups with (cdr-writer --sl ...;
    # out of the box 20 s, 5 s, 7 d), so a plain report is both consistent and fast.
    p.add_argument("--sl", help="service-level target T in seconds (default: the configured one, 20)")
    p.add_argument("--sl-queue", action="append", default=None, metavar="QUEUE=SECONDS",
                   help="per-queue service-level target (repeatable; default: the configured ones)")
    p.add_argument("--short-abandon", help="abandons under this many seconds count apart (default 5)")
    p.add_argument("--fcr-window", help="repeat-contact window for FCR (default 7d)")
    p.add_argument("--format", choices=report.FORMATS, default="table")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_report)

    w = subparsers.add_parser("cdr-writer", help="move CDRs from the Redis stream into the store")
    w.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    w.add_argument("--store", default=os.environ.get("CALLCENTER_CDR_STORE", DEFAULT_STORE))
    w.add_argument("--prefix", default="cc:")
    w.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}",
                   help="consumer name in the group (unique per writer process)")
    w.add_argument("--batch", type=int, default=500)
    w.add_argument("--claim-idle", type=float, default=30.0,
                   help="take over a dead writer's entries after this many idle seconds")
    w.add_argument("--linger", type=float, default=0.2,
                   help="after a short batch, wait this many seconds for more entries (fewer, bigger rounds)")
    w.add_argument("--sl", default="20", help="service-level target the rollups are built with (seconds)")
    w.add_argument("--sl-queue", action="append", default=[], metavar="QUEUE=SECONDS")
    w.add_argument("--short-abandon", default="5")
    w.add_argument("--fcr-window", default="7d")
    w.set_defaults(func=cmd_cdr_writer)


def report_params(args: argparse.Namespace, configured: ReportParams) -> ReportParams:
    tz = report.parse_tz(args.tz)
    now = time.time()
    start = report.parse_time(args.start, tz) if args.start else float(((int(now) + tz) // 86400) * 86400 - tz)
    end = report.parse_time(args.end, tz) if args.end else now
    if end <= start:
        raise ValueError("--to must be after --from")
    return ReportParams(
        dimension=args.by, interval=args.interval, start=start, end=end, tz_offset_seconds=tz,
        sl_seconds=report.parse_duration(args.sl) if args.sl else configured.sl_seconds,
        sl_by_queue=(report.parse_sl_targets(args.sl_queue) if args.sl_queue is not None
                     else dict(configured.sl_by_queue)),
        short_abandon_seconds=(report.parse_duration(args.short_abandon) if args.short_abandon
                               else configured.short_abandon_seconds),
        fcr_window_seconds=report.parse_duration(args.fcr_window) if args.fcr_window else configured.fcr_window_seconds)


def cmd_report(args: argparse.Namespace) -> int:
    from callcenter.cdr.writer import open_store

    try:
        store = open_store(args.store)
    except (ValueError, StoreUnavailable) as exc:
        print(f"callcenter report: {exc}", file=sys.stderr)
        return 2
    try:
        params = report_params(args, store.rollup_params)
    except ValueError as exc:
        store.close()
        print(f"callcenter report: {exc}", file=sys.stderr)
        return 2
    try:
        text = report.render(report.build(store, params), params, args.format)
    finally:
        store.close()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_cdr_writer(args: argparse.Namespace) -> int:
    from callcenter.cdr.writer import CdrWriter, open_store
    from callcenter.redisconn import connect

    logs.configure()
    log = logs.get("cdr.writer")
    try:
        thresholds = ReportParams(sl_seconds=report.parse_duration(args.sl),
                                  sl_by_queue=report.parse_sl_targets(args.sl_queue),
                                  short_abandon_seconds=report.parse_duration(args.short_abandon),
                                  fcr_window_seconds=report.parse_duration(args.fcr_window))
    except ValueError as exc:
        print(f"callcenter cdr-writer: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        store = None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        while store is None and not stop.is_set():
            try:
                store = await asyncio.to_thread(open_store, args.store)
                await asyncio.to_thread(store.set_rollup_params, thresholds)
            except StoreUnavailable as exc:
                store = None
                log.warning("store not reachable yet; retrying", error=str(exc))
                await CdrWriter._sleep(stop, 2)
        if store is None:
            return
        client = connect(args.redis, ride_out_restarts=False)   # the writer retries its rounds itself
        writer = CdrWriter(client, store, prefix=args.prefix, consumer=args.consumer, batch=args.batch,
                           claim_idle=args.claim_idle, linger=args.linger)
        try:
            await writer.run(stop)
        finally:
            await client.aclose()
            store.close()

    asyncio.run(main())
    return 0
