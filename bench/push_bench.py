"""Push latency: from an agent's state change to its page, with N agents' event streams open on one worker.

A real worker (bench_queue flow, N agents in one queue, all logged in) serves N GET /events streams, one per
agent user (tests/sse_client.py: a thread per stream reading the Server-Sent Events). The bench changes
agents' states at --rate per second for --seconds (pause, ready, alternately, on the ACD as the API would:
routing's Lua publishes agent.state in the same script). Each event carries the time of the change (ts,
the script's clock); its latency is when the agent's own page read it minus that. The queue's figures
(queue.stats, published when they change) reach all N pages: their fan-out latency is reported apart.
--browsers B also opens B headless chromium pages (Debian's chromium + selenium) that log in through
/auth/login as a supervisor of every queue (so each sees every agent's change) and run an EventSource on the
worker's origin; they report each event's arrival time in the page.

Run: .venv/bin/python bench/push_bench.py [--agents 100] [--rate 20] [--seconds 30] [--browsers 0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))            # the package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # tests/ helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))                   # sip_bench
from sip_bench import CpuMeter, raise_nofile, running_worker
from sse_client import SseClient
from worker_proc import WorkerProc, api_user

from callcenter.redis_server import EmbeddedRedis
from callcenter.redisconn import connect
from callcenter.routing.router import Router

FIRST_AGENT = 3000          # sip_bench.write_rules' agent ids: 3000, 3001, ...


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def line(name: str, ms: list[float]) -> str:
    if not ms:
        return f"{name:<28} no events"
    return (f"{name:<28} n={len(ms):<6} p50={pct(ms, 50):7.1f} ms  p90={pct(ms, 90):7.1f} ms  "
            f"p99={pct(ms, 99):7.1f} ms  max={max(ms):7.1f} ms  mean={statistics.fmean(ms):6.1f} ms")


async def drive(redis_url: str, ids: list[str], rate: float, seconds: float) -> int:
    """Pause and make ready agents in turn at `rate` changes a second; how many changes were made."""
    r = connect(redis_url)
    router = Router(r, "push-bench")
    n, start = 0, time.monotonic()
    paused: set[str] = set()
    while time.monotonic() - start < seconds:
        a = ids[n % len(ids)]
        if a in paused:
            await router.agent_ready(a)
            paused.discard(a)
        else:
            await router.agent_pause(a, "break")
            paused.add(a)
        n += 1
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
    for a in paused:                     # everyone ready again: these are changes too
        await router.agent_ready(a)
    await r.aclose()
    return n + len(paused)


BROWSER_JS = """
window.__got = [];
const es = new EventSource('/events');
es.onmessage = null;
for (const t of ['agent.state', 'queue.stats']) {
  es.addEventListener(t, (e) => { const d = JSON.parse(e.data); window.__got.push([t, d.agent || '', d.ts, Date.now() / 1000]); });
}
"""


def browsers(w: WorkerProc, n: int) -> list[object]:
    """n headless chromium pages, each logged in as a supervisor (every queue) and listening to /events."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    out = []
    for _ in range(n):
        opts = Options()
        opts.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            opts.add_argument(flag)
        d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        base = f"http://127.0.0.1:{w.http_port}"
        d.get(base + "/auth/me")          # a page of the worker's origin: the login and the stream are same-origin
        d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/auth/login', {method: 'POST', headers: {'content-type': 'application/json'},
                                  body: JSON.stringify({user: arguments[0], password: 'test password 1'})})
              .then(r => done(r.status));""", "push-sup")
        d.execute_script(BROWSER_JS)
        out.append(d)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--rate", type=float, default=20.0, help="agent state changes per second")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--browsers", type=int, default=0, help="headless chromium pages besides the SSE clients")
    args = ap.parse_args()
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="push-bench-"))
    redis = EmbeddedRedis(tmp / "redis").start()
    try:
        with running_worker(tmp, redis, "bench_queue", args.agents) as w:
            ids = [str(FIRST_AGENT + i) for i in range(args.agents)]
            t0 = time.monotonic()
            streams = [SseClient(w.http_port, api_user(w.redis_url, f"push-agent-{a}", ["agent"], agent=a))
                       for a in ids]
            print(f"{len(streams)} event streams open in {time.monotonic() - t0:.1f} s")
            if args.browsers:
                api_user(w.redis_url, "push-sup", ["supervisor"])
            pages = browsers(w, args.browsers) if args.browsers else []
            meter = CpuMeter(w.proc.pid)
            started = time.time()
            changes = asyncio.run(drive(w.redis_url, ids, args.rate, args.seconds))
            meter.sample()
            time.sleep(2.0)                      # the last events' way to the pages
            cpu = meter.percent()[0]
            own: list[float] = []
            fan: list[float] = []
            for a, s in zip(ids, streams, strict=True):
                with s.cond:
                    msgs = list(s.messages)
                for m in msgs:
                    if m.data["ts"] < started:
                        continue
                    late = (m.received - m.data["ts"]) * 1000
                    if m.type == "agent.state" and m.data.get("agent") == a:
                        own.append(late)
                    elif m.type == "queue.stats":
                        fan.append(late)
            web: list[float] = []
            for d in pages:
                got = d.execute_script("return window.__got")   # type: ignore[attr-defined]
                web += [(float(g[3]) - float(g[2])) * 1000 for g in got if g[0] == "agent.state" and g[2] >= started]
            print(f"{args.agents} agents' streams, {changes} state changes in {args.seconds:g} s "
                  f"({changes / args.seconds:.1f}/s); worker CPU {cpu:.0f}% of one core")
            print(line("agent.state -> own page", own))
            print(line("queue.stats -> every page", fan))
            if pages:
                print(line(f"agent.state -> chromium x{len(pages)}", web))
            missing = changes - len(own)
            print(f"changes not seen on their agent's page: {missing}")
            for s in streams:
                s.close()
            for d in pages:
                d.quit()   # type: ignore[attr-defined]
    finally:
        redis.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
