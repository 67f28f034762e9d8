"""The worker against Asterisk on this machine: the same sipp callers (bench/sip_bench.py's), one target at
a time, and the worker/Asterisk ratios (issue 11).

The Asterisk peer is built from Debian's asterisk source package (bench/asterisk/build.sh, cached under
~/.cache/callcenter/asterisk/<version>) and configured for the same two scenarios (bench/asterisk/*.conf,
bench/asterisk_peer.py):

1. ivr: concurrent IVR calls with media. Callers stream G.711 speech and press an RFC 2833 digit every ~6 s;
   the IVR plays the welcome prompt, then loops the menu prompt with barge-in and answers every digit.
   Calls ramp at 50/s and all stay up 40 s. A call fails if sipp saw an error or the target missed one of
   its digits (worker: the CDR's menu inputs; Asterisk: the dialplan counts them and logs a short call).
2. cps: calls/s through IVR -> queue -> agent, stepping up until a level fails (>= 0.5% failed); callers
   press 1, 1 through welcome and language prompts into a queue of 400 agents (longest idle first), one
   sipp UAS answers for all after 100 ms and hangs up after 1 s. A call fails if sipp saw an error or no
   agent answered it. The 50/s level is the CPU comparison.

Target CPU% = utime+stime from /proc of all the target's processes (worker + its redis-server; asterisk)
over the steady window (ivr: every caller up; cps: 3 s to the end of sending), 100% = one core. RSS = peak
of their sum; MB/call = (peak RSS - RSS before the level) / calls. sipp's CPU (same two cores) is shown.

Run: .venv/bin/python bench/vs_asterisk.py [--quick] [--only ivr|cps] [--targets asterisk,worker] [--callers pcap|stream]
     [--ivr-levels 500,800,1000] [--cps-levels 25,50,75,100,125,150,200,250] [--hold 40] [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sip_bench as sb  # sets up the import path of tests/ and the package
from asterisk_peer import AsteriskPeer, build, free_udp_port

from callcenter.redis_server import EmbeddedRedis

MAX_FAILED = sb.MAX_FAILED


@dataclass
class Target:
    """What a level needs of a target: where to call, whose CPU/RSS counts, and its own failure check."""

    name: str
    addr: str
    agents_port: int
    pids: list[int]
    # Failures only the target sees, among the calls sipp finished well (sipp's own failures count apart):
    ivr_missed: Callable[[float, int, int, int], int]   # (start, ok, offered, digits a call) -> digit missed
    cps_lost: Callable[[float, int, int], int]          # (start, ok, offered) -> no agent answered
    expect_digits: Callable[[int], None] = lambda _d: None
    settle: Callable[[], None] = lambda: None     # between levels: end calls a stopped sipp left up

    parts: dict[str, list[int]] = field(default_factory=dict)   # shown apart: {"edge": kamailio's pids}

    idle_rss: float = 0.0      # before the first level: memory a level keeps is still its calls' cost

    def alive(self) -> bool:
        return all(sb.cpu_seconds(p) is not None for p in self.pids)

    def rss(self) -> float:
        return sum(sb.rss_mb(p) for p in self.pids)


@dataclass
class Row(sb.Level):
    target: str = ""
    base_rss: float = 0.0
    part_cpu: dict[str, float] = field(default_factory=dict)

    @property
    def mb_per_call(self) -> float | None:
        """Peak RSS over the idle target's, per call up (IVR levels: every call is up at once)."""
        return (self.rss - self.base_rss) / self.calls if self.calls and self.base_rss >= 0 else None


class TargetMeter(sb.CpuMeter):
    """sip_bench's CpuMeter with the peak RSS summed over the target's processes (the first `n`)."""

    def __init__(self, n: int, *pids: int) -> None:
        self.n = n
        super().__init__(*pids)

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, sum(sb.rss_mb(p) for p in self.pids[: self.n]))
        self._read()


# -- targets --------------------------------------------------------------------------------------

@contextmanager
def asterisk_target(tmp: Path, prefix: Path, scenario: str, agents: int) -> Iterator[Target]:
    port = free_udp_port(int(os.environ.get("ASTERISK_BASE_PORT", "7560")))
    peer = AsteriskPeer(prefix, tmp / f"asterisk-{scenario}", scenario, port, port + 1, agents=agents)
    seen = [0]

    def new_failures() -> int:
        # bench.log grows over the levels: count only this level's lines.
        total = peer.failed_calls()
        new, seen[0] = total - seen[0], total
        return new

    # The dialplan logs every failed call, also those sipp saw fail: only the excess is extra.
    def ivr_missed(_start: float, ok: int, offered: int, _digits: int) -> int:
        time.sleep(2)       # the last h extensions run after the last BYE
        return max(0, new_failures() - (offered - ok))

    def cps_lost(_start: float, ok: int, offered: int) -> int:
        time.sleep(2)
        return max(0, new_failures() - (offered - ok))

    def expect(digits: int) -> None:
        peer.cli(f"dialplan set global EXPECT {digits}")

    def settle() -> None:
        # A sipp stopped at the wall limit leaves its calls up here (until the 300 s RTP timeout): they
        # would load the next level.
        deadline = time.monotonic() + 30
        while not peer.cli("core show channels count").startswith("0 active channels"):
            peer.cli("channel request hangup all")
            if time.monotonic() > deadline:
                break
            time.sleep(1)

    try:
        peer.start()
        yield Target("asterisk", peer.target, peer.agents_port, [peer.proc.pid],  # type: ignore[union-attr]
                     ivr_missed, cps_lost, expect, settle)
    finally:
        peer.stop()


@contextmanager
def worker_target(tmp: Path, redis: EmbeddedRedis, flow: str, agents: int) -> Iterator[Target]:
    with sb.running_worker(tmp, redis, flow, agents) as w:
        def ivr_missed(start: float, ok: int, _offered: int, digits: int) -> int:
            return sb.ivr_missed(w, start, ok, digits)[1]

        def cps_lost(start: float, ok: int, offered: int) -> int:
            return max(0, ok - sb.cps_answered(w, start, offered)[1])

        yield Target("worker", w.target, w.agents_port,
                     [w.proc.pid, redis.proc.pid, *sb.worker_pids(w)[1:]],  # type: ignore[union-attr]
                     ivr_missed, cps_lost)


def group_pids(leader: int) -> list[int]:
    """Every process of a process group (Kamailio forks its workers into its own group)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[2]) == leader:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                pass
    return sorted(out)


@contextmanager
def edge_target(tmp: Path, redis: EmbeddedRedis, flow: str, agents: int) -> Iterator[Target]:
    """Two workers behind the Kamailio edge (deploy/kamailio/kamailio.cfg, round robin), sharing one Redis
    and one sipp UAS for the agents; callers dial the edge. The edge's limits are lifted for the one
    caller address (a load test is not an attack)."""
    from edge_proc import Edge  # tests/ helper; needs kamailio

    from callcenter import edge as edge_files

    sb.flush(redis.url)
    ws = []
    for i in (1, 2):
        d = tmp / f"{flow}-edge-w{i}"
        d.mkdir()
        ws.append(sb.new_worker(d, redis.url, worker_id=f"bench-{flow}-{i}"))
    agents_port = ws[0].agents_port
    ids = []
    for w in ws:
        ids = sb.write_rules(w.tmp / "rules.yaml", agents_port, agents)
        sb.write_config(w, flow, w.tmp / "rules.yaml")
    port = free_udp_port(ws[-1].sip_port + 5)
    limits = edge_files.Limits(pike_density=1_000_000, invite_rate=100_000, register_rate=100_000)
    edge = Edge(tmp / f"{flow}-edge", port, {}, [w.target for w in ws], limits=limits)
    try:
        for w in ws:
            w.start(timeout=40)
            sb.start_cdr_writer(w)
        if ids:
            ws[0].login(*ids)
        edge.start()
        kam = group_pids(edge.proc.pid)  # type: ignore[union-attr]

        def rows_of(start: float, expect: int) -> list:
            deadline = time.monotonic() + 15
            while True:
                rows = [r for w in ws for r in sb.cdr_rows(w, start - 1, time.time() + 1)]
                if len(rows) >= expect or time.monotonic() > deadline:
                    return rows
                time.sleep(0.5)

        def ivr_missed(start: float, ok: int, _offered: int, digits: int) -> int:
            rows = rows_of(start, ok)
            return max(0, ok - sum(1 for r in rows if r.ivr_digits.count("=1") >= digits))

        def cps_lost(start: float, ok: int, offered: int) -> int:
            rows = rows_of(start, offered)
            return max(0, ok - sum(1 for r in rows if r.outcome == "answered" and r.agent_id))

        yield Target("2w+edge", edge.address, agents_port,
                     [p for w in ws for p in sb.worker_pids(w)] + [redis.proc.pid] + kam,  # type: ignore[union-attr,operator]
                     ivr_missed, cps_lost, parts={"edge": kam})
    finally:
        edge.stop()
        for w in ws:
            w.stop(timeout=20)
            sb.stop_cdr_writer(w)


# -- levels ---------------------------------------------------------------------------------------

def ivr_level(t: Target, n: int, hold: float, ramp: float) -> Row:
    base = t.idle_rss
    start = time.time()
    run, digits, rate, total = sb.ivr_callers(t.addr, n, hold, ramp)
    t.expect_digits(digits)       # before the first caller hangs up (>= hold s from now)
    meter = TargetMeter(len(t.pids), *t.pids, run.proc.pid)  # type: ignore[union-attr]
    try:
        sb.run_sipp(run, meter, total + 60, (n / rate + 1, total - 1), None)  # type: ignore[arg-type]
    finally:
        run.stop()
    *tcpu, scpu = meter.percent()
    parts = split(t, tcpu)
    ok, failed = sb.sipp_counts(run)
    failed = n - ok        # a call sipp never finished (stopped at the wall limit) failed too
    missed = t.ivr_missed(start, ok, n, digits)
    rtd = sb.sipp_rtd_ms(run)
    note = f"{digits} DTMF/call" + (f"; {missed} calls with a digit missed" if missed else "")
    if failed or not ok:
        note += f"; sipp: {sb.first_error(run)}"
    sb.cleanup(run)
    return Row(str(n), ok + failed, failed + missed, sum(tcpu), scpu, meter.peak_rss, sb.pct(rtd, 50),
               sb.pct(rtd, 99), 0, 0, note + part_note(parts), target=t.name, base_rss=base, part_cpu=parts)


def split(t: Target, cpu: list[float]) -> dict[str, float]:
    """CPU% of the target's named parts (the edge), from the per-process figures in t.pids order."""
    return {name: sum(c for p, c in zip(t.pids, cpu, strict=True) if p in pids) for name, pids in t.parts.items()}


def part_note(parts: dict[str, float]) -> str:
    return "".join(f"; {name} {cpu:.0f}% CPU (in the total)" for name, cpu in parts.items())


def cps_level(t: Target, cps: float, seconds: float) -> Row:
    base = -1.0      # calls/s: no MB/call (calls come and go)
    start = time.time()
    run, phones = sb.cps_callers(t.addr, t.agents_port, cps, seconds)
    meter = TargetMeter(len(t.pids), *t.pids, run.proc.pid, phones.proc.pid)  # type: ignore[union-attr]
    try:
        sb.run_sipp(run, meter, seconds + 60, (3, seconds), None)  # type: ignore[arg-type]
        *tcpu, scpu, acpu = meter.percent()
        parts = split(t, tcpu)
    finally:
        run.stop()
        phones.stop()
    ok, failed = sb.sipp_counts(run)
    failed = int(cps * seconds) - ok     # a call sipp never finished failed too
    lost = t.cps_lost(start, ok, ok + failed)
    rtd = sb.sipp_rtd_ms(run)
    note = f"{ok - lost} answered by an agent"
    if failed or not ok:
        note += f"; sipp: {sb.first_error(run)}"
    sb.cleanup(run, phones)
    return Row(f"{cps:g}/s", ok + failed, failed + lost, sum(tcpu), scpu + acpu, meter.peak_rss, sb.pct(rtd, 50),
               sb.pct(rtd, 99), 0, 0, note + part_note(parts), target=t.name, base_rss=base, part_cpu=parts)


# -- report ---------------------------------------------------------------------------------------

def f0(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(f"{'target':>8} {'level':>6} {'calls':>6} {'failed':>6} {'fail%':>6} {'CPU%':>5} {'sipp%':>5} "
          f"{'RSS MB':>6} {'MB/call':>7} {'p50 ms':>6} {'p99 ms':>6}  note")
    for r in rows:
        mpc = r.mb_per_call
        print(f"{r.target:>8} {r.level:>6} {r.calls:>6} {r.failed:>6} {r.failed_pct:>6.2f} {r.worker_cpu:>5.0f} "
              f"{r.sipp_cpu:>5.0f} {r.rss:>6.0f} {'-' if mpc is None else f'{mpc:.3f}':>7} {f0(r.p50):>6} "
              f"{f0(r.p99):>6}  {r.note}")
    sys.stdout.flush()


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b <= 0 else f"{a / b:.2f}"


@dataclass
class Report:
    ivr: list[Row] = field(default_factory=list)
    cps: list[Row] = field(default_factory=list)

    def pick(self, rows: list[Row], target: str, level: str) -> Row | None:
        return next((r for r in rows if r.target == target and r.level == level), None)

    def best_cps(self, target: str) -> float:
        return max((float(r.level[:-2]) for r in self.cps if r.target == target and r.ok), default=0.0)

    def targets(self) -> list[str]:
        return [t for t in dict.fromkeys(r.target for r in self.ivr + self.cps) if t != "asterisk"]

    def print(self) -> None:
        if self.ivr:
            print_rows("concurrent IVR calls with media", self.ivr)
        if self.cps:
            print_rows("calls/s through IVR -> queue -> agent", self.cps)
        for name in self.targets():
            self.print_ratios(name)

    def print_ratios(self, name: str) -> None:
        print(f"\n{name} / Asterisk")
        print(f"{'load':>22} {'Asterisk':>28} {name:>28} {'CPU':>5} {'RSS':>5} {'MB/call':>7}")
        goals: list[str] = []
        for lvl in dict.fromkeys(r.level for r in self.ivr):
            a, w = self.pick(self.ivr, "asterisk", lvl), self.pick(self.ivr, name, lvl)
            self._line(f"{lvl} concurrent IVR", a, w)
            if lvl == "1000" and a and w:
                met = (w.ok and w.worker_cpu <= 0.6 * a.worker_cpu
                       and (w.mb_per_call or 0) <= (a.mb_per_call or 0))
                goals.append(f"1000 concurrent, clean, CPU <= 0.6x and MB/call <= Asterisk's: "
                             f"{'met' if met else 'NOT met'} (CPU {ratio(w.worker_cpu, a.worker_cpu)}x, "
                             f"MB/call {ratio(w.mb_per_call, a.mb_per_call)}x, {w.failed_pct:.2f}% failed)")
        for lvl in dict.fromkeys(r.level for r in self.cps):
            a, w = self.pick(self.cps, "asterisk", lvl), self.pick(self.cps, name, lvl)
            self._line(f"{lvl} IVR->queue->agent", a, w)
            if lvl == "50/s" and a and w:
                met = w.ok and w.worker_cpu <= a.worker_cpu
                goals.append(f"50 calls/s, clean, no more CPU than Asterisk: {'met' if met else 'NOT met'} "
                             f"(CPU {ratio(w.worker_cpu, a.worker_cpu)}x, {w.failed_pct:.2f}% failed)")
        if self.cps:
            ba, bw = self.best_cps("asterisk"), self.best_cps(name)
            print(f"{'highest clean calls/s':>22} {ba:>28g} {bw:>28g} {ratio(bw, ba):>5}")
            if ba and bw:
                goals.append(f"calls/s >= 2x Asterisk's highest clean rate: {'met' if bw >= 2 * ba else 'NOT met'} "
                             f"({bw:g}/s vs {ba:g}/s = {ratio(bw, ba)}x)")
        if goals:
            print(f"goals (issue 11), {name}:")
            for g in goals:
                print(f"  - {g}")

    @staticmethod
    def _line(load: str, a: Row | None, w: Row | None) -> None:
        def cell(r: Row | None) -> str:
            return "-" if r is None else f"{r.failed_pct:.1f}% failed {r.worker_cpu:.0f}% CPU {r.rss:.0f} MB"
        print(f"{load:>22} {cell(a):>28} {cell(w):>28} {ratio(w and w.worker_cpu, a and a.worker_cpu):>5} "
              f"{ratio(w and w.rss, a and a.rss):>5} {ratio(w and w.mb_per_call, a and a.mb_per_call):>7}")


# -- main -----------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small levels, a smoke run of a few minutes")
    ap.add_argument("--only", choices=["ivr", "cps"])
    ap.add_argument("--targets", default="asterisk,worker",
                    help="in this order, one at a time; 'edge' adds two workers behind the Kamailio edge")
    ap.add_argument("--ivr-levels", help="concurrent calls (default 500,800,1000)")
    ap.add_argument("--cps-levels", help="calls/s, stepped up until one fails (default 25,50,75,100,125,150,200,250)")
    ap.add_argument("--hold", type=float, help="seconds every caller of an IVR level is up together (default 40)")
    ap.add_argument("--ivr-rate", type=float, default=50.0, help="new IVR calls/s while a level ramps up")
    ap.add_argument("--seconds", type=float, help="seconds per calls/s level (default 30)")
    ap.add_argument("--agents", type=int, default=400)
    ap.add_argument("--keep-going", action="store_true", help="run a target's next calls/s level after a failed one")
    ap.add_argument("--keep", action="store_true", help="keep the targets' directories (logs, CDRs, configs)")
    ap.add_argument("--callers", choices=["pcap", "stream"], default="pcap",
                    help="how IVR callers send speech: g711a.pcap through a raw socket each (play_pcap_audio, "
                         "issue 11's scenario) or the same speech from sipp's media port (rtp_stream); see "
                         "sip_bench.ivr_callers")
    ap.add_argument("--cdr-writer", choices=["worker", "process"], default="worker",
                    help="the workers' CDR writer in their loop (cdr.writer: true) or a `callcenter cdr-writer` "
                         "process each (its CPU and memory counted in the worker target's)")
    args = ap.parse_args()
    ivr_levels = [int(x) for x in (args.ivr_levels or ("20,50" if args.quick else "500,800,1000")).split(",")]
    cps_levels = [float(x) for x in (args.cps_levels or ("10,20" if args.quick else "25,50,75,100,125,150,200,250")).split(",")]
    hold = args.hold or (6 if args.quick else 40)
    seconds = args.seconds or (10 if args.quick else 30)
    targets = args.targets.split(",")
    sb.KEEP = args.keep
    sb.CDR_WRITER = args.cdr_writer
    sb.CALLERS = args.callers
    sb.raise_nofile()
    prefix = build() if "asterisk" in targets else Path()
    print(f"machine: {os.cpu_count()} cores, busy {sb.machine_busy():.2f} cores before the run; load "
          f"{os.getloadavg()[0]:.2f}; Asterisk {prefix.name or '-'}")
    tmp = Path(tempfile.mkdtemp(prefix="vs-asterisk-"))
    redis = EmbeddedRedis(tmp / "redis").start()
    report = Report()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    def target(name: str, scenario: str, flow: str, agents: int):  # a context manager
        if name == "asterisk":
            return asterisk_target(tmp, prefix, scenario, agents)
        if name == "edge":
            return edge_target(tmp, redis, flow, agents)
        return worker_target(tmp, redis, flow, agents)

    try:
        if args.only in (None, "ivr"):
            for name in targets:
                with target(name, "ivr", "bench_ivr", 1) as t:
                    t.idle_rss = t.rss()
                    for n in ivr_levels:
                        report.ivr.append(ivr_level(t, n, hold, args.ivr_rate))
                        print_rows("concurrent IVR calls with media", report.ivr[-1:])
                        # Every level is shown for both targets (the table) unless the target died.
                        if not t.alive():
                            print(f"{name} exited", file=sys.stderr)
                            break
                        t.settle()
                        time.sleep(3)
        if args.only in (None, "cps"):
            for name in targets:
                with target(name, "queue", "bench_lang_queue", args.agents) as t:
                    for cps in cps_levels:
                        report.cps.append(cps_level(t, cps, seconds))
                        print_rows("calls/s through IVR -> queue -> agent", report.cps[-1:])
                        if not report.cps[-1].ok and not args.keep_going:
                            break
                        t.settle()
                        time.sleep(3)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        redis.stop()
    report.print()
    if args.keep:
        print(f"targets' directories kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
