"""``callcenter campaign ...``: upload lists, list campaigns, start/pause/stop, live stats.

    callcenter campaign upload customers.csv --campaign telesales_demo --redis redis://127.0.0.1:6379/0
    callcenter campaign start telesales_demo
    callcenter campaign stats telesales_demo --json
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from callcenter import logs
from callcenter.dialer.campaign import Campaign, load_campaigns
from callcenter.dialer.control import CampaignControl
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.upload import UploadError, UploadLimits, import_list, neutralise, parse_csv

if TYPE_CHECKING:
    import redis.asyncio as aredis

_T = TypeVar("_T")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``campaign upload|list|start|pause|stop|stats`` on the main CLI's subparsers."""
    p = subparsers.add_parser("campaign", help="outbound campaigns: upload lists, start/pause/stop, stats")
    sub = p.add_subparsers(dest="campaign_command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis URL (env REDIS_URL)")
        sp.add_argument("--prefix", default="cc:")
        sp.add_argument("--campaigns", default=os.environ.get("CALLCENTER_CAMPAIGNS", "campaigns"),
                        help="directory of campaign YAML files (env CALLCENTER_CAMPAIGNS)")

    up = sub.add_parser("upload", help="upload a CSV call list (phone + any columns)")
    up.add_argument("file")
    up.add_argument("--campaign", required=True)
    up.add_argument("--region", help="default region for national numbers (default: the campaign's)")
    up.add_argument("--max-rows", type=int, default=UploadLimits.max_rows)
    up.add_argument("--max-bytes", type=int, default=UploadLimits.max_bytes)
    up.add_argument("--rejects", help="write rejected rows (line, reason) to this CSV file")
    up.add_argument("--json", action="store_true", help="print the full report as JSON")
    common(up)
    up.set_defaults(func=cmd_upload)
    ls = sub.add_parser("list", help="campaigns with their state")
    common(ls)
    ls.set_defaults(func=cmd_list)
    for action in ("start", "pause", "stop"):
        a = sub.add_parser(action, help=f"{action} a campaign (takes effect for the next dial)")
        a.add_argument("campaign")
        common(a)
        a.set_defaults(func=cmd_state, state={"start": "running", "pause": "paused", "stop": "stopped"}[action])
    st = sub.add_parser("stats", help="live statistics of a campaign")
    st.add_argument("campaign")
    st.add_argument("--json", action="store_true")
    common(st)
    st.set_defaults(func=cmd_stats)


class ProgressBar:
    """A one-line progress bar on stderr (a plain line every 10% when stderr is not a terminal)."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if self.tty:
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            self.stream.write(f"\r{self.label} [{bar}] {pct:3d}% {done}/{total}")
            if pct >= 100:
                self.stream.write("\n")
        elif pct // 10 != self._last // 10 or pct == 100 and self._last != 100:
            self.stream.write(f"{self.label}: {pct}% ({done}/{total})\n")
        self._last = pct
        self.stream.flush()


def _campaign(args: argparse.Namespace) -> Campaign:
    campaigns = load_campaigns(args.campaigns)
    if args.campaign not in campaigns:
        raise SystemExit(f"error: no campaign {args.campaign!r} in {args.campaigns} "
                         f"(known: {', '.join(sorted(campaigns)) or 'none'})")
    return campaigns[args.campaign]


async def _with_redis(args: argparse.Namespace, fn: Callable[[aredis.Redis, DialerKeys], Awaitable[_T]]) -> _T:
    from callcenter.redisconn import connect

    # stdout is the command's output (maybe --json); the library's log lines go to stderr.
    logs.configure("warning", sys.stderr)
    r = connect(args.redis, ride_out_restarts=False)   # a command: say at once that Redis is not there
    try:
        return await fn(r, DialerKeys(args.prefix))
    finally:
        await r.aclose()


def cmd_upload(args: argparse.Namespace) -> int:
    campaign = _campaign(args)
    path = Path(args.file)
    try:
        size = path.stat().st_size
    except OSError as exc:
        print(f"error: {path}: {exc.strerror}", file=sys.stderr)
        return 2
    limits = UploadLimits(max_bytes=args.max_bytes, max_rows=args.max_rows)
    if size > limits.max_bytes:
        print(f"error: {path}: file is {size} bytes; the limit is {limits.max_bytes} bytes", file=sys.stderr)
        return 2
    try:
        parsed = parse_csv(path.read_bytes(), args.region or campaign.region, limits, ProgressBar("parsing"))
    except UploadError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    report = asyncio.run(_with_redis(args, lambda r, k: import_list(
        r, k, campaign, parsed, time.time(), progress=ProgressBar("importing"))))
    body = report.as_dict()
    if args.rejects:
        with open(args.rejects, "w", newline="", encoding="utf-8-sig") as fh:
            w = csv.writer(fh)
            w.writerow(["line", "reason"])
            for row in report.rejected:
                w.writerow([row["line"], neutralise(str(row["reason"]))])
    if args.json:
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return 0
    print(f"list {report.list_id} -> campaign {campaign.id}: {report.rows} rows "
          f"({report.encoding}, delimiter {report.delimiter!r}, phone column {report.phone_column!r})")
    print(f"  accepted (new contacts): {report.accepted}")
    print(f"  already in the campaign:  {report.merged_existing}")
    print(f"  duplicates in the file:   {len(report.duplicates_in_file)}")
    print(f"  rejected:                 {len(report.rejected)}")
    print(f"  cells neutralised (formula-like): {report.neutralised_cells}")
    for row in report.rejected[:20]:
        print(f"    line {row['line']}: {row['reason']}")
    if len(report.rejected) > 20:
        print(f"    ... {len(report.rejected) - 20} more (use --rejects FILE or --json)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    campaigns = load_campaigns(args.campaigns)

    async def go(r: aredis.Redis, k: DialerKeys) -> list[str]:
        ctl = CampaignControl(r, k)
        return [await ctl.state(cid) for cid in campaigns]

    states = asyncio.run(_with_redis(args, go))
    print(f"{'campaign':<24} {'type':<14} {'mode':<12} {'state':<8} target")
    for c, state in zip(campaigns.values(), states, strict=True):
        print(f"{c.id:<24} {c.type:<14} {c.dial_mode:<12} {state:<8} {c.queue or 'ivr:' + (c.ivr_flow or '')}")
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    campaign = _campaign(args)
    asyncio.run(_with_redis(args, lambda r, k: CampaignControl(r, k).set_state(campaign.id, args.state)))
    print(f"{campaign.id}: {args.state}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    campaign = _campaign(args)
    stats = asyncio.run(_with_redis(args, lambda r, k: CampaignControl(r, k).stats(campaign)))
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return 0
    ab = stats["abandonment"]
    print(f"{campaign.id} ({campaign.type}, {campaign.dial_mode}): {stats['state']}")
    print(f"  pending {stats['pending']} (due now {stats['due_now']}), dials {stats['dials']}, lists {stats['lists']}")
    print(f"  outcomes: {json.dumps(stats['outcomes'])}")
    print(f"  blocked:  {json.dumps(stats['blocked'])}")
    for w in ("24h", "30d"):
        print(f"  abandonment {w}: {ab[w]['abandoned']}/{ab[w]['answered']} = {ab[w]['rate']:.2%} "
              f"(limit {ab[w]['limit']:.0%})")
    return 0
