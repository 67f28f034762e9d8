"""Per-call cost of the worker's loop thread, in figures that do not depend on the machine's load.

The calls/s limit of a worker is its asyncio loop thread (pjsip's SIP work, the IVR, routing, Redis
client, CDRs, logs). On a machine shared with other jobs, CPU% windows and calls/s ladders are noise;
these are not:

- **loop CPU ms/call**: the loop thread's utime+stime (``/proc/<pid>/task/<pid>/stat``: the worker's
  main thread runs the reactor) from just before the first call to the last CDR, over the calls;
- **Redis commands/call**: ``INFO commandstats`` deltas of the worker's (embedded) redis-server;
- **log lines/call**: lines the worker wrote meanwhile;
- **answer p50/p99 ms**: the callers' INVITE -> 200 OK times (sipp's rtt trace; a latency, not a cost);
- **Python calls/call** (``--count-calls``): function calls on the loop thread (``sys.setprofile``
  counter injected through ``sitecustomize``; it slows the loop several times, so it is a separate run);
- **who sends which command** (``--monitor``): Redis ``MONITOR`` during the run, tallied per call by
  command and key with the key's variable parts folded (``XADD cc:cdr:stream``, ``HSET cc:rt:w:*:open``;
  ``lua`` marks what scripts ran); MONITOR slows Redis, so it is a separate run too.

Each tree (``--tree DIR``: a checkout of the package, e.g. ``git worktree add /tmp/g-base <commit>``
with ``sounds/`` beside it; ``.`` is this one) runs the IVR -> queue -> agent scenario of
``sip_bench.py`` (welcome, language, CRM dip, menu, queue, agent answers after 100 ms, talks 1 s) at
``--rate`` calls/s for ``--seconds``; trees alternate ``--repeat`` times in one run, then ratios print.

Run: .venv/bin/python bench/loop_cost.py --tree /tmp/g-base --tree . --rate 30 --seconds 30 --repeat 3
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sip_bench  # the scenario, worker and sipp helpers (puts tests/ and the repo on sys.path)
from worker_proc import WorkerProc, ports

from callcenter.redis_server import EmbeddedRedis
from callcenter.redisconn import connect_sync

COUNTER = '''
import os, sys, threading, time
_n = [0]
def _prof(frame, event, arg):
    if event == "call" or event == "c_call":
        _n[0] += 1
sys.setprofile(_prof)
def _dump(path=os.environ["LOOP_COST_CALLS"]):
    while True:
        time.sleep(0.2)
        with open(path + ".tmp", "w") as f:
            f.write(str(_n[0]))
        os.replace(path + ".tmp", path)
threading.Thread(target=_dump, daemon=True).start()
'''


def thread_cpu(pid: int, tid: int) -> float:
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / sip_bench.CLK_TCK


def commandstats(url: str) -> dict[str, int]:
    r = connect_sync(url, ride_out_restarts=False)
    try:
        info = r.info("commandstats")
    finally:
        r.close()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


def monitor_tally(path: Path) -> collections.Counter[str]:
    """``redis-cli monitor`` lines as "COMMAND key" counts (lua-run ones prefixed "lua "), the key's ids
    folded to ``*`` so one call's keys and another's count together."""
    tally: collections.Counter[str] = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        head, sep, rest = line.partition("] ")
        if not sep:
            continue
        try:
            words = shlex.split(rest)
        except ValueError:
            continue
        if not words:
            continue
        cmd = words[0].upper()
        key = words[1] if len(words) > 1 and cmd not in ("FCALL", "FCALL_RO", "EVALSHA") else ""
        if cmd in ("FCALL", "FCALL_RO") and len(words) > 1:
            key = words[1]            # the function's name
        key = re.sub(r"[0-9a-f]{32}|\d+", "*", key)
        tally[("lua " if " lua]" in head + "]" else "") + f"{cmd} {key}".strip()] += 1
    return tally


@dataclass
class Run:
    tree: str
    calls: int
    answered: int
    loop_ms: float
    proc_ms: float
    redis: dict[str, int]
    log_lines: int
    py_calls: int | None
    answer_ms: list[float]
    monitor: collections.Counter[str]   # INVITE -> 200 OK of every call (sipp's rtt trace)

    def per_call(self) -> dict[str, float]:
        n = max(1, self.calls)
        out = {"loop CPU ms/call": self.loop_ms / n, "worker CPU ms/call": self.proc_ms / n,
               "redis cmds/call": sum(self.redis.values()) / n, "log lines/call": self.log_lines / n}
        if self.py_calls is not None:
            out["py calls/call"] = self.py_calls / n
        for q in (50, 99):
            out[f"answer p{q} ms"] = sip_bench.pct(self.answer_ms, q) or 0.0
        return out


def run_tree(tree: Path, tmp: Path, redis: EmbeddedRedis, rate: float, seconds: float, agents: int,
             count_calls: bool, idx: int, monitor: bool = False) -> Run:
    sip_bench.flush(redis.url)
    wdir = tmp / f"run{idx}"
    wdir.mkdir()
    base = ports.block(3)     # SIP, HTTP, agents' phones; RTP is sip_bench's 48000-64000 (no test block)
    w = WorkerProc(wdir, redis.url, base, base + 1, base + 2, f"loopcost{idx}", rtp_port=48000)
    ids = sip_bench.write_rules(wdir / "rules.yaml", w.agents_port, agents)
    sip_bench.write_config(w, "bench_agent", wdir / "rules.yaml")
    path = [str(tree.resolve())]
    calls_file = wdir / "pycalls"
    if count_calls:
        site = wdir / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(COUNTER)
        path.insert(0, str(site))
        w.env["LOOP_COST_CALLS"] = str(calls_file)
    w.env["PYTHONPATH"] = os.pathsep.join(path)
    try:
        w.start(timeout=60)
        sip_bench.start_cdr_writer(w)
        w.login(*ids)
        pid = w.proc.pid  # type: ignore[union-attr]
        time.sleep(1.0)
        lines0 = len(w.log.read_bytes().splitlines())
        stats0 = commandstats(redis.url)
        loop0, proc0 = thread_cpu(pid, pid), sum(sip_bench.cpu_seconds(p) or 0.0 for p in sip_bench.worker_pids(w))
        py0 = int(calls_file.read_text()) if count_calls else 0
        mon_file = wdir / "monitor.txt"
        where = ["-s", str(redis.socket)] if redis.url.startswith("unix:") else ["-u", redis.url]
        mon = (subprocess.Popen(["redis-cli", *where, "monitor"], stdout=mon_file.open("wb"),
                                stderr=subprocess.DEVNULL) if monitor else None)
        start = time.time()
        run, phones = sip_bench.cps_callers(w.target, w.agents_port, rate, seconds)
        try:
            while run.proc.poll() is None:     # type: ignore[union-attr]
                time.sleep(0.5)
        finally:
            run.stop()
            phones.stop()
        ok, failed = sip_bench.sipp_counts(run)
        rows, answered = sip_bench.cps_answered(w, start, ok + failed)
        answer_ms = sip_bench.sipp_rtd_ms(run)
        time.sleep(1.0)   # the last CDR rows were read: their Redis work is done
        loop1, proc1 = thread_cpu(pid, pid), sum(sip_bench.cpu_seconds(p) or 0.0 for p in sip_bench.worker_pids(w))
        stats1 = commandstats(redis.url)
        lines1 = len(w.log.read_bytes().splitlines())
        py1 = int(calls_file.read_text()) if count_calls else 0
        if mon is not None:
            mon.terminate()
            mon.wait(timeout=10)
        sip_bench.cleanup(run, phones)
    finally:
        w.stop(timeout=30)
        sip_bench.stop_cdr_writer(w)
    redis_delta = {k: v - stats0.get(k, 0) for k, v in stats1.items() if v - stats0.get(k, 0) > 0}
    redis_delta.pop("info", None)
    return Run(str(tree), ok + failed, answered, 1000 * (loop1 - loop0), 1000 * (proc1 - proc0), redis_delta,
               lines1 - lines0, py1 - py0 if count_calls else None, answer_ms,
               monitor_tally(mon_file) if monitor else collections.Counter())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", required=True, help="a checkout whose callcenter/ the worker runs")
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--agents", type=int, default=400)
    ap.add_argument("--cdr-writer", choices=["worker", "process"], default="worker",
                    help="the worker's own CDR writer (on its loop) or a `callcenter cdr-writer` process (counted in "
                         "worker CPU, not in loop CPU)")
    ap.add_argument("--count-calls", action="store_true", help="count Python calls on the loop thread (slow)")
    ap.add_argument("--redis-detail", action="store_true", help="print the Redis commands per call by name")
    ap.add_argument("--monitor", action="store_true",
                    help="Redis MONITOR during each run: commands per call by command and key (slows Redis)")
    args = ap.parse_args()
    sip_bench.CDR_WRITER = args.cdr_writer
    sip_bench.raise_nofile()
    print(f"machine: busy {sip_bench.machine_busy():.2f} cores before the run", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="loop-cost-"))
    redis = EmbeddedRedis(tmp / "redis").start()
    runs: list[Run] = []
    try:
        for rep in range(args.repeat):
            for i, tree in enumerate(args.tree):
                r = run_tree(Path(tree), tmp, redis, args.rate, args.seconds, args.agents, args.count_calls,
                             rep * len(args.tree) + i, args.monitor)
                runs.append(r)
                figures = "  ".join(f"{k} {v:.3f}" for k, v in r.per_call().items())
                print(f"{r.tree}: {r.calls} calls, {r.answered} answered by an agent; {figures}", flush=True)
                if args.redis_detail:
                    print("   ", {k: round(v / max(1, r.calls), 2) for k, v in sorted(r.redis.items())}, flush=True)
                for what, n in sorted(r.monitor.items(), key=lambda kv: -kv[1]):
                    if n >= r.calls / 20:
                        print(f"    {n / max(1, r.calls):6.2f}  {what}", flush=True)
    finally:
        redis.stop()
    print()
    base = runs[0].tree
    for tree in args.tree:
        mine = [r.per_call() for r in runs if r.tree == str(tree)]
        med = {k: statistics.median(m[k] for m in mine) for k in mine[0]}
        print(f"{tree} (median of {len(mine)}): " + "  ".join(f"{k} {v:.3f}" for k, v in med.items()))
    if len(args.tree) > 1:
        for tree in args.tree[1:]:
            ratios = [r2.per_call()["loop CPU ms/call"] / max(1e-9, r1.per_call()["loop CPU ms/call"])
                      for r1, r2 in zip([r for r in runs if r.tree == base], [r for r in runs if r.tree == str(tree)],
                                        strict=True)]
            print(f"loop CPU per call {tree} / {args.tree[0]}: " + ", ".join(f"{x:.2f}" for x in ratios)
                  + f" (median {statistics.median(ratios):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
