"""Routing benchmark: decisions/s and enqueue-to-offer latency as the queue and the agent pool grow.

    .venv/bin/python bench/routing_bench.py [--seconds 2] [--concurrency 8]

For each (waiting calls, agents) pair a fresh throwaway redis-server (EmbeddedRedis, AOF on) holds a
backlog of W calls in the queue that no agent is skilled for (so they stay waiting and every match
has to look past them), plus A logged-in agents. Then:

  * end-to-end: C asyncio tasks through the public Router API, each cycling
    enqueue -> offer delivered on the worker's list -> offer_answered -> call_finished (wrap-up 0).
    Every cycle makes two routing decisions (the caller picks a free agent; the freed agent looks
    for the best waiting call across its queues). Latency = enqueue() start -> offer in hand.
  * pipelined: the same three scripts sent in pipelines of up to 200 calls: what Redis + Lua can do
    when the Python client is not the bottleneck.
  * server cost: usec per FCALL from INFO commandstats (the Lua time inside Redis) during the
    pipelined run, and the decision rate one Redis core could sustain at that cost
    (2 decisions per 3 FCALLs) if the clients ran elsewhere.

The ceiling is redis-benchmark's EVAL rate on the same machine in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callcenter.redis_server import EmbeddedRedis  # noqa: E402
from callcenter.routing import rules as R  # noqa: E402
from callcenter.routing import scripts  # noqa: E402
from callcenter.routing.router import QueuedCall, Router, connect  # noqa: E402

PREFIX = "cc:"


def rules_yaml(agents: int) -> str:
    lines = ["defaults: {ring_timeout: 15, wrapup: 0, miss_limit: 3}", "queues:",
             "  sales: {skills: {sales: 1}, strategy: longest_idle}",
             "  support: {skills: {support: 1}, strategy: fewest_calls}", "agents:"]
    for i in range(agents):
        lines.append(f"  a{i}: {{uri: 'sip:a{i}@127.0.0.1:5070', skills: {{sales: 5, support: 5}}, "
                     f"queues: {{sales: 2, support: 1}}}}")
    return "\n".join(lines) + "\n"


def setup(url: str, waiting: int, agents: int) -> None:
    client = redis.Redis.from_url(url)
    client.flushall()
    lib = scripts.Library(client)
    lib.ensure()
    now, day = time.time(), time.strftime("%Y%m%d")

    def args(*rest: object) -> list[object]:
        return [PREFIX, repr(now), day, *rest]

    lib.call("apply_rules", *args(json.dumps(R.loads(rules_yaml(agents)).to_json())))
    pipe = client.pipeline(transaction=False)
    for i in range(waiting):   # backlog nobody can take: sales 9 needed, agents have 5
        lib.call("enqueue", *args(f"b{i}", "sales", '{"sales": 9}', 0, "", "{}", "backlog"), client=pipe)
        if i % 1000 == 999:
            pipe.execute()
    for i in range(agents):
        lib.call("agent", *args(f"a{i}", "login", "1"), client=pipe)
    pipe.execute()
    client.config_resetstat()
    client.close()


async def end_to_end(url: str, seconds: float, concurrency: int, worker: str = "bench") -> tuple[int, list[float]]:
    rt = Router(connect(url), worker)
    loop = asyncio.get_running_loop()
    pending: dict[str, asyncio.Future] = {}
    latencies: list[float] = []
    stop = False

    async def dispatcher() -> None:
        while not stop:
            for o in await rt.next_offers(timeout=0.05):
                fut = pending.pop(o.call_id, None)
                if fut is not None:
                    fut.set_result((o, time.perf_counter()))

    async def caller(i: int) -> int:
        n = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            cid = f"{worker}-h{i}-{n}"
            n += 1
            fut = loop.create_future()
            pending[cid] = fut
            t0 = time.perf_counter()
            await rt.enqueue(QueuedCall(cid, "sales", {}, 1, "", {}))
            offer, t1 = await fut
            latencies.append(t1 - t0)
            await rt.offer_answered(offer)
            await rt.call_finished(cid, offer.agent_id, 1.0)
        return n

    disp = asyncio.ensure_future(dispatcher())
    counts = await asyncio.gather(*(caller(i) for i in range(concurrency)))
    stop = True
    await disp
    await rt.redis.aclose()
    return sum(counts), latencies


def _e2e_proc(url: str, seconds: float, concurrency: int, worker: str, out: Any) -> None:
    out.put(asyncio.run(end_to_end(url, seconds, concurrency, worker)))


def end_to_end_procs(url: str, seconds: float, concurrency: int, procs: int) -> dict[str, float]:
    """Several worker processes, as in production: each its own Router and offer list."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    ps = [ctx.Process(target=_e2e_proc, args=(url, seconds, concurrency, f"bench{i}", out)) for i in range(procs)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    results = [out.get(timeout=seconds + 60) for _ in ps]
    elapsed = time.perf_counter() - t0
    for p in ps:
        p.join(10)
    cycles = sum(r[0] for r in results)
    latencies = sorted(x for r in results for x in r[1])
    # elapsed includes process start-up: a slight understatement of the rate
    return {"decisions_per_s": 2 * cycles / elapsed, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


def pipelined(url: str, seconds: float, agents: int) -> float:
    client = redis.Redis.from_url(url, decode_responses=True)
    lib = scripts.Library(client)
    batch = min(200, agents)
    day = time.strftime("%Y%m%d")
    n = 0
    end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        now = repr(time.time())
        pipe = client.pipeline(transaction=False)
        for i in range(batch):
            lib.call("enqueue", PREFIX, now, day, f"p{n + i}", "sales", "{}", 1, "", "{}", "pipe", client=pipe)
        pipe.execute()
        offers = [json.loads(x) for x in client.lpop(f"{PREFIX}rt:w:pipe:offers", batch) or []]
        pipe = client.pipeline(transaction=False)
        for o in offers:
            lib.call("offer_answered", PREFIX, now, day, o["offer_id"], client=pipe)
        for o in offers:
            lib.call("call_finished", PREFIX, now, day, o["call_id"], o["agent_id"], "1.0", client=pipe)
        pipe.execute()
        n += batch
    elapsed = time.perf_counter() - t0
    client.close()
    return 2 * n / elapsed


def fcall_usec(url: str) -> float:
    stats = redis.Redis.from_url(url).info("commandstats")
    return float(stats.get("cmdstat_fcall", {}).get("usec_per_call", 0.0))


def redis_benchmark(server: EmbeddedRedis) -> float:
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return 0.0
    out = subprocess.run([exe, "-s", str(server.socket), "-n", "100000", "-c", "8", "-q",
                          "EVAL", "return redis.call('INCR', KEYS[1])", "1", "bench:ctr"],
                         capture_output=True, text=True, timeout=120).stdout
    m = re.findall(r"([\d.]+) requests per second", out.replace(",", ""))
    return float(m[-1]) if m else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--concurrency", type=int, default=4, help="callers per worker process")
    ap.add_argument("--procs", type=int, default=2, help="worker processes in the end-to-end run")
    ap.add_argument("--waiting", default="10,1000,10000")
    ap.add_argument("--agents", default="10,2000")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as tmp:
        server = EmbeddedRedis(tmp).start()
        try:
            ceiling = redis_benchmark(server)
            print(f"redis-benchmark EVAL (trivial script, -c 8): {ceiling:,.0f} calls/s  <- ceiling")
            print(f"end-to-end: {opts.procs} worker processes; a cycle = enqueue + answered + finished "
                  f"= 2 routing decisions")
            print(f"{'waiting':>8} {'agents':>6} | {'e2e decisions/s':>15} {'p50 ms':>7} {'p99 ms':>7} | "
                  f"{'pipelined dec/s':>15} | {'usec/FCALL':>10} {'Redis-bound dec/s':>17}")
            for a in (int(x) for x in opts.agents.split(",")):
                for w in (int(x) for x in opts.waiting.split(",")):
                    setup(server.url, w, a)
                    conc = max(1, min(opts.concurrency, (a - 1) // opts.procs))
                    e2e = end_to_end_procs(server.url, opts.seconds, conc, opts.procs)
                    setup(server.url, w, a)
                    piped = pipelined(server.url, opts.seconds, a)
                    usec = fcall_usec(server.url)
                    # Redis time per cycle is 3 FCALLs; the cycle makes 2 decisions
                    bound = 2e6 / (3 * usec) if usec else 0.0
                    print(f"{w:>8} {a:>6} | {e2e['decisions_per_s']:>15,.0f} {e2e['p50_ms']:>7.2f} "
                          f"{e2e['p99_ms']:>7.2f} | {piped:>15,.0f} | {usec:>10.1f} {bound:>17,.0f}", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
