"""Cost of one log line through the configured structlog pipeline, privacy filter included.

    .venv/bin/python bench/log_bench.py                                   # the current callcenter/logs.py
    git show d309373:callcenter/logs.py > /tmp/logs_before.py
    .venv/bin/python bench/log_bench.py --logs /tmp/logs_before.py        # another logs module (before)

Prints ns per line for lines a call really produces (rendered to /dev/null), and ns per string for
the masker alone on typical values.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CALL_ID = "5b0e6f4a91234567c1d2e3f4a5b6c7d8"
LINES: list[tuple[str, str, dict[str, Any]]] = [
    ("info", "incoming call", {"caller": "0912345678", "called": "19001234", "flow": "hotline"}),
    ("info", "call ended", {"outcome": "ivr_only", "path": "hotline.welcome>hotline.menu>hotline.queue",
                            "side": "caller", "call_id": CALL_ID}),
    ("warning", "pjsip", {"msg": "sip_transport.c .Dropping 1234 bytes packet from UDP 127.0.0.1:5160 : "
                                 "INVITE sip:19001234@127.0.0.1 From: <sip:0912345678@10.0.0.7>"}),
    ("warning", "http handler failed", {"method": "DELETE", "path": "/dnc/0912345678"}),
    ("info", "worker ready", {"worker": "w1", "sip_port": 5160, "http_port": 8161}),
]
STRINGS = ["hotline.menu", CALL_ID, "2026-11-30T05:27:42.123456Z", "/campaigns/x/contacts/0912345678",
           "sip:0912345678@127.0.0.1:5160"]


def load_logs(path: str | None) -> Any:
    if path is None:
        from callcenter import logs

        return logs
    spec = importlib.util.spec_from_file_location("logs_under_test", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def per_line(logs: Any, n: int) -> dict[str, float]:
    import structlog

    out: dict[str, float] = {}
    with open(os.devnull, "w") as sink:
        logs.configure("info", stream=sink)
        structlog.contextvars.bind_contextvars(call_id=CALL_ID)
        log = logs.get("bench")
        for level, event, fields in LINES:
            emit = getattr(log, level)
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter_ns()
                for _ in range(n):
                    emit(event, **fields)
                best = min(best, (time.perf_counter_ns() - t0) / n)
            out[event] = best
        structlog.contextvars.clear_contextvars()
    return out


def per_string(n: int) -> dict[str, float]:
    from callcenter.privacy import mask_text

    out = {}
    for s in STRINGS:
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                mask_text(s)
            best = min(best, (time.perf_counter_ns() - t0) / n)
        out[s] = best
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", help="path of a logs.py to measure instead of callcenter/logs.py")
    ap.add_argument("-n", type=int, default=20000, help="lines per measurement (best of 5)")
    args = ap.parse_args()
    lines = per_line(load_logs(args.logs), args.n)
    print(f"logs module: {args.logs or 'callcenter/logs.py'}")
    for event, ns in lines.items():
        print(f"  {ns:8.0f} ns/line  {event}")
    print(f"  {sum(lines.values()) / len(lines):8.0f} ns/line  mean")
    if args.logs is None:
        print("mask_text alone:")
        for s, ns in per_string(args.n).items():
            print(f"  {ns:8.0f} ns  {s}")


if __name__ == "__main__":
    main()
