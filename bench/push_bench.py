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

--pages P opens the agent desks (/console/agent/{id}) of the first P agents as real pages: tabs of headless
chromium processes (--tabs per process), each tab on a host name of its own (a{id}.push.test, mapped to
127.0.0.1 by chromium's resolver) so each holds its own agent's session cookie (made in Redis, as a login
would) and its own connections. A MutationObserver in each desk writes performance.timeOrigin + now() each time
#agent-state shows another state; a change's event-to-screen latency is when its agent's desk first showed the
new state minus when the bench made the change (just before the ACD script that publishes the event: the desk
gets agent.state, asks GET /agents/{id} and renders). p50/p99 over all P pages.

Run: .venv/bin/python bench/push_bench.py [--agents 100] [--rate 20] [--seconds 30] [--browsers 0] [--pages 0]
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


Change = tuple[str, str, float]     # agent, the state it was put in, when (epoch s, just before the change)


async def drive(redis_url: str, ids: list[str], rate: float, seconds: float) -> list[Change]:
    """Pause and make ready agents in turn at `rate` changes a second; the changes made."""
    r = connect(redis_url)
    router = Router(r, "push-bench")
    n, start = 0, time.monotonic()
    paused: set[str] = set()
    changes: list[Change] = []
    while time.monotonic() - start < seconds:
        a = ids[n % len(ids)]
        changes.append((a, "available" if a in paused else "paused", time.time()))
        if a in paused:
            await router.agent_ready(a)
            paused.discard(a)
        else:
            await router.agent_pause(a, "break")
            paused.add(a)
        n += 1
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
    for a in paused:                     # everyone ready again: these are changes too
        changes.append((a, "available", time.time()))
        await router.agent_ready(a)
    await r.aclose()
    return changes


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


CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                  "--disable-backgrounding-occluded-windows", "--host-resolver-rules=MAP *.push.test 127.0.0.1")

# Each time the desk's state element shows another state: [state, epoch ms] (Preact may replace the element, so
# every mutation of the page looks the element up again).
DESK_JS = """
window.__renders = [];
let last = null;
const seen = () => {
  const el = document.getElementById('agent-state');
  const state = el && el.getAttribute('data-state');
  if (state && state !== last) { last = state; window.__renders.push([state, performance.timeOrigin + performance.now()]); }
};
new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                   attributeFilter: ['data-state'], characterData: true});
seen();
"""


def desks(w: WorkerProc, ids: list[str], per_process: int) -> list[tuple[object, str, str]]:
    """The agents' desks open in tabs of headless chromium processes (``per_process`` tabs each), each tab signed
    in as its agent (a session made in Redis, its cookie set on the tab's own host): (driver, tab, agent) each."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    from callcenter.auth import Auth

    async def sessions() -> list[str]:
        r = connect(w.redis_url)
        try:
            auth = Auth.connect(r, "cc:")
            return [await auth.sessions.create(f"push-agent-{a}") for a in ids]
        finally:
            await r.aclose()

    sids = asyncio.run(sessions())
    out: list[tuple[object, str, str]] = []
    driver = None
    for i, (a, sid) in enumerate(zip(ids, sids, strict=True)):
        if i % per_process == 0:
            opts = Options()
            opts.binary_location = "/usr/bin/chromium"
            for flag in CHROMIUM_FLAGS:
                opts.add_argument(flag)
            driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        else:
            driver.switch_to.new_window("tab")      # type: ignore[union-attr]
        base = f"http://a{a}.push.test:{w.http_port}"
        driver.get(base + "/console/login")       # type: ignore[union-attr]
        driver.add_cookie({"name": "cc_session", "value": sid, "path": "/"})   # type: ignore[union-attr]
        driver.get(f"{base}/console/agent/{a}")    # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while driver.execute_script(                # type: ignore[union-attr]
                "const e = document.getElementById('agent-state');"
                "return e ? e.getAttribute('data-state') : null;") in (None, "loading"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"agent {a}'s desk did not show its state")
            time.sleep(0.05)
        driver.execute_script(DESK_JS)             # type: ignore[union-attr]
        out.append((driver, driver.current_window_handle, a))   # type: ignore[union-attr]
    return out


def on_screen(pages: list[tuple[object, str, str]], changes: list[Change]) -> tuple[list[float], int]:
    """Each change of a paged agent: its desk's first showing of the new state after it (ms); how many never
    showed."""
    shown: dict[str, list[tuple[str, float]]] = {}
    for driver, tab, a in pages:
        driver.switch_to.window(tab)               # type: ignore[attr-defined]
        shown[a] = [(str(s), float(t) / 1000) for s, t in driver.execute_script("return window.__renders")]   # type: ignore[attr-defined]
    late: list[float] = []
    missed = 0
    for a, state, at in changes:
        if a not in shown:
            continue
        first = next((t for s, t in shown[a] if s == state and t >= at), None)
        if first is None:
            missed += 1
        else:
            late.append((first - at) * 1000)
    return late, missed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--rate", type=float, default=20.0, help="agent state changes per second")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--browsers", type=int, default=0, help="headless chromium pages besides the SSE clients")
    ap.add_argument("--pages", type=int, default=0, help="agents' desks open in chromium tabs (the first P agents)")
    ap.add_argument("--tabs", type=int, default=25, help="desk tabs per chromium process")
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
            t0 = time.monotonic()
            tabs = desks(w, ids[:args.pages], args.tabs) if args.pages else []
            if tabs:
                print(f"{len(tabs)} agent desks open in {time.monotonic() - t0:.1f} s "
                      f"({-(-len(tabs) // args.tabs)} chromium processes)")
            meter = CpuMeter(w.proc.pid)
            started = time.time()
            made = asyncio.run(drive(w.redis_url, ids, args.rate, args.seconds))
            changes = len(made)
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
            if tabs:
                screen, missed = on_screen(tabs, made)
                print(line(f"change -> desk screen x{len(tabs)}", screen))
                print(f"changes never shown on their agent's desk: {missed}")
            missing = changes - len(own)
            print(f"changes not seen on their agent's page: {missing}")
            for s in streams:
                s.close()
            for d in pages:
                d.quit()   # type: ignore[attr-defined]
            for d in {id(t[0]): t[0] for t in tabs}.values():
                d.quit()   # type: ignore[attr-defined]
    finally:
        redis.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
