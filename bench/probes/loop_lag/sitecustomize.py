"""A loop-lag probe for a worker under a benchmark (bench/RESULTS.md, "Session 7"): put this directory on the
worker's PYTHONPATH (`PYTHONPATH=bench/probes/loop_lag .venv/bin/python bench/sip_bench.py ...`; the bench passes
its environment to the worker) and every 250 ms the worker's loop writes one line to
/tmp/loop-lag.<pid>: the worst lateness of a 10 ms timer, the loop thread's CPU share, cyclic-GC time, and how
many callbacks were ready. A loop that is late with callbacks ready while its thread uses half a core is not
busy but kept from running (another thread holding the GIL, or the CPU). Only `callcenter worker` processes are
probed."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from typing import Any

if "worker" in sys.argv:
    _gc = {"t": 0.0, "start": 0.0}

    def _gc_timer(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _gc["start"] = time.perf_counter()
        else:
            _gc["t"] += time.perf_counter() - _gc["start"]

    gc.callbacks.append(_gc_timer)
    _run_forever = asyncio.BaseEventLoop.run_forever

    def run_forever(self: asyncio.BaseEventLoop) -> None:
        s = {"due": time.monotonic() + 0.01, "max": 0.0, "w0": time.monotonic(), "cpu0": time.thread_time(), "gc0": 0.0}
        out = open(f"/tmp/loop-lag.{os.getpid()}", "w", buffering=1)  # noqa: SIM115 - lives with the process

        def tick() -> None:
            now = time.monotonic()
            s["max"] = max(s["max"], now - s["due"])
            if now - s["w0"] >= 0.25:
                cpu = time.thread_time()
                ready = len(getattr(self, "_ready", ()))
                out.write(f"{time.time():.3f} maxlag_ms={s['max'] * 1000:.0f} cpu={(cpu - s['cpu0']) / (now - s['w0']):.2f} "
                          f"gc_ms={(_gc['t'] - s['gc0']) * 1000:.0f} ready={ready}\n")
                s.update(w0=now, cpu0=cpu, max=0.0, gc0=_gc["t"])
            s["due"] = now + 0.01
            self.call_later(0.01, tick)

        self.call_soon(tick)
        _run_forever(self)

    asyncio.BaseEventLoop.run_forever = run_forever  # type: ignore[method-assign]
