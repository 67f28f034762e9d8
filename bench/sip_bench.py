"""Capacity of one softswitch worker process, driven by sipp over real SIP and RTP.

Two measurements, each against a fresh `callcenter worker` process (embedded redis-server, SQLite CDRs):

1. ivr: concurrent IVR calls with media. sipp callers play G.711 speech and send RFC 2833 digits while
   the worker loops prompts and answers each digit (bench/flows/bench_ivr.yaml). Concurrency rises level
   by level; a level passes with < 0.5% failed calls, where a call fails if sipp saw an error or the
   worker's CDR does not show every digit the caller pressed.
2. cps: sustained calls/s through the IVR-to-agent path (bench/flows/bench_agent.yaml: welcome,
   language, CRM dip that fails fast, menu, skill queue, agent). Callers press 1, 1; one sipp UAS
   answers for all agents after 100 ms and hangs up after 1 s; the caller must get the worker's BYE.
   A call fails if sipp saw an error or its CDR is not `answered` by an agent.

Worker CPU% is utime+stime from /proc over the steady part of a level (ivr: while every caller is up;
cps: from 3 s to the end of sending), 100% = one core, with `--cdr-writer process` plus its CDR writer's; RSS
is the worker's peak. sipp's CPU (callers + agent phones) is reported too because it shares the same cores.

Overload (--overload 1.5): every level offers 1.5x its calls (ivr) or calls/s (cps). Callers then accept
`503` with `Retry-After` as a clean refusal (telephony/admission.py); a level passes when under 0.5% of the
calls the worker *took* failed, and every other call was refused that way (any other answer is a failure).

Run: .venv/bin/python bench/sip_bench.py [--quick] [--only ivr|cps] [--ivr-levels 100,200] [--cps-levels 25,50]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
# SIP and HTTP ports away from the test suite's (other jobs may be running it now): tests/ports.py
# gives this process its own signalling range from WORKER_BASE_PORT; sipp's media ports come from its
# media pool (33000-47999), below the worker's RTP range (48000-64000).
os.environ.setdefault("WORKER_BASE_PORT", "7160")

import sipp  # noqa: E402 - tests/ helpers
from tones import read_pcap_rtp  # noqa: E402 - tests/ helpers
from worker_proc import METRICS_TOKEN, WorkerProc, flush, new_worker  # noqa: E402

from callcenter.cdr.writer import open_store  # noqa: E402
from callcenter.redis_server import EmbeddedRedis  # noqa: E402

FLOWS = REPO / "bench" / "flows"
MAX_FAILED = 0.005
POOL_QUERY = os.environ.get("BENCH_REDIS_QUERY", "")
SCRAPE = False   # --scrape
CALLERS = "pcap"  # --callers: how IVR callers send their speech (see ivr_callers)
OVERLOAD = 0.0   # --overload: offered load factor; callers take a 503 + Retry-After as a clean refusal
CAPACITY = ""    # --capacity: the worker's capacity section (YAML flow mapping body)
CDR_WRITER = "worker"   # --cdr-writer: "worker" (cdr.writer: true, in the worker's loop) or "process" (its own)
WRITERS: dict[str, subprocess.Popen[bytes]] = {}   # worker id -> its `callcenter cdr-writer` (--cdr-writer process)


def peak_up(rows: list) -> int:
    """Most calls up at once, from the CDRs' start/end times."""
    events = sorted([(r.start, 1) for r in rows] + [(r.end, -1) for r in rows])
    up = peak = 0
    for _, d in events:
        up += d
        peak = max(peak, up)
    return peak
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- process accounting --------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """utime+stime of the whole process (all threads); None once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime, stime


def rss_mb(pid: int) -> float:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def machine_busy() -> float:
    """Cores' worth of CPU used by everything on the machine over one second (other jobs share it)."""
    def snap() -> tuple[int, int]:
        parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(parts) - parts[3] - parts[4], sum(parts)
    b0, t0 = snap()
    time.sleep(1.0)
    b1, t1 = snap()
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def live_calls(w: WorkerProc) -> int | None:
    """Inbound calls up on the worker, from its Prometheus endpoint."""
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{w.http_port}/metrics",
                                     headers={"authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(req, timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith('callcenter_calls_in_progress{direction="inbound"}'):
            return int(float(line.split()[-1]))
    return None


class CpuMeter:
    """CPU% of processes over a window (the steady part of a level, when every call is up)."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.peak_rss = 0.0
        self.mark()
        self.result: list[float] | None = None

    def _read(self) -> None:
        now = time.monotonic()
        for i, p in enumerate(self.pids):
            cpu = cpu_seconds(p)
            if cpu is not None:     # an exited process keeps its last reading
                self.last[i], self.last_at[i] = cpu, now

    def mark(self) -> None:
        self.last = [0.0] * len(self.pids)
        self.last_at = [0.0] * len(self.pids)
        self._read()
        self.cpu0, self.start = list(self.last), time.monotonic()

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, rss_mb(self.pids[0]))
        self._read()

    def stop(self) -> None:
        if self.result is None:
            self._read()
            self.result = [100 * (c1 - c0) / max(1e-6, at - self.start)
                           for c0, c1, at in zip(self.cpu0, self.last, self.last_at, strict=True)]

    def percent(self) -> list[float]:
        self.stop()
        return self.result or []


# -- sipp output ----------------------------------------------------------------------------------

def sipp_counts(run: sipp.Sipp) -> tuple[int, int]:
    """(successful, failed) from the last line of sipp's -trace_stat CSV."""
    files = sorted(run.workdir.glob("*.csv"))
    stat = [f for f in files if not f.name.endswith("_rtt.csv")]
    if not stat:
        return 0, 0
    lines = [ln for ln in stat[0].read_text().splitlines() if ln.strip()]
    head = lines[0].split(";")
    # A sipp stopped at the wall limit writes a last line whose fields do not match the header: the
    # last well-formed line is a second old at most.
    last = next((ln.split(";") for ln in reversed(lines[1:]) if len(ln.split(";")) == len(head)), head)
    row = dict(zip(head, last, strict=False))
    return int(row.get("SuccessfulCall(C)", 0)), int(row.get("FailedCall(C)", 0))


def sipp_rtd_ms(run: sipp.Sipp) -> list[float]:
    """INVITE -> 200 OK times (ms) of every call, from sipp's -trace_rtt file."""
    out: list[float] = []
    for f in run.workdir.glob("*_rtt.csv"):
        for line in f.read_text().splitlines()[1:]:
            parts = line.split(";")
            with suppress(ValueError, IndexError):
                out.append(float(parts[1]))
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


STAT_ARGS = ["-trace_stat", "-stf", "stats.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "1"]


# -- the worker -----------------------------------------------------------------------------------

def write_config(w: WorkerProc, flow: str, rules: Path) -> None:
    # Every sipp caller comes from 127.0.0.1: one source may take the whole worker here.
    # RTP: the softswitch gives each local account 1/8 of sip.rtp_port_range (2 ports a call), so the
    # range must be 8x the calls of one account; 16000 leaves 1000 calls per account.
    w.config.write_text(f"""
worker: {{id: {w.worker_id}, data_dir: {w.tmp}, drain_seconds: 2}}
sip: {{bind: 127.0.0.1, port: {w.sip_port}, transports: [udp], rtp_port: 48000, rtp_port_range: 16000,
      max_calls: 1024, log_level: 1, max_calls_per_source: 1024}}
redis: {{url: "{w.redis_url}{POOL_QUERY}", prefix: "cc:"}}
http: {{bind: 127.0.0.1, port: {w.http_port}}}
paths: {{ivr_scripts: {FLOWS}, sounds: {REPO / 'sounds'}, routing_rules: {rules},
        campaigns: {REPO / 'campaigns'}}}
cdr: {{store: "{w.store_url}", writer: {str(CDR_WRITER == "worker").lower()}}}
routes: {{default: {flow}}}
{f"capacity: {{{CAPACITY}}}" if CAPACITY else ""}
""")


def write_rules(path: Path, agents_port: int, n_agents: int) -> list[str]:
    ids = [str(3000 + i) for i in range(n_agents)]
    lines = ["defaults: {ring_timeout: 4, miss_limit: 100, wrapup: 0, max_wait: 60}",
             "queues:", "  bench: {skills: {sales: 1}, strategy: longest_idle, max_length: 5000, wrapup: 0}",
             "agents:"]
    lines += [f'  "{a}": {{uri: "sip:{a}@127.0.0.1:{agents_port}", skills: {{sales: 5}}, queues: {{bench: 5}}}}'
              for a in ids]
    path.write_text("\n".join(lines) + "\n")
    return ids


def start_cdr_writer(w: WorkerProc) -> None:
    """With --cdr-writer process: the worker's CDR writer as its own process (`callcenter cdr-writer`, as
    systemd/callcenter-cdr-writer.service runs it), same code tree (w.env) and store; its CPU counts as the
    worker's (worker_pids)."""
    if CDR_WRITER != "process":
        return
    out = open(w.tmp / "cdr-writer.log", "ab")  # noqa: SIM115 - owned by the process
    WRITERS[w.worker_id] = subprocess.Popen(
        [sys.executable, "-m", "callcenter", "cdr-writer", "--redis", w.redis_url, "--store", w.store_url,
         "--consumer", f"{w.worker_id}-writer"], stdout=out, stderr=subprocess.STDOUT,
        env=dict(os.environ, **w.env), cwd=w.tmp)


def stop_cdr_writer(w: WorkerProc) -> None:
    proc = WRITERS.pop(w.worker_id, None)
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker_pids(w: WorkerProc) -> list[int]:
    """The worker's process and, with --cdr-writer process, its CDR writer's."""
    return [w.proc.pid] + ([WRITERS[w.worker_id].pid] if w.worker_id in WRITERS else [])  # type: ignore[union-attr]


@contextmanager
def running_worker(tmp: Path, redis: EmbeddedRedis, flow: str, n_agents: int) -> Iterator[WorkerProc]:
    flush(redis.url)
    wdir = tmp / flow
    wdir.mkdir()
    w = new_worker(wdir, redis.url, worker_id=f"bench-{flow}")
    ids = write_rules(wdir / "rules.yaml", w.agents_port, n_agents)
    write_config(w, flow, wdir / "rules.yaml")
    try:
        w.start(timeout=40)
        start_cdr_writer(w)
        if ids:
            w.login(*ids)
        yield w
    finally:
        w.stop(timeout=20)
        stop_cdr_writer(w)


def cdr_rows(w: WorkerProc, since: float, until: float) -> list:
    store = open_store(w.store_url)
    try:
        # every row of the window: the store's listing stops at 10,000 rows unless told otherwise
        return [c for c in store.calls(since=since, until=until, limit=None) if c.end]
    finally:
        store.close()


def wait_cdrs(w: WorkerProc, since: float, until: float, expect: int, timeout: float = 20) -> list:
    """The level's CDR rows, waiting until `expect` have landed or none has for `timeout` s: at the
    highest rates the CDR writer runs tens of seconds behind the calls (a late CDR is not a lost one)."""
    rows = cdr_rows(w, since, until)
    deadline = time.monotonic() + timeout
    while len(rows) < expect and time.monotonic() < deadline:
        time.sleep(0.5)
        more = cdr_rows(w, since, until)
        if len(more) > len(rows):
            deadline = time.monotonic() + timeout
        rows = more
    return rows


# -- levels ---------------------------------------------------------------------------------------

@dataclass
class Level:
    level: str
    calls: int
    failed: int
    worker_cpu: float
    sipp_cpu: float
    rss: float
    p50: float | None
    p99: float | None
    cdr: int
    peak: int = 0
    note: str = ""
    refused: int = 0    # --overload: calls refused with 503 + Retry-After (not failures)

    @property
    def failed_pct(self) -> float:
        """Of the calls the worker took."""
        return 100.0 * self.failed / max(1, self.calls - self.refused)

    @property
    def ok(self) -> bool:
        return self.calls > self.refused and self.failed / (self.calls - self.refused) < MAX_FAILED


def refusals(run: sipp.Sipp, w: WorkerProc, since: float) -> tuple[int, str]:
    """(calls refused with 503 + Retry-After, a note naming the signals that refused them)."""
    n = len(run.refused())
    if not n:
        return 0, ""
    signals = sorted({e.get("signal", "?") for e in w.logs() if e.get("event") == "overload: refusing new calls"
                      and e.get("timestamp", "") >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since))})
    return n, f"; {n} refused 503 (took {{}}), by {'+'.join(signals) or '?'}"


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def print_table(title: str, rows: list[Level]) -> None:
    print(f"\n{title}")
    print(f"{'level':>10} {'calls':>6} {'failed':>6} {'fail%':>6} {'wkr CPU%':>8} {'sipp CPU%':>9} "
          f"{'RSS MB':>7} {'p50 ms':>7} {'p99 ms':>7} {'CDRs':>6} {'peak up':>7}  note")
    for r in rows:
        print(f"{r.level:>10} {r.calls:>6} {r.failed:>6} {r.failed_pct:>6.2f} {r.worker_cpu:>8.0f} "
              f"{r.sipp_cpu:>9.0f} {r.rss:>7.0f} {fmt(r.p50):>7} {fmt(r.p99):>7} {r.cdr:>6} {r.peak:>7}  {r.note}")
    sys.stdout.flush()


def run_sipp(run: sipp.Sipp, meter: CpuMeter, wall_limit: float, window: tuple[float, float],
             w: WorkerProc) -> int:
    """Wait for sipp to finish; CPU is measured from window[0] to window[1] seconds after its start.
    With --scrape, /metrics is read every second (as a fast Prometheus would) and the peak of
    inbound calls up is returned; otherwise 0."""
    t0 = time.monotonic()
    peak = 0
    next_poll = 0.0
    deadline = t0 + wall_limit
    marked = False
    while run.proc.poll() is None:
        now = time.monotonic() - t0
        meter.sample()
        if SCRAPE and now >= next_poll:
            peak = max(peak, live_calls(w) or 0)
            next_poll = now + 1.0
        if not marked and now >= window[0]:
            meter.mark()
            marked = True
        if marked and now >= window[1]:
            meter.stop()
        if time.monotonic() > deadline:
            run.stop()
            break
        time.sleep(0.25)
    meter.stop()
    return peak


def speech_file() -> Path:
    """sipp's g711a.pcap speech as a raw a-law file (7 s), for callers that stream it with rtp_stream."""
    path = Path(tempfile.gettempdir()) / "callcenter-bench-speech.alaw"
    if not path.exists():                   # written whole, then renamed: two runs may start together
        part = path.with_suffix(f".{os.getpid()}")
        part.write_bytes(b"".join(payload for _, payload in read_pcap_rtp(sipp.PCAP_DIR / "g711a.pcap")))
        part.replace(path)
    return path


def ivr_callers(target: str, n: int, hold_s: float, ramp: float | None = None) -> tuple[sipp.Sipp, int, float, float]:
    """Start the n callers of an IVR level (also run against Asterisk by bench/vs_asterisk.py).
    Returns (sipp, digits each caller presses, new calls/s, seconds the first caller stays).
    Each caller speaks (sipp's g711a.pcap) and presses 1 every ~6 s. CALLERS "pcap" (issue 11's scenario):
    the capture replayed each cycle with play_pcap_audio and the key as an RFC 2833 pcap. play_pcap_audio
    holds a raw socket per playing caller, and the kernel walks all of them for every UDP packet delivered
    on the host, a cost charged to whoever sends (bench/raw_socket_cost.py: ~7 us a packet at 1000 raw
    sockets). CALLERS "stream": the same speech from sipp's media port by rtp_stream (ordinary UDP, 20 ms
    packets, looped), as callers arriving over a network would cost, and the key as a SIP INFO: an RFC 2833
    pcap cannot carry the stream's per-call SSRC, sequence and timestamp, and Asterisk's RFC 4733 reader
    then spins (83% CPU at 100 calls against 27% with INFO keys; RESULTS "Session 8")."""
    rate = ramp or max(10.0, n / 10)
    total = n / rate + hold_s                # every caller stays until the last has been up hold_s
    steps: list[tuple] = [("pause", 500)]
    if CALLERS == "stream":
        steps.append(("stream", str(speech_file())))
    digits = 0
    elapsed = 0.5
    while elapsed < total:
        if CALLERS == "stream":
            steps += [("pause", 4800), ("info", "1"), ("pause", 850)]
        else:
            steps += [("audio",), ("pause", 4800), ("dtmf", "1"), ("pause", 800)]
        digits += 1
        elapsed += 4.8 + 0.25 + 0.8
    steps.append(("hangup",))
    run = sipp.caller(target, steps, number="0901234567", service="bench", calls=n, rate=rate, limit=n,
                      timeout_s=int(total + 60), extra=[*STAT_ARGS, "-max_socket", str(n + 100)],
                      busy_ok=OVERLOAD > 0)
    return run, digits, rate, total


def ivr_missed(w: WorkerProc, start: float, ok: int, digits: int) -> tuple[list, int]:
    """(CDR rows, calls whose digits the worker missed): the menu logs one input per digit heard."""
    rows = wait_cdrs(w, start - 1, time.time() + 1, ok, timeout=15)
    heard = sum(1 for r in rows if r.ivr_digits.count("=1") >= digits)
    return rows, max(0, ok - heard)


def cps_callers(target: str, agents_port: int, cps: float, seconds: float) -> tuple[sipp.Sipp, sipp.Sipp]:
    """Start one calls/s level's agent phones (one sipp UAS on agents_port) and callers, who press 1, 1
    and wait for the far end's BYE (also run against Asterisk by bench/vs_asterisk.py). Returns (callers, phones)."""
    n = int(cps * seconds)
    steps: list[tuple] = [("pause", 300), ("dtmf", "1"), ("dtmf", "1"), ("wait_bye", 20000)]
    phones = sipp.agent(agents_port, "answer_bye", ring_ms=100, talk_ms=1000, calls=n * 2, timeout_s=int(seconds + 90))
    time.sleep(0.3)
    run = sipp.caller(target, steps, number="0907654321", service="bench", calls=n, rate=cps,
                      limit=int(cps * 20), timeout_s=int(seconds + 60), extra=[*STAT_ARGS], busy_ok=OVERLOAD > 0)
    return run, phones


def cps_answered(w: WorkerProc, start: float, expect: int) -> tuple[list, int]:
    """(CDR rows, calls answered by an agent) of a calls/s level."""
    rows = wait_cdrs(w, start - 1, time.time() + 1, expect, timeout=15)
    return rows, sum(1 for r in rows if r.outcome == "answered" and r.agent_id)


def ivr_level(w: WorkerProc, n: int, hold_s: float, ramp: float | None = None) -> Level:
    """n callers held concurrently for at least `hold_s`; each plays speech and presses a digit
    every ~6 s, which the worker's menu answers with its prompt again. `ramp`: new calls/s
    (default n/10, at least 10: up in ~10 s)."""
    start = time.time()
    run, digits, rate, total = ivr_callers(w.target, n, hold_s, ramp)
    meter = CpuMeter(w.proc.pid, run.proc.pid, *worker_pids(w)[1:])  # type: ignore[union-attr]
    try:
        peak = run_sipp(run, meter, total + 60, (n / rate + 1, total - 1), w)
    finally:
        run.stop()
    wcpu, scpu, *writer = meter.percent()
    wcpu += sum(writer)
    ok, failed = sipp_counts(run)
    refused, why = refusals(run, w, start)
    rows, missed = ivr_missed(w, start, ok - refused, digits)
    rtd = sipp_rtd_ms(run)
    note = f"{digits} DTMF/call; {missed} calls with a digit missed" if missed else f"{digits} DTMF/call"
    note += why.format(ok + failed - refused)
    if failed or not ok:
        note += f"; sipp: {first_error(run)}"
    cleanup(run)
    return Level(str(n), ok + failed, failed + missed, wcpu, scpu, meter.peak_rss, pct(rtd, 50), pct(rtd, 99),
                 len(rows), peak or peak_up(rows), note, refused)


def cps_level(w: WorkerProc, agents_port: int, cps: float, seconds: float) -> Level:
    start = time.time()
    run, phones = cps_callers(w.target, agents_port, cps, seconds)
    meter = CpuMeter(w.proc.pid, run.proc.pid, phones.proc.pid, *worker_pids(w)[1:])  # type: ignore[union-attr]
    try:
        peak = run_sipp(run, meter, seconds + 60, (3, seconds), w)
        wcpu, scpu, acpu, *writer = meter.percent()
        wcpu += sum(writer)
    finally:
        run.stop()
        phones.stop()
    ok, failed = sipp_counts(run)
    refused, why = refusals(run, w, start)
    rows, answered = cps_answered(w, start, ok + failed - refused)
    not_answered = max(0, ok - refused - answered)
    rtd = sipp_rtd_ms(run)
    note = f"{answered} answered by an agent" + why.format(ok + failed - refused)
    if failed or not ok:
        note += f"; sipp: {first_error(run)}"
    cleanup(run, phones)
    return Level(f"{cps:g}/s", ok + failed, failed + not_answered, wcpu, scpu + acpu, meter.peak_rss,
                 pct(rtd, 50), pct(rtd, 99), len(rows), peak or peak_up(rows), note, refused)


KEEP = False   # --keep


def cleanup(*runs: sipp.Sipp) -> None:
    """sipp's work directories (scenario, pcaps, logs) unless --keep; errors are read before."""
    if not KEEP:
        for r in runs:
            shutil.rmtree(r.workdir, ignore_errors=True)


def first_error(run: sipp.Sipp) -> str:
    for f in run.workdir.glob("*errors.log"):
        for line in f.read_text(errors="replace").splitlines():
            if line.strip() and not line.startswith("The following events"):
                return line.strip()[:160]
    return f"see {run.workdir}"


# -- main -----------------------------------------------------------------------------------------

def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # sipp and the worker inherit it


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small levels, a smoke run under 2 minutes")
    ap.add_argument("--only", choices=["ivr", "cps"])
    ap.add_argument("--ivr-levels", help="comma-separated concurrent calls (default 100,200,400,600,800,1000)")
    ap.add_argument("--cps-levels", help="comma-separated calls/s (default 25,50,100,125,150)")
    ap.add_argument("--hold", type=float, help="seconds every caller of a level is up together (default 20)")
    ap.add_argument("--seconds", type=float, help="seconds per calls/s level (default 30)")
    ap.add_argument("--ivr-rate", type=float,
                    help="new IVR calls/s while a level ramps up (default level/10; issue 11's scenario: 50)")
    ap.add_argument("--agents", type=int, default=400)
    ap.add_argument("--cps-flow", default="bench_agent",
                    help="the calls/s flow in bench/flows (bench_lang_queue: the side-by-side scenario of vs_asterisk.py)")
    ap.add_argument("--scrape", action="store_true",
                    help="read the worker's /metrics every second during a level (see RESULTS.md: aborts the worker)")
    ap.add_argument("--keep", action="store_true", help="keep the worker's directory (log, CDRs)")
    ap.add_argument("--keep-going", action="store_true", help="run the next level after a failed one")
    ap.add_argument("--capacity", default="",
                    help="the worker's capacity settings, e.g. 'max_new_calls_per_second: 125' (default: built-in)")
    ap.add_argument("--cdr-writer", choices=["worker", "process"], default="worker",
                    help="where CDRs are moved to the store: the worker's own writer (cdr.writer: true) or a "
                         "`callcenter cdr-writer` process beside it (cdr.writer: false; its CPU counted as the worker's)")
    ap.add_argument("--overload", type=float, default=0.0,
                    help="offer this many times each level (1.5: 1500 callers at level 1000, 225/s at 150); "
                         "a 503 with Retry-After counts as a clean refusal")
    ap.add_argument("--callers", choices=["pcap", "stream"], default="pcap",
                    help="how IVR callers send speech: replay g711a.pcap through a raw socket each "
                         "(play_pcap_audio, issue 11's scenario) or stream it from sipp's media port (rtp_stream)")
    args = ap.parse_args()
    ivr_levels = [int(x) for x in (args.ivr_levels or ("20,50" if args.quick else "100,200,400,600,800,1000")).split(",")]
    cps_levels = [float(x) for x in (args.cps_levels or ("10,20" if args.quick else "25,50,100,125,150")).split(",")]
    hold = args.hold or (6 if args.quick else 20)
    seconds = args.seconds or (10 if args.quick else 30)
    global SCRAPE, KEEP, OVERLOAD, CAPACITY, CDR_WRITER, CALLERS
    SCRAPE, KEEP, OVERLOAD, CAPACITY, CDR_WRITER = args.scrape, args.keep, args.overload, args.capacity, args.cdr_writer
    CALLERS = args.callers
    if OVERLOAD:
        ivr_levels = [round(n * OVERLOAD) for n in ivr_levels]
        cps_levels = [c * OVERLOAD for c in cps_levels]
    raise_nofile()
    print(f"machine: {os.cpu_count()} cores, busy {machine_busy():.2f} cores before the run; "
          f"RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")
    tmp = Path(tempfile.mkdtemp(prefix="sip-bench-"))
    redis = EmbeddedRedis(tmp / "redis").start()
    results: dict[str, list[Level]] = {}
    # SIGTERM unwinds like Ctrl-C so the finally blocks stop sipp and the worker.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if args.only in (None, "ivr"):
            rows = results.setdefault("ivr", [])
            with running_worker(tmp, redis, "bench_ivr", 1) as w:
                for n in ivr_levels:
                    rows.append(ivr_level(w, n, hold, args.ivr_rate))
                    print_table("concurrent IVR calls with media (one worker)", rows[-1:])
                    if not rows[-1].ok and not args.keep_going:
                        break
                    time.sleep(3)    # let the last BYEs and CDRs settle
        if args.only in (None, "cps"):
            rows = results.setdefault("cps", [])
            with running_worker(tmp, redis, args.cps_flow, args.agents) as w:
                for cps in cps_levels:
                    rows.append(cps_level(w, w.agents_port, cps, seconds))
                    print_table("calls/s through IVR -> queue -> agent (one worker)", rows[-1:])
                    if not rows[-1].ok and not args.keep_going:
                        break
                    time.sleep(3)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        redis.stop()
    if "ivr" in results:
        print_table("concurrent IVR calls with media (one worker)", results["ivr"])
        best = max((r.calls for r in results["ivr"] if r.ok), default=0)
        print(f"highest concurrency with < {MAX_FAILED:.1%} failed: {best}")
    if "cps" in results:
        print_table("calls/s through IVR -> queue -> agent (one worker)", results["cps"])
        best_cps = max((float(r.level[:-2]) for r in results["cps"] if r.ok), default=0)
        print(f"highest sustained calls/s with < {MAX_FAILED:.1%} failed: {best_cps:g}")
    if args.keep:
        print(f"worker logs and CDRs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
