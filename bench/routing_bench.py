"""Routing benchmark: decisions/s and enqueue-to-offer latency as the queue and the agent pool grow.

    .venv/bin/python bench/routing_bench.py [--seconds 2] [--procs 3]

A *decision* is one enqueue that matches a free agent, or one agent becoming free (call_finished)
that takes a waiting call. Each makes exactly one offer, so decisions are counted as offers made
(popped by the clients plus any left in their lists), never inferred from the number of calls.

For each (waiting calls W, agents A) pair a fresh throwaway redis-server (EmbeddedRedis, AOF on) holds
a backlog of W calls in the queue that no agent is skilled for (so they stay waiting and every match
has to look past them), plus A logged-in agents. Then:

  * Redis cost of a decision, from INFO commandstats (usec of FCALL, the Lua time inside Redis, and
    the number of Redis commands run inside it), pipelined from one client so only the decision
    scripts are timed, with all A agents on calls except the ones deciding (see decision_cost):
      - "enq->agent": enqueue of a caller that a free agent takes at once;
      - "free->call": call_finished of an agent that takes the head waiting caller.
    "Redis dec/s" = 1e6 / the mean of the two: what one Redis core sustains in decisions alone.
    "cmds" = Redis commands per decision (enq/free): deterministic, unlike the us columns. The us
    are the median over the rounds' pipelines (each `batch` decisions) of usec per FCALL.
  * Load: P client processes (multiprocessing), each its own worker id with pipelined FCALLs:
    it keeps up to 1.5 x A / P callers in flight (more callers than agents: both decision kinds
    happen), pops its offers, answers and finishes them. "e2e dec/s" is the achieved rate;
    "us/dec life" is the Redis time of the whole call life (enqueue + offer_answered + call_finished)
    per decision, and "Redis life dec/s" = 1e6 / that: the rate one Redis core sustains for complete calls.
    "CPU us/call" is redis-server's whole CPU time (INFO cpu: scripts, protocol, AOF) per complete call.
  * Latency: one client, unpipelined, through the public Router API (asyncio), 2 callers at a time,
    each cycling enqueue -> offer in the worker's hand (next_offers) -> offer_answered -> call_finished.
    p50/p99 of enqueue() start -> offer in hand.

The ceiling is redis-benchmark's EVAL rate (trivial script) on the same machine in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
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

from callcenter.redis_server import EmbeddedRedis
from callcenter.redisconn import connect, connect_sync
from callcenter.routing import rules as R
from callcenter.routing import scripts
from callcenter.routing.router import QueuedCall, Router

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
    client = connect_sync(url)
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


def _args(*rest: object) -> list[object]:
    return [PREFIX, repr(time.time()), time.strftime("%Y%m%d"), *rest]


def _stats(client: redis.Redis) -> tuple[float, int, int]:
    """(usec inside FCALL, FCALLs, commands run inside them) so far, from INFO commandstats."""
    st = client.info("commandstats")
    fc = st.get("cmdstat_fcall", {})
    inner = sum(int(v.get("calls", 0)) for k, v in st.items()
                if k not in ("cmdstat_fcall", "cmdstat_info", "cmdstat_lpop", "cmdstat_config"))
    return float(fc.get("usec", 0)), int(fc.get("calls", 0)), inner


def _cpu(client: redis.Redis) -> float:
    """CPU seconds redis-server has used (user + system, all its threads: AOF writes included)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _offers(client: redis.Redis, worker: str) -> list[dict[str, Any]]:
    raw = client.lpop(f"{PREFIX}rt:w:{worker}:offers", 100000) or []
    return [json.loads(x) for x in raw]


class _Timed:
    """Redis time per FCALL of each pipeline it runs (the median over pipelines is reported: this VM's
    neighbours make single pipelines slow now and then), and commands run inside them."""

    def __init__(self, client: redis.Redis) -> None:
        self.client, self.per_call, self.calls, self.cmds = client, [], 0, 0

    def run(self, pipe: Any) -> None:
        u0, c0, i0 = _stats(self.client)
        pipe.execute()
        u1, c1, i1 = _stats(self.client)
        # the INFO/LPOP of this bookkeeping are excluded by name; nothing else runs meanwhile
        self.per_call.append((u1 - u0) / max(1, c1 - c0))
        self.calls, self.cmds = self.calls + c1 - c0, self.cmds + i1 - i0

    @property
    def us(self) -> float:
        return statistics.median(self.per_call)


def decision_cost(url: str, agents: int, seconds: float) -> dict[str, float]:
    """Redis usec and commands of the two decisions, with every agent busy but the ones deciding.

    All A agents are put on calls first. Each round then takes `batch` of them (min(A, 200)):
    they finish with nobody waiting (they become free), `batch` new callers are each taken by one
    of them (timed: enq->agent), those calls are answered, `batch` more callers wait (every agent is
    busy), and the same agents finish again, each taking the head waiting caller (timed:
    free->call). The other A - batch agents stay on calls, as in a busy centre.
    """
    client = connect_sync(url)
    lib = scripts.Library(client)
    batch = min(agents, 200)
    n = 0

    def enqueue(pipe: Any, count: int) -> None:
        nonlocal n
        for i in range(count):
            lib.call("enqueue", *_args(f"d{n + i}", "sales", "{}", 1, "", "{}", "cost"), client=pipe)
        n += count

    def answer(offers: list[dict[str, Any]]) -> None:
        pipe = client.pipeline(transaction=False)
        for o in offers:
            lib.call("offer_answered", *_args(o["offer_id"], o["call_id"]), client=pipe)
        pipe.execute()

    def finish(pipe: Any, calls: list[tuple[str, str]]) -> None:
        for call_id, agent_id in calls:
            lib.call("call_finished", *_args(call_id, agent_id, "1.0"), client=pipe)

    pipe = client.pipeline(transaction=False)
    enqueue(pipe, agents)
    pipe.execute()
    filled = _offers(client, "cost")
    answer(filled)
    busy = [(o["call_id"], o["agent_id"]) for o in filled]
    assert len(busy) == agents, f"{len(busy)} of {agents} agents took a call"
    enq, fin = _Timed(client), _Timed(client)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or not enq.calls:
        chunk, busy = busy[:batch], busy[batch:]
        pipe = client.pipeline(transaction=False)
        finish(pipe, chunk)                        # nobody waiting: these agents become free
        pipe.execute()
        pipe = client.pipeline(transaction=False)
        enqueue(pipe, batch)                       # enq->agent: each caller takes a free agent
        enq.run(pipe)
        first = _offers(client, "cost")
        answer(first)
        pipe = client.pipeline(transaction=False)
        enqueue(pipe, batch)                       # every agent busy: these wait
        pipe.execute()
        pipe = client.pipeline(transaction=False)
        finish(pipe, [(o["call_id"], o["agent_id"]) for o in first])
        fin.run(pipe)                              # free->call: each agent takes the head caller
        second = _offers(client, "cost")
        answer(second)
        assert len(first) == len(second) == batch, (len(first), len(second))
        busy += [(o["call_id"], o["agent_id"]) for o in second]
    client.close()
    return {"enq_us": enq.us, "fin_us": fin.us,
            "enq_cmds": enq.cmds / enq.calls, "fin_cmds": fin.cmds / fin.calls}


def _load_proc(url: str, worker: str, cap: int, go: Any, stop_at: Any, out: Any) -> None:
    client = connect_sync(url)
    lib = scripts.Library(client)
    inflight, n, done = 0, 0, 0
    go.wait()
    while time.time() < stop_at.value:
        pipe = client.pipeline(transaction=False)
        new = min(200, cap - inflight)
        for i in range(new):
            lib.call("enqueue", *_args(f"{worker}-{n + i}", "sales", "{}", 1, "", "{}", worker), client=pipe)
        pipe.lpop(f"{PREFIX}rt:w:{worker}:offers", 200)
        raw = pipe.execute()[-1] or []
        n, inflight = n + new, inflight + new
        if not raw:
            time.sleep(0.0002)
            continue
        offers = [json.loads(x) for x in raw]
        pipe = client.pipeline(transaction=False)
        for o in offers:
            lib.call("offer_answered", *_args(o["offer_id"], o["call_id"]), client=pipe)
            lib.call("call_finished", *_args(o["call_id"], o["agent_id"], "1.0"), client=pipe)
        pipe.execute()
        inflight -= len(offers)
        done += len(offers)
    client.close()
    out.put(done)


def load(url: str, seconds: float, agents: int, procs: int) -> dict[str, float]:
    """P pipelined client processes; decisions = offers made while they ran (popped + left over)."""
    ctx = mp.get_context("fork")
    out, go, stop_at = ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    cap = max(2, (3 * agents) // (2 * procs))
    ps = [ctx.Process(target=_load_proc, args=(url, f"load{i}", cap, go, stop_at, out)) for i in range(procs)]
    for p in ps:
        p.start()
    client = connect_sync(url)
    time.sleep(0.3)   # let the processes start before the clock runs
    u0, c0, _ = _stats(client)
    cpu0 = _cpu(client)
    t0 = time.perf_counter()
    stop_at.value = time.time() + seconds
    go.set()
    popped = sum(out.get(timeout=seconds + 60) for _ in ps)
    elapsed = time.perf_counter() - t0
    u1, c1, _ = _stats(client)
    cpu1 = _cpu(client)
    left = sum(client.llen(f"{PREFIX}rt:w:load{i}:offers") for i in range(procs))
    client.close()
    for p in ps:
        p.join(10)
    decisions = popped + left
    return {"dec_per_s": decisions / elapsed, "us_per_dec": (u1 - u0) / max(1, decisions),
            "cpu_us_per_dec": 1e6 * (cpu1 - cpu0) / max(1, decisions),
            "fcalls_per_dec": (c1 - c0) / max(1, decisions)}


async def latency(url: str, seconds: float, concurrency: int, worker: str = "lat") -> list[float]:
    """Unpipelined Router API calls from one client; enqueue() start -> offer in hand, seconds."""
    rt = Router(connect(url), worker)
    loop = asyncio.get_running_loop()
    pending: dict[str, asyncio.Future[Any]] = {}
    latencies: list[float] = []
    stop = False

    async def dispatcher() -> None:
        while not stop:
            for o in await rt.next_offers(timeout=0.05):
                fut = pending.pop(o.call_id, None)
                if fut is not None:
                    fut.set_result((o, time.perf_counter()))

    async def caller(i: int) -> None:
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

    disp = asyncio.ensure_future(dispatcher())
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    stop = True
    await disp
    await rt.redis.aclose()
    return sorted(latencies)


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
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement and cell")
    ap.add_argument("--procs", type=int, default=3, help="pipelining client processes in the load run")
    ap.add_argument("--latency-callers", type=int, default=2, help="concurrent callers in the latency run")
    ap.add_argument("--waiting", default="10,1000,10000")
    ap.add_argument("--agents", default="10,2000")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="do not pin redis-server to its own core (clients on the others)")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as tmp:
        server = EmbeddedRedis(tmp).start()
        cores = sorted(os.sched_getaffinity(0))
        if opts.pin and len(cores) >= 2 and server.proc is not None:
            # Redis on a core of its own, every client (this process, the load processes it forks,
            # redis-benchmark) on the others: the same split as a production Redis host
            os.sched_setaffinity(server.proc.pid, {cores[-1]})
            os.sched_setaffinity(0, set(cores[:-1]))
            print(f"redis-server pinned to core {cores[-1]}, clients on {cores[:-1]}")
        try:
            ceiling = redis_benchmark(server)
            print(f"redis-benchmark EVAL (trivial script, -c 8): {ceiling:,.0f} calls/s  <- ceiling")
            print(f"load: {opts.procs} pipelining client processes; latency: 1 client, "
                  f"{opts.latency_callers} callers, unpipelined Router API")
            print(f"{'waiting':>7} {'agents':>6} | {'us enq->agent':>13} {'us free->call':>13} {'Redis dec/s':>11} "
                  f"{'cmds':>9} | "
                  f"{'e2e dec/s':>9} {'us/dec life':>11} {'Redis life dec/s':>16} {'CPU us/call':>11} | "
                  f"{'p50 ms':>6} {'p99 ms':>6}")
            for a in (int(x) for x in opts.agents.split(",")):
                for w in (int(x) for x in opts.waiting.split(",")):
                    setup(server.url, w, a)
                    cost = decision_cost(server.url, a, opts.seconds / 2)
                    enq_us, fin_us = cost["enq_us"], cost["fin_us"]
                    cmds = f"{cost['enq_cmds']:.1f}/{cost['fin_cmds']:.1f}"
                    setup(server.url, w, a)
                    ld = load(server.url, opts.seconds, a, opts.procs)
                    setup(server.url, w, a)
                    lat = asyncio.run(latency(server.url, opts.seconds, opts.latency_callers))
                    p50 = 1000 * statistics.median(lat)
                    p99 = 1000 * lat[int(0.99 * (len(lat) - 1))]
                    print(f"{w:>7} {a:>6} | {enq_us:>13.1f} {fin_us:>13.1f} {2e6 / (enq_us + fin_us):>11,.0f} "
                          f"{cmds:>9} | "
                          f"{ld['dec_per_s']:>9,.0f} {ld['us_per_dec']:>11.1f} {1e6 / ld['us_per_dec']:>16,.0f} "
                          f"{ld['cpu_us_per_dec']:>11.1f} | "
                          f"{p50:>6.2f} {p99:>6.2f}", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
