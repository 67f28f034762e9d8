"""What a durable write costs: the routing writes that must survive a Redis failover (a caller's place, an
agent's state change) and a plain SET, each with and without ``WAIT 1 <ms>`` on a real master + replica
(+ 3 sentinels, tests/sentinel_helpers.py) on loopback.

    .venv/bin/python bench/durable_bench.py [--ops 2000] [--concurrency 1,32] [--port 10500] [--kinds append]

For each write and concurrency (tasks issuing writes back to back on one asyncio client, as a worker's calls
do), the client-observed latency (median and p99, microseconds) and the throughput, without and with the WAIT
(the URL's ``wait_replicas=1&wait_ms=500``: :func:`callcenter.redisconn.durable`), and their ratio; the
client's CPU per write without the WAIT (microseconds, this process: the worker's loop pays it) and its ratio.
"enqueue" is Router.enqueue of a caller (then its abandon, not timed); "agent" a pause then a ready of
an agent (two durable writes, timed as one op); "set" one SET; "append" one XADD of a CDR-sized record through
the client's group commit (with the WAIT: one per batch of the appends that travel together, as the CDR
buffer's do).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from sentinel_helpers import SentinelSite  # noqa: E402

from callcenter import logs  # noqa: E402
from callcenter.redisconn import connect, durable  # noqa: E402
from callcenter.redisurl import Durability  # noqa: E402
from callcenter.routing import rules as R  # noqa: E402
from callcenter.routing.router import QueuedCall, Router  # noqa: E402

AGENTS = 64
# about a call snapshot's size in the CDR stream
RECORD = {"t": "call", "d": '{"call_id":"' + "c" * 32 + '","direction":"inbound","caller":"0901234567",' + '"x":1,' * 60 + '"v":1}'}


def rules_yaml() -> str:
    agents = "\n".join(f'  "a{i}": {{uri: "sip:a{i}@127.0.0.1:5070", skills: {{sales: 5}}, queues: {{sales: 1}}}}'
                       for i in range(AGENTS))
    return f"queues:\n  sales: {{skills: {{nothing: 9}}, max_length: 100000}}\nagents:\n{agents}\n"


async def measure(url: str, kind: str, ops: int, concurrency: int) -> tuple[list[float], float, float]:
    client = connect(url)
    rt = Router(client, f"bench-{kind}-{concurrency}-{'wait' if 'wait_replicas' in url else 'plain'}")
    await rt.apply_rules(R.loads(rules_yaml()))
    for i in range(AGENTS):
        await rt.agent_login(f"a{i}", ready=True)
    await rt.heartbeat()
    lat: list[float] = []
    counter = iter(range(ops))

    async def one(i: int, worker: int) -> None:
        if kind == "set":
            await durable(client, "SET", f"bench:{worker}", str(i))
        elif kind == "append":
            await client.xadd("bench:cdr", RECORD)
        elif kind == "enqueue":
            await rt.enqueue(QueuedCall(f"c{rt.worker_id}-{i}", "sales", {"nothing": 9}, 0, "0901000000", {}))
        else:
            agent = f"a{worker % AGENTS}"
            await rt.agent_pause(agent, "break")
            await rt.agent_ready(agent)

    async def loop(worker: int, op: Callable[[int, int], Awaitable[None]]) -> None:
        for i in counter:
            t = time.perf_counter()
            await op(i, worker)
            lat.append((time.perf_counter() - t) * 1e6)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(loop(w, one) for w in range(concurrency)))
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    if kind == "enqueue":
        for i in range(ops):
            await rt.abandon(f"c{rt.worker_id}-{i}")
    await client.aclose()
    return lat, ops / took, cpu / ops * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--port", type=int, default=10500, help="first of 5 ports: master, replica, 3 sentinels")
    ap.add_argument("--wait-ms", type=int, default=500)
    ap.add_argument("--kinds", default="set,enqueue,agent,append", help="which writes (default all)")
    args = ap.parse_args()
    logs.configure("warning")
    site = SentinelSite(Path(tempfile.mkdtemp(prefix="durable-bench-")), args.port).start()
    try:
        plain, waiting = site.url(), site.url(Durability(1, args.wait_ms))
        print(f"{'write':8} {'conc':>4} | {'p50 us':>8} {'p99 us':>8} {'ops/s':>8} | "
              f"{'WAIT p50':>8} {'p99':>8} {'ops/s':>8} | {'p50 x':>6} {'ops/s x':>7} | {'cpu us':>6} {'x':>5}")
        for kind in args.kinds.split(","):
            for conc in (int(c) for c in args.concurrency.split(",")):
                base, base_rate, base_cpu = asyncio.run(measure(plain, kind, args.ops, conc))
                dur, dur_rate, dur_cpu = asyncio.run(measure(waiting, kind, args.ops, conc))
                b50, d50 = statistics.median(base), statistics.median(dur)
                b99, d99 = (statistics.quantiles(x, n=100)[98] for x in (base, dur))
                print(f"{kind:8} {conc:>4} | {b50:8.0f} {b99:8.0f} {base_rate:8.0f} | {d50:8.0f} {d99:8.0f} "
                      f"{dur_rate:8.0f} | {d50 / b50:6.2f} {base_rate / dur_rate:7.2f} | {base_cpu:6.0f} "
                      f"{dur_cpu / base_cpu:5.2f}")
    finally:
        site.stop()


if __name__ == "__main__":
    main()
