"""Concurrent bridged calls on one worker with call recording off, then on (issue 13: "at least 400 with
recording on, CPU and disk MB/s reported"), over real SIP and RTP.

N callers (sipp, each sending a tone) go straight to the bench queue (bench/flows/bench_queue.yaml) and are
bridged to N agent phones (one sipp UAS echoing RTP, so both parties send audio). The same worker runs
the N calls twice: first with its config's default (``recording.policy: never``), then restarted with
``recording: {policy: always}``: every call two mono taps written by pjmedia's clock thread and merged into
a stereo WAV off the loop when it ends (calls/recording.py). For each run, over a window with every call
up: the worker's CPU (100% = one core; utime+stime of all its threads), sipp's CPU (callers and phones
share the cores), the worker's peak RSS, disk MB/s (the growth of the recording directory, and what the
worker wrote to storage per /proc/<pid>/io write_bytes: recordings, CDR store, log); then failures (sipp
errors, calls whose CDR is not answered by an agent) and, recorded, the calls whose CDR links no stored
recording. The last line is the ratio recorded / unrecorded of worker CPU.

Run: .venv/bin/python bench/recording_bench.py [--calls 400] [--window 15] [--rate 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))            # the package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # tests/ helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))                   # sip_bench
import sipp
from sip_bench import (
    STAT_ARGS,
    CpuMeter,
    cleanup,
    first_error,
    peak_up,
    raise_nofile,
    running_worker,
    sipp_counts,
    wait_cdrs,
)
from worker_proc import WorkerProc

from callcenter.redis_server import EmbeddedRedis

TONE_HZ = 700.0


@dataclass
class Run:
    recorded: bool
    calls: int
    failed: int
    unrecorded: int
    worker_cpu: float
    sipp_cpu: float
    rss: float
    rec_mb_s: float
    write_mb_s: float
    peak: int
    stored_mb: float
    note: str = ""


def dir_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with suppress(OSError):
                total += os.stat(os.path.join(dirpath, f)).st_size
    return total


def write_bytes(pid: int) -> int:
    """Bytes the process caused to be written to storage (/proc/<pid>/io)."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def run_calls(w: WorkerProc, n: int, rate: float, window: float, recorded: bool) -> Run:
    """n callers up together for `window` seconds (after the ramp), each bridged to an agent phone."""
    ramp = n / rate
    hold_s = ramp + window + 8                      # the first caller stays until the window is over
    hold_ms = int(hold_s * 1000)
    rec_dir = w.tmp / "recordings"
    start = time.time()
    agents = sipp.agent(w.agents_port, "answer", ring_ms=50, calls=n, timeout_s=int(hold_s + 120))
    callers = sipp.caller(w.target, [("tone", TONE_HZ, hold_ms), ("pause", hold_ms), ("hangup",)],
                          number="0907654321", service="bench", calls=n, rate=rate, limit=n, codecs="8",
                          timeout_s=int(hold_s + 90), extra=[*STAT_ARGS, "-max_socket", str(n + 100)])
    meter = CpuMeter(w.proc.pid, callers.proc.pid, agents.proc.pid)  # type: ignore[union-attr]
    t0 = at0 = time.monotonic()
    w0 = r0 = 0
    rec_mb_s = write_mb_s = 0.0
    marked = stopped = False
    try:
        while callers.proc.poll() is None:
            now = time.monotonic() - t0
            meter.sample()
            if not marked and now >= ramp + 4:
                meter.mark()
                w0, r0, marked = write_bytes(w.proc.pid), dir_bytes(rec_dir), True  # type: ignore[union-attr]
                at0 = time.monotonic()
            if marked and not stopped and now >= ramp + 4 + window:
                meter.stop()
                secs = time.monotonic() - at0
                rec_mb_s = (dir_bytes(rec_dir) - r0) / secs / 1e6
                write_mb_s = (write_bytes(w.proc.pid) - w0) / secs / 1e6  # type: ignore[union-attr]
                stopped = True
            if now > hold_s + 120:
                break
            time.sleep(0.25)
    finally:
        callers.stop()
        agents.stop()
    meter.stop()
    wcpu, ccpu, acpu = meter.percent()
    ok, failed = sipp_counts(callers)
    rows = wait_cdrs(w, start - 1, time.time() + 1, ok + failed, timeout=30)
    answered = [r for r in rows if r.outcome == "answered" and r.agent_id]
    stored = [Path(r.recording) for r in answered if r.recording and Path(r.recording).is_file()]
    note = "" if not failed and ok else f"sipp: {first_error(callers)}"
    if not stopped:
        note += "; calls ended before the window did: raise --window or lower --rate"
    cleanup(callers, agents)
    return Run(recorded, ok + failed, failed + max(0, ok - len(answered)),
               len(answered) - len(stored) if recorded else 0, wcpu, ccpu + acpu, meter.peak_rss, rec_mb_s,
               write_mb_s, peak_up(rows), sum(p.stat().st_size for p in stored) / 1e6, note)


def record_all(w: WorkerProc) -> None:
    """Restart the worker with every call recorded (the agents stay logged in: their state is in Redis)."""
    w.stop(timeout=30)
    with w.config.open("a") as f:
        f.write("recording: {policy: always, retention_days: 1}\n")
    w.start(timeout=40)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=400, help="concurrent bridged calls")
    ap.add_argument("--window", type=float, default=15.0, help="seconds of the measurement, every call up")
    ap.add_argument("--rate", type=float, default=20.0, help="new calls/s while the calls ramp up")
    args = ap.parse_args()
    n = args.calls
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="recording-bench-"))
    redis = EmbeddedRedis(tmp / "redis").start()
    runs: list[Run] = []
    try:
        with running_worker(tmp, redis, "bench_queue", n) as w:
            runs.append(run_calls(w, n, args.rate, args.window, recorded=False))
            time.sleep(3)
            record_all(w)
            runs.append(run_calls(w, n, args.rate, args.window, recorded=True))
    finally:
        redis.stop()
    print(f"\n{n} concurrent bridged calls on one worker ({os.cpu_count()} cores), {args.window:.0f} s window; "
          "CPU 100% = one core")
    print(f"{'recording':>9} {'calls':>6} {'failed':>6} {'unrec.':>6} {'wkr CPU%':>8} {'sipp CPU%':>9} {'RSS MB':>7} "
          f"{'rec MB/s':>8} {'disk MB/s':>9} {'peak up':>7} {'stored MB':>9}  note")
    for r in runs:
        print(f"{'on' if r.recorded else 'off':>9} {r.calls:>6} {r.failed:>6} {r.unrecorded:>6} {r.worker_cpu:>8.0f} "
              f"{r.sipp_cpu:>9.0f} {r.rss:>7.0f} {r.rec_mb_s:>8.2f} {r.write_mb_s:>9.2f} {r.peak:>7} "
              f"{r.stored_mb:>9.1f}  {r.note}")
    if len(runs) == 2 and runs[0].worker_cpu > 0:
        print(f"worker CPU recorded / unrecorded: {runs[1].worker_cpu / runs[0].worker_cpu:.2f}")
    return 0 if all(r.failed == 0 and r.unrecorded == 0 and not r.note for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
