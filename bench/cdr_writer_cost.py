"""CPU of the CDR writer (``callcenter cdr-writer``) per call and per stream entry, without SIP (issue 11).

At 150 calls/s the writer process beside a worker took 14-27% of a core (RESULTS "Against Asterisk", run E):
~6 stream entries a call moved from ``cc:cdr:stream`` into the store. This measures that work alone, as
process CPU time (``time.process_time`` of the writer's process: its loop and its store thread), which does
not depend much on what else runs on the box.

The entries are a call of ``sip_bench.py``'s IVR -> queue -> agent scenario as the worker writes them (read
from a real run's ``XADD``s with ``redis-cli monitor``): written through the real :class:`CdrBuffer` from the
real records, six entries a call at the offsets they had in that run:

    0.00 s  call   (the answered snapshot)
    0.57 s  event  ENTERQUEUE
    0.57 s  event  OFFER
    0.68 s  event  CONNECT
    1.68 s  many   [event COMPLETEAGENT, leg agent_offer]
    1.68 s  many   [call (final snapshot), leg inbound]

Two ways to give them to the writer, both against an embedded redis-server and a fresh store per run:

- **paced** (what a worker's writer sees): the entries are appended at ``--rate`` calls/s for ``--seconds``
  while the writer runs its real loop (``CdrWriter.run``: its reads as they come, its rollup refresh); the
  rounds (non-empty batches) it took are printed too, since the per-round work is most of it when entries
  trickle in;
- **backlog**: ``--calls`` calls' entries are in the stream before the writer starts; it drains them in
  batches of 500 (a writer catching up after a store outage).

``--prefill N`` (SQLite): the store already holds N calls in the current 15-minute rollup bucket, as it
does minutes into a busy quarter hour (at 150 calls/s: 45,000 after 5 minutes), so the writer's rollup
refresh, which re-sums that bucket, costs what it does then.

Each tree (``--tree DIR``: a checkout of the package, e.g. ``git worktree add /tmp/f-base <commit>``; ``.``
is this one) runs the writer as a child process importing that tree's ``callcenter``; trees alternate
``--repeat`` times, then new/base ratios print (the last tree over the first). SQLite always; PostgreSQL 15
too when it is installed (``tests/pg.py``; the writer's CPU only, not the server's) unless ``--no-pg``.

Run: .venv/bin/python bench/cdr_writer_cost.py --tree /tmp/f-base --tree .     # 150 calls/s x 6 s, 2 repeats: ~1.5 min
     .venv/bin/python bench/cdr_writer_cost.py --tree /tmp/f-base --tree . --modes paced --no-pg --prefill 45000 \
         --seconds 20 --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from callcenter.cdr.buffer import KINDS, CdrBuffer  # noqa: E402
from callcenter.cdr.record import CallRecord, LegRecord, QueueEvent, Record, new_id, version_now  # noqa: E402
from callcenter.cdr.writer import open_store  # noqa: E402
from callcenter.redis_server import EmbeddedRedis  # noqa: E402
from callcenter.redisconn import connect, connect_sync  # noqa: E402

ENTRIES_PER_CALL = 6

# The writer, in a child process that imports one tree's package (PYTHONPATH). It prints "ready" once its
# store is open and its group made, and writes what it did to <flag file>.json. argv: redis url, store url, mode, flag file.
CHILD = r'''
import asyncio, json, os, sys, time
from callcenter.cdr.writer import CdrWriter, open_store
from callcenter.redisconn import connect

async def main(url, store_url, mode, flag):
    store = open_store(store_url)
    r = connect(url, ride_out_restarts=False)
    w = CdrWriter(r, store, consumer="bench")
    await w.ensure_group()
    rounds = [0]
    drain = w.drain_once
    async def counted(block=None):
        n = await drain(block)
        rounds[0] += bool(n)
        return n
    w.drain_once = counted
    print("ready", flush=True)
    t0, c0 = time.monotonic(), time.process_time()
    if mode == "backlog":
        while await w.drain_once():
            pass
    else:
        stop = asyncio.Event()
        async def watch():
            while not (os.path.exists(flag) and await r.xlen(w.stream) == 0):
                await asyncio.sleep(0.05)
            stop.set()
        await asyncio.gather(w.run(stop), watch())
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    counts = store.counts()
    store.close()
    await r.aclose()
    with open(flag + ".json", "w") as f:
        json.dump({"cpu": cpu, "wall": wall, "rounds": rounds[0], "records": w.written, **counts}, f)

asyncio.run(main(*sys.argv[1:]))
'''


def call_entries(i: int, start: float) -> list[tuple[float, tuple[Record, ...]]]:
    """One call's entries as (time, records of the entry), like the worker writes them."""
    cid, agent, caller = new_id(), str(3000 + i % 400), f"09{i % 5000:08d}"
    answered = CallRecord(cid, "inbound", caller, "bench", start, answer=start + 0.001, worker_id="bench")
    enq, conn, end = start + 0.57, start + 0.68, start + 1.68
    final = CallRecord(
        cid, "inbound", caller, "bench", start, answer=start + 0.001, end=end,
        ivr_path="bench_agent.welcome>bench_agent.choose_language>bench_agent.crm>bench_agent.menu>bench_agent.queue",
        ivr_digits="bench_agent.choose_language=1,bench_agent.menu=1", language="vi", queue="bench", enqueue=enq,
        wait_seconds=0.113, agent_id=agent, agent_answer=conn, talk_seconds=1.0, hold_seconds=0.0,
        hangup_side="agent", hangup_cause="200 Normal call clearing", outcome="answered", worker_id="bench")
    offer_leg = LegRecord(new_id(), cid, "agent_offer", f"sip:{agent}@127.0.0.1:8387", agent, enq, conn, end,
                          None, "answered")
    inbound_leg = LegRecord(cid, cid, "inbound", caller, None, start, start + 0.001, end, 200, "answered")
    return [
        (start, (answered,)),
        (enq, (QueueEvent.make("ENTERQUEUE", call_id=cid, queue="bench", ts=enq, priority=0),)),
        (enq, (QueueEvent.make("OFFER", call_id=cid, queue="bench", agent_id=agent, ts=enq),)),
        (conn, (QueueEvent.make("CONNECT", call_id=cid, queue="bench", agent_id=agent, ts=conn, holdtime=0.113),)),
        (end, (QueueEvent.make("COMPLETEAGENT", call_id=cid, queue="bench", agent_id=agent, ts=end, holdtime=0.113,
                               talktime=1.0, onhold=0.0, holds=0), offer_leg)),
        (end, (final, inbound_leg)),
    ]


async def feed(url: str, calls: int, rate: float | None) -> None:
    """Append ``calls`` calls' entries through a CdrBuffer: all at once (rate None) or paced as they happen."""
    r = connect(url, ride_out_restarts=False)
    buf = CdrBuffer(r)
    t0 = time.time()
    due: list[tuple[float, int, tuple[Record, ...]]] = []
    for i in range(calls):
        for j, (ts, recs) in enumerate(call_entries(i, t0 + (i / rate if rate else 0.0))):
            heapq.heappush(due, (ts, i * ENTRIES_PER_CALL + j, recs))
    try:
        while due:
            if rate:
                wait = due[0][0] - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            now = time.time()
            batch = []
            while due and (not rate or due[0][0] <= now):
                batch.append(buf.write(*heapq.heappop(due)[2]))
            await asyncio.gather(*batch)
    finally:
        await r.aclose()


def prefilled(path: Path, calls: int) -> Path:
    """A SQLite store with ``calls`` calls (their legs and events) started in the current 15-minute bucket,
    its rollups refreshed."""
    store = open_store(f"sqlite:///{path}")
    now = time.time()
    first = now // 900 * 900
    batch: list[tuple[str, dict[str, object]]] = []
    for i in range(calls):
        for _, recs in call_entries(-1 - i, first + (now - first) * i / calls):
            for rec in recs:
                payload = rec.to_dict()
                payload["version"] = payload.get("version") or version_now()
                batch.append((KINDS[type(rec)], payload))
        if len(batch) >= 6000 or i == calls - 1:
            store.apply(batch)
            batch.clear()
    store.refresh_rollups()
    store.close()
    return path


@dataclass
class Run:
    tree: str
    store: str
    mode: str
    calls: int
    cpu: float
    wall: float
    rounds: int

    @property
    def ms_call(self) -> float:
        return self.cpu / self.calls * 1000

    @property
    def us_entry(self) -> float:
        return self.cpu / (self.calls * ENTRIES_PER_CALL) * 1e6


def one_run(tree: Path, redis: EmbeddedRedis, store_url: str, mode: str, calls: int, rate: float,
            prefill: int, tmp: Path) -> Run:
    client = connect_sync(redis.url, ride_out_restarts=False)
    client.flushall()
    client.close()
    flag = Path(tempfile.mkdtemp(prefix="flag-", dir=tmp)) / "done"
    if mode == "backlog":
        asyncio.run(feed(redis.url, calls, None))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, redis.url, store_url, mode, str(flag)], cwd=tree, env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    try:
        for line in child.stdout:   # the writer's log lines, then "ready"
            if line.strip() == "ready":
                break
        else:
            raise SystemExit(f"the writer of {tree} did not start")
        if mode == "paced":
            asyncio.run(feed(redis.url, calls, rate))
            flag.touch()
        child.stdout.read()
    finally:
        child.wait(timeout=120)
    out = json.loads(Path(f"{flag}.json").read_text())
    if (out["cdr_calls"], out["cdr_events"], out["cdr_legs"]) != ((calls + prefill), (calls + prefill) * 4,
                                                                  (calls + prefill) * 2):
        raise SystemExit(f"{tree}: the store has {out}, expected {calls} calls")
    return Run(str(tree), store_url.split(":", 1)[0], mode, calls, out["cpu"], out["wall"], out["rounds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", help="a checkout to run the writer of (repeatable; default .)")
    ap.add_argument("--rate", type=float, default=150.0, help="paced: calls/s appended (default 150)")
    ap.add_argument("--seconds", type=float, default=6.0, help="paced: seconds of calls (default 6)")
    ap.add_argument("--calls", type=int, default=1500, help="backlog: calls in the stream (default 1500)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--modes", default="paced,backlog")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--prefill", type=int, default=0,
                    help="SQLite: calls already in the store's current 15-minute bucket (default 0)")
    args = ap.parse_args()
    trees = [Path(t).resolve() for t in (args.tree or ["."])]
    tmp = Path(tempfile.mkdtemp(prefix="cdr-cost-"))
    redis = EmbeddedRedis(tmp / "redis").start()
    pg = None
    if not args.no_pg and not args.prefill:
        from pg import PgServer, pg_missing_reason
        reason = pg_missing_reason()
        if reason:
            print(f"PostgreSQL skipped: {reason}")
        else:
            pg = PgServer().start()
    template = prefilled(tmp / "prefill.db", args.prefill) if args.prefill else None
    runs: list[Run] = []
    try:
        for rep in range(args.repeat):
            for mode in args.modes.split(","):
                calls = int(args.rate * args.seconds) if mode == "paced" else args.calls
                for tree in trees:
                    db = tmp / f"{rep}-{mode}-{trees.index(tree)}.db"
                    if template is not None:
                        shutil.copy(template, db)
                    stores = [f"sqlite:///{db}"]
                    if pg is not None:
                        stores.append(pg.dsn)
                    for store in stores:
                        if pg is not None and store == pg.dsn:
                            pg.reset()
                        run = one_run(tree, redis, store, mode, calls, args.rate,
                                      args.prefill if store.startswith("sqlite") else 0, tmp)
                        runs.append(run)
                        if store.startswith("sqlite"):
                            for f in db.parent.glob(f"{db.name}*"):
                                f.unlink()
                        print(f"{run.tree:>24} {run.store:>10} {run.mode:>7}: {run.calls} calls, "
                              f"{run.ms_call:.3f} ms CPU/call, {run.us_entry:.0f} us/entry, "
                              f"{run.rounds / run.calls:.2f} rounds/call, wall {run.wall:.1f} s", flush=True)
    finally:
        if pg is not None:
            pg.destroy()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nmedian writer CPU per call (ms) and per entry (us)")
    keys = sorted({(r.store, r.mode) for r in runs})
    for store, mode in keys:
        med = {t: statistics.median(r.ms_call for r in runs if (r.tree, r.store, r.mode) == (str(t), store, mode))
               for t in trees}
        rounds = {t: statistics.median(r.rounds / r.calls for r in runs
                                       if (r.tree, r.store, r.mode) == (str(t), store, mode)) for t in trees}
        line = "  ".join(f"{t.name or t}: {m:.3f} ms ({m / ENTRIES_PER_CALL * 1000:.0f} us/entry, "
                         f"{rounds[t]:.2f} rounds/call)" for t, m in med.items())
        ratio = f"  new/base {med[trees[-1]] / med[trees[0]]:.2f}" if len(trees) > 1 else ""
        print(f"{store:>10} {mode:>7}: {line}{ratio}")


if __name__ == "__main__":
    main()
