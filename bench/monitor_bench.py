"""The cost of supervisor monitor sessions (calls/monitor.py) on one worker, over real SIP and RTP.

N callers (sipp, each sending a tone) go straight to the bench queue (bench/flows/bench_queue.yaml) and
are bridged to N agent phones (one sipp UAS echoing RTP). With every call up, the worker's CPU is measured
over a window with no monitor session, then again with M sessions in listen mode (each rings a supervisor
phone, one sipp UAS echoing RTP, and taps its leg into a call), then with the same M switched to barge.
The difference, divided by M, is one session's cost; each session is one more SIP leg, RTP stream and
conference-bridge port.

Run: .venv/bin/python bench/monitor_bench.py [--calls 100] [--monitors 50] [--window 15]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))            # the package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # tests/ helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))                   # sip_bench
import ports
import sipp
from sip_bench import CpuMeter, raise_nofile, rss_mb, running_worker
from worker_proc import WorkerProc, api_user

from callcenter.redis_server import EmbeddedRedis


def wait(check: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.5)
    raise SystemExit(f"gave up waiting for {what}")


def measure(w: WorkerProc, seconds: float) -> tuple[float, float]:
    meter = CpuMeter(w.proc.pid)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.5)
        meter.sample()
    return meter.percent()[0], rss_mb(w.proc.pid)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--monitors", type=int, default=50)
    ap.add_argument("--window", type=float, default=15.0, help="seconds of each CPU measurement")
    args = ap.parse_args()
    n, m = args.calls, min(args.monitors, args.calls)
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    redis = EmbeddedRedis(tmp / "redis").start()
    runs: list[sipp.Sipp] = []
    try:
        with running_worker(tmp, redis, "bench_queue", n) as w:
            agents = sipp.agent(w.agents_port, "answer", ring_ms=50, calls=n, timeout_s=600, trace=True)
            sup_port = ports.port()
            sups = sipp.agent(sup_port, "answer", ring_ms=50, calls=m, timeout_s=600)
            runs += [agents, sups]
            token = api_user(w.redis_url, "bench-sup", ["supervisor"])
            status, answer = w.http("PATCH", "/admin/users/bench-sup", {"sip_uri": f"sip:sup@127.0.0.1:{sup_port}"})
            assert status == 200, answer
            hold_ms = int((60 + 3 * args.window + n / 20) * 1000)
            callers = sipp.caller(w.target, [("tone", 1000, hold_ms), ("pause", hold_ms), ("hangup",)],
                                  service="bench", calls=n, rate=20, limit=n, codecs="8", timeout_s=hold_ms // 1000 + 60)
            runs.append(callers)

            def call_ids() -> list[str]:
                return re.findall(r"X-Callcenter-Call-Id: (\w+)", agents.messages())

            wait(lambda: len(set(call_ids())) >= n, f"{n} bridged calls", 60 + n / 10)
            ids = sorted(set(call_ids()))
            time.sleep(2)
            base, base_rss = measure(w, args.window)

            for cid in ids[:m]:
                status, answer = w.http("POST", f"/calls/{cid}/monitor", {"mode": "listen"}, token=token)
                assert status == 202, answer

            def connected() -> bool:
                return all(w.http("GET", f"/calls/{cid}/monitor", token=token)[1].get("state") == "connected"
                           for cid in ids[:m])

            wait(connected, f"{m} supervisors connected", 60)
            time.sleep(2)
            listen, listen_rss = measure(w, args.window)
            for cid in ids[:m]:
                assert w.http("POST", f"/calls/{cid}/monitor/mode", {"mode": "barge"}, token=token)[0] == 200
            time.sleep(2)
            barge, barge_rss = measure(w, args.window)

            print(f"{n} bridged calls, {m} monitor sessions; worker CPU (100% = one core) over {args.window:.0f} s, RSS")
            print(f"  no monitor    {base:6.1f}%  {base_rss:6.0f} MB")
            print(f"  {m} listen    {listen:6.1f}%  {listen_rss:6.0f} MB   +{(listen - base) / m:.3f}% CPU per session")
            print(f"  {m} barge     {barge:6.1f}%  {barge_rss:6.0f} MB   +{(barge - base) / m:.3f}% CPU per session")
            for r in runs:
                r.stop()
    finally:
        for r in runs:
            r.stop()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
