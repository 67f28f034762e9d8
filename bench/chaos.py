"""The chaos run (issue 16): a whole site on loopback under load while its parts are killed one by one.

The site: 2 workers behind the Kamailio edge (tests/edge_proc.py), a Redis master + replica + 3 sentinels
(tests/sentinel_helpers.py), PostgreSQL for the CDR store (tests/pg.py), the CDR writer as its own process
(`callcenter cdr-writer`, the workers run `cdr.writer: false`), a campaign dialing a list of test numbers on
both workers (agentless, a sipp UAS as the customers; dialer_worker's campaign and flow) and `--rate` calls/s
of IVR -> queue -> agent traffic (bench/flows/bench_agent.yaml, the agents one sipp UAS as in sip_bench's cps
level) for `--minutes`. Spaced evenly over the run it kills, then restarts, in turn:

    worker      SIGKILL of worker 1, started again after --down seconds
    redis       SIGKILL of the Redis master: Sentinel promotes the replica, the old master comes back as its replica
    postgres    an immediate stop of PostgreSQL (no checkpoint, as a crash), started again after --down
    cdr_writer  SIGKILL of the CDR writer, started again after --down
    kamailio    SIGKILL of the edge's process group, started again after --down

Every caller has its own number (0980<sipp call number>), so its CDR is found by the caller's number; sipp's
-trace_shortmsg gives each call's INVITE time and whether the far end hung up (the worker's BYE after the
agent's). After the traffic and a settle period the invariants are checked and a report printed:

- per fault window (from one fault to the next; "baseline" before the first): calls offered, answered (the
  far end's BYE and an answered CDR with an agent), failed; calls in flight at the fault that failed
  ("dropped") and, for the worker, how many of those had their media elsewhere; time to recover: from the
  fault to the first clean call started after the window's last failed one (0: nothing failed);
- every call the worker took (200 OK) has exactly one CDR, and it is closed;
- no agent reserved or on a call after the settle period; no worker still holding calls;
- no caller lost from a queue: every ENTERQUEUE in the queue log has a CONNECT, ABANDON, EXITWITHTIMEOUT,
  EXITEMPTY or CALLBACK (those without one are split by whether their CDR says the worker crashed under them);
- no number dialed twice (two INVITEs with different Call-IDs at the customers; the campaign allows 1 attempt,
  cap 1 a day), over its cap (a contact's attempts), outside its calling window, or on the DNC list; the DNC
  list is what it was.

Run: .venv/bin/python bench/chaos.py [--minutes 10] [--rate 50] [--faults worker,redis,postgres,cdr_writer,kamailio]
(develop with --minutes 2 --rate 10). Ports come from tests/ports.py (WORKER_BASE_PORT, 27000 by default here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
os.environ.setdefault("WORKER_BASE_PORT", "27000")

import ports  # noqa: E402 - tests/ helpers
import sipp  # noqa: E402
from dialer_worker import KEYS as DIALER_KEYS  # noqa: E402
from dialer_worker import SHORT_FLOW, campaign_yaml, cli, upload  # noqa: E402
from edge_proc import Edge  # noqa: E402
from pg import PgServer, pg_missing_reason  # noqa: E402
from sentinel_helpers import SentinelSite  # noqa: E402
from sip_bench import FLOWS, machine_busy, raise_nofile, write_rules  # noqa: E402
from worker_proc import METRICS_TOKEN, WorkerProc  # noqa: E402

from callcenter.cdr.writer import open_store  # noqa: E402
from callcenter.redisconn import connect, connect_sync  # noqa: E402
from callcenter.routing.keys import Keys  # noqa: E402
from callcenter.routing.router import Router  # noqa: E402

FAULTS = ("worker", "redis", "postgres", "cdr_writer", "kamailio")
CAMPAIGN = "chaos"
CALLER_PREFIX = "0980"              # + sipp's call number: each caller's own number
# the language and the menu key in one pcap, one sipp thread (tests/rtp_pcap.py: with a thread each, a stalled sipp
# sent the second key first, pjmedia dropped the first as out of order and the menu heard nothing: ~1% of calls
# took its 44 s of retries, bench/RESULTS.md "Durable writes", session 6)
CALLER_STEPS: list[tuple] = [("pause", 300), ("dtmf", "11"), ("wait_bye", 20000)]
# --rtp-base, --rtp-range: worker n's RTP ports from base + (n - 1) * range, in bench/sip_bench.py's 48000-63999 (above
# tests/ports.py's media pool: pjsua takes the next port where one is held); 2 a call, 1/8 per local account
RTP = [48000, 4000]
QUEUE_EXITS = {"CONNECT", "ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY", "CALLBACK"}
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
CALLERS_IP = "127.0.0.2"            # the callers' sipp: the carrier's trunk as the edge knows it


@dataclass
class Call:
    """One sipp caller's call, from its -trace_shortmsg lines."""

    number: str
    start: float = 0.0
    last: float = 0.0
    taken: bool = False         # the worker answered (200 to the INVITE)
    status: int = 0             # the INVITE's final status
    answered_at: float = 0.0    # when its 200 came
    far_bye: bool = False       # the far end hung up (the worker, after the agent)


@dataclass
class Fault:
    name: str
    at: float
    restored: float = 0.0
    note: str = ""


@dataclass
class Site:
    tmp: Path
    redis: SentinelSite
    pg: PgServer
    workers: list[WorkerProc]
    edge: Edge
    writer: subprocess.Popen[bytes] | None = None
    sipps: list[sipp.Sipp] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.redis.url()

    def start_writer(self) -> None:
        out = open(self.tmp / "cdr-writer.log", "ab")  # noqa: SIM115 - owned by the process
        self.writer = subprocess.Popen(
            [sys.executable, "-m", "callcenter", "cdr-writer", "--redis", self.url, "--store", self.pg.dsn,
             "--consumer", "chaos-writer"], stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp)

    def stop(self, keep: bool = False) -> None:
        for s in self.sipps:
            s.stop()
        for w in self.workers:
            w.stop(timeout=10)
        if self.writer is not None and self.writer.poll() is None:
            self.writer.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.writer.wait(10)
            if self.writer.poll() is None:
                self.writer.kill()
        self.edge.stop()
        self.redis.stop()
        if keep:
            self.pg.stop()
            print(f"PostgreSQL data kept in {self.pg.dir} (dsn {self.pg.dsn})")
        else:
            self.pg.destroy()


# -- building the site ------------------------------------------------------------------------------

def worker_config(w: WorkerProc, url: str, store: str, rules: Path, ivr: Path, campaigns: Path, trunk: str) -> None:
    w.config.write_text(f"""
worker: {{id: {w.worker_id}, data_dir: {w.tmp}, drain_seconds: 2}}
sip: {{bind: 127.0.0.1, port: {w.sip_port}, transports: [udp], rtp_port: {w.rtp_port}, rtp_port_range: {RTP[1]},
      max_calls: 1024, log_level: 1, max_calls_per_source: 1024, rtp_timeout: 300, trunk: "{trunk}"}}
redis: {{url: "{url}", prefix: "cc:"}}
http: {{bind: 127.0.0.1, port: {w.http_port}, metrics_token: {METRICS_TOKEN}}}
paths: {{ivr_scripts: {ivr}, sounds: {REPO / 'sounds'}, routing_rules: {rules}, campaigns: {campaigns}}}
cdr: {{store: "{store}", writer: false}}
routes: {{default: bench_agent}}
capacity: {{loop_lag_seconds: 10}}
""")


def national(i: int) -> str:
    return f"0907{i:06d}"


def e164(nat: str) -> str:
    return "+84" + nat[1:]


def build(tmp: Path, rate: float, seconds: float, contacts: int, started: list[Site]) -> set[str]:
    """Start the whole site (into ``started`` at once, to be stopped whatever happens next; nothing dialing or
    calling yet); the DNC numbers put on the global list."""
    redis = SentinelSite(tmp / "redis", ports.block(5))
    ivr, campaigns = tmp / "ivr", tmp / "campaigns"
    shutil.copytree(FLOWS, ivr)
    (ivr / "dialer_test_notice.yaml").write_text(SHORT_FLOW)
    campaigns.mkdir()
    agents_port, customers_port = ports.port(), ports.port()
    n_agents = max(20, int(rate * 4))
    rules = tmp / "rules.yaml"
    ids = write_rules(rules, agents_port, n_agents)
    workers = []
    for n in (1, 2):
        base = ports.block(3)
        wdir = tmp / f"w{n}"
        wdir.mkdir()
        w = WorkerProc(wdir, redis.url(), base, base + 1, base + 2, f"chaos-w{n}",
                       rtp_port=RTP[0] + (n - 1) * RTP[1])
        w.env["CALLCENTER_DIALER"] = "1"
        workers.append(w)
    # the callers come from the carrier: a trunk (CALLERS_IP), exempt from the edge's per-address INVITE rate
    edge = Edge(tmp, ports.port(), {"9999": "unused-secret"}, [w.target for w in workers], trunks=[CALLERS_IP])
    site = Site(tmp, redis, PgServer(), workers, edge)      # PgServer() made its directory: stopped from now on
    started.append(site)
    pg = site.pg
    for w in workers:
        worker_config(w, redis.url(), pg.dsn, rules, ivr, campaigns, f"127.0.0.1:{customers_port}")
    redis.start()
    pg.start()
    # one attempt a number, capped at one call a day: any second INVITE to a number is a double dial
    text = campaign_yaml(CAMPAIGN, customers_port, max_attempts=1, ring="4s")
    text = text.replace("max_calls_per_number: 0", "max_calls_per_number: 1\n  cap_window: 1d")
    (campaigns / f"{CAMPAIGN}.yaml").write_text(text.replace("max_concurrent: 2", "max_concurrent: 4"))
    rows = [f"{national(i)},C{i},{1000 + i}," for i in range(contacts)]
    upload(tmp, CAMPAIGN, rows, redis.url(), campaigns)
    dnc = {e164(national(i)) for i in range(0, contacts, 20)}
    c = connect_sync(redis.url())
    c.sadd(DIALER_KEYS.dnc_global(), *dnc)
    c.close()
    for w in workers:
        w.start(timeout=60)
    site.start_writer()
    edge.start()
    total = int(rate * seconds)
    site.sipps.append(sipp.agent(agents_port, "answer_bye", ring_ms=100, talk_ms=1000, calls=total * 3,
                                 timeout_s=int(seconds + 600), timeout_error=False))
    site.sipps.append(sipp.agent(customers_port, "answer", ring_ms=300, calls=contacts * 2, trace=True,
                                 timeout_s=int(seconds + 600), timeout_error=False))
    workers[0].login(*ids)
    return dnc


# -- the faults -------------------------------------------------------------------------------------

def inject(site: Site, name: str, down: float) -> Fault:
    f = Fault(name, time.time())
    if name == "worker":
        w = site.workers[0]
        w.stop(signal.SIGKILL)
        time.sleep(down)
        w.start(timeout=60)
        f.note = f"{w.worker_id} SIGKILLed"
    elif name == "redis":
        old = site.redis.master()
        new = site.redis.kill_master(restart=False)
        promoted = time.time() - f.at
        site.redis.restart(old)
        f.note = f"master {old.port} SIGKILLed, {new} promoted after {promoted:.1f} s, {old.port} back as its replica"
    elif name == "postgres":
        site.pg.stop("immediate")
        time.sleep(down)
        site.pg.start()
        f.note = "immediate stop (crash), started again"
    elif name == "cdr_writer":
        assert site.writer is not None
        site.writer.kill()
        site.writer.wait()
        time.sleep(down)
        site.start_writer()
        f.note = "SIGKILLed, started again"
    elif name == "kamailio":
        assert site.edge.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(site.edge.proc.pid, signal.SIGKILL)
        site.edge.proc.wait()
        time.sleep(down)
        site.edge.start()
        f.note = "process group SIGKILLed, started again"
    else:
        raise ValueError(name)
    f.restored = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] fault {name}: {f.note} ({f.restored - f.at:.1f} s)", flush=True)
    return f


# -- what happened ----------------------------------------------------------------------------------

def caller_calls(run: sipp.Sipp) -> dict[str, Call]:
    """sipp's call number -> its call, from the callers' -trace_shortmsg file."""
    calls: dict[str, Call] = {}
    for f in run.workdir.glob("*_shortmessages.log"):
        for line in f.read_text(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 7:
                continue
            t, way, cid, cseq, first = float(parts[2]), parts[3], parts[4], parts[5], parts[6]
            n = cid.split("-", 1)[0]
            c = calls.setdefault(n, Call(CALLER_PREFIX + n, start=t))
            c.last = max(c.last, t)
            if way != "R":
                continue
            if first.startswith("SIP/2.0 ") and cseq.endswith("INVITE"):
                code = int(first.split()[1])
                if code >= 200 and not c.status:
                    c.status = code
                    c.taken = code == 200
                    c.answered_at = t
            elif first.startswith("BYE"):
                c.far_bye = True
    return calls


def customer_invites(run: sipp.Sipp) -> dict[str, list[tuple[float, str]]]:
    """Called number -> (time, Call-ID) of each new dial the customers got (retransmissions once)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    when = 0.0
    text = run.messages()
    for block in re.split(r"(?:^|\n)-{10,} ", text):
        head = re.match(r"(\d{4}-\d\d-\d\d\t?\s*\d\d:\d\d:\d\d\.\d+)", block)
        if head:
            with contextlib.suppress(ValueError):
                when = dt.datetime.strptime(re.sub(r"\s+", " ", head.group(1)),
                                            "%Y-%m-%d %H:%M:%S.%f").timestamp()
        m = re.search(r"^INVITE sip:(\d+)@", block, re.M)
        cid = re.search(r"^Call-ID:\s*(\S+)", block, re.M | re.I)
        if m and cid:
            out[m.group(1)].setdefault(cid.group(1), when)
    return {n: sorted((t, c) for c, t in ids.items()) for n, ids in out.items()}


async def routing_state(url: str) -> tuple[dict[str, str], dict[str, int]]:
    """(every agent's state, calls each worker still holds) on the master the sentinels name."""
    r = connect(url)
    try:
        agents = {a["id"]: a["state"] for a in await Router(r, "chaos").agents()}
        keys = Keys("cc:")
        held = {w: int(await r.scard(keys.worker_calls(w))) for w in ("chaos-w1", "chaos-w2")}
        return agents, held
    finally:
        await r.aclose()


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def add(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)


def check(site: Site, callers: sipp.Sipp, customers: sipp.Sipp, faults: list[Fault], t0: float, t_end: float,
          dnc: set[str], rep: Report) -> int:
    """Print the report; the number of invariant violations."""
    calls = caller_calls(callers)
    store = open_store(site.pg.dsn)
    try:
        cdrs = store.calls(since=t0 - 5, limit=None)      # every row: the store caps a listing at 10,000 by default
        events = store.events(since=t0 - 5)
    finally:
        store.close()
    inbound: dict[str, list] = defaultdict(list)
    for c in cdrs:
        if c.direction == "inbound" and c.caller.startswith(CALLER_PREFIX):
            inbound[c.caller].append(c)

    def ok(c: Call) -> bool:
        rows = inbound.get(c.number, [])
        return c.far_bye and any(r.outcome == "answered" and r.agent_id for r in rows)

    def in_flight(c: Call, at: float) -> bool:
        """Up at that moment: from its INVITE to the end its CDR gives (a dropped call's is when its worker
        or the one closing out the dead worker's calls saw it end), else to its last SIP message."""
        rows = inbound.get(c.number, [])
        end = max((r.end or 0.0 for r in rows), default=0.0) or c.last
        return c.start < at <= end

    # -- per fault window: a failed call counts against the last fault it was up at, else its start's window
    edges = [("baseline", t0), *[(f.name, f.at) for f in faults], ("end", t_end + 3600)]
    ordered = sorted(calls.values(), key=lambda c: c.start)

    def blame(c: Call) -> str:
        hit = [f.name for f in faults if in_flight(c, f.at)]
        if hit:
            return hit[-1]
        return next(name for (name, start), (_, stop) in zip(edges, edges[1:], strict=False) if start <= c.start < stop)

    failed_by: dict[str, list[Call]] = defaultdict(list)
    for c in ordered:
        if not ok(c):
            failed_by[blame(c)].append(c)
    rep.add(f"{'window':<12} {'offered':>7} {'answered':>8} {'failed':>6} {'dropped':>7} {'recover s':>9}  note")
    by_fault = {f.name: f for f in faults}
    for (name, start), (_, stop) in zip(edges, edges[1:], strict=False):
        inside = [c for c in ordered if start <= c.start < stop]
        failed = failed_by.get(name, [])
        note, dropped, recover = "", "", ""
        f = by_fault.get(name)
        if f is not None:
            hit = [c for c in failed if in_flight(c, f.at)]
            dropped = str(len(hit))
            if name == "worker":
                elsewhere = [c for c in hit if any(r.worker_id != "chaos-w1" for r in inbound.get(c.number, []))]
                note = f"{len(elsewhere)} dropped with their media on chaos-w2; "
            after = max([f.at, *(c.start for c in failed)])
            first_ok = next((c for c in ordered if c.start >= after and ok(c)), None)
            recover = f"{first_ok.answered_at - f.at:.1f}" if first_ok else "never"
            note += f.note
        rep.add(f"{name:<12} {len(inside):>7} {sum(1 for c in inside if ok(c)):>8} {len(failed):>6} {dropped:>7} "
                f"{recover:>9}  {note}")
    rep.add("(offered, answered: calls started in the window; failed: calls that failed while up at the fault, or "
            "started in the window and up at no fault; dropped: of those, the ones up at the fault; recover: from "
            "the fault to the 200 OK of the first call started after it, and after its last failed one, that "
            "ended cleanly)")

    # -- invariants
    violations = 0

    def inv(name: str, bad: int, detail: str = "") -> None:
        nonlocal violations
        violations += bad
        rep.add(f"  {'OK  ' if not bad else 'FAIL'} {name}: {bad}{f'  ({detail})' if detail else ''}")

    rep.add("")
    rep.add("invariants (violations):")
    taken = [c for c in calls.values() if c.taken]
    lost = [c for c in taken if not inbound.get(c.number)]
    dup = [c for c in taken if len(inbound.get(c.number, [])) > 1]
    open_ = [c for c in taken if any(not r.end for r in inbound.get(c.number, []))]
    open_out = [r for r in cdrs if r.direction == "outbound" and not r.end]
    inv("calls taken by a worker without a CDR (lost CDRs)", len(lost), f"of {len(taken)} taken")
    inv("calls with more than one CDR", len(dup))
    inv("campaign dials' CDRs never closed", len(open_out), ", ".join(
        sorted({f"{r.worker_id}" for r in open_out})))
    inv("callers' CDRs never closed", len(open_), ", ".join(
        f"{c.number}: {r.worker_id} {r.outcome} {r.hangup_cause}" for c in open_[:5] for r in inbound[c.number]))
    agents, held = asyncio.run(routing_state(site.url))
    stuck = {a: s for a, s in agents.items() if s in ("reserved", "on_call")}
    inv("agents stuck reserved or on a call after the settle period", len(stuck), ", ".join(
        f"{a}={s}" for a, s in sorted(stuck.items())[:10]))
    inv("calls a worker still holds in routing after the settle period", sum(held.values()), str(held))
    by_call: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.call_id:
            by_call[e.call_id].add(e.event)
    cdr_by_id = {c.call_id: c for c in cdrs}
    unexited = [cid for cid, evs in by_call.items() if "ENTERQUEUE" in evs and not evs & QUEUE_EXITS]
    crashed = [cid for cid in unexited if (cdr_by_id.get(cid) and cdr_by_id[cid].hangup_cause == "worker_crash")]
    inv("callers lost from a queue (ENTERQUEUE, no CONNECT/ABANDON/EXIT*/CALLBACK)", len(unexited) - len(crashed),
        f"besides {len(crashed)} whose worker was killed under them (CDR: worker_crash)")
    dials = customer_invites(customers)
    twice = {n: d for n, d in dials.items() if len(d) > 1}
    inv("numbers dialed twice", len(twice), ", ".join(list(twice)[:5]))
    c = connect_sync(site.url)
    try:
        attempts = {n: int(c.hget(DIALER_KEYS.contact(CAMPAIGN, e164(n)), "attempts") or 0) for n in dials}
        dnc_now = set(c.smembers(DIALER_KEYS.dnc_global()))
    finally:
        c.close()
    inv("contacts over their attempts cap (1)", sum(1 for a in attempts.values() if a > 1))
    # the window the campaign was given at setup (its file), not one recomputed now: a run may cross midnight
    hours = re.search(r'calling_hours: \["(\d\d):\d\d-(\d\d):\d\d"\]',
                      (site.tmp / "campaigns" / f"{CAMPAIGN}.yaml").read_text())
    assert hours, "the campaign's calling_hours"
    lo, hi = int(hours.group(1)), int(hours.group(2))
    outside = [n for n, d in dials.items() for t, _ in d
               if not lo <= dt.datetime.fromtimestamp(t, HCM).hour < max(hi, lo + 1) and t]
    inv("dials outside the calling window", len(outside))
    inv("DNC numbers dialed", sum(1 for n in dials if e164(n) in dnc))
    inv("DNC list changed (numbers missing + added)", len(dnc - dnc_now) + len(dnc_now - dnc))
    rep.add(f"campaign: {sum(len(d) for d in dials.values())} dials to {len(dials)} numbers; "
            f"outbound CDRs: {sum(1 for r in cdrs if r.direction == 'outbound')}")
    rep.add(f"CDR rows read from the store: {len(cdrs)} ({len(inbound)} callers' numbers), "
            f"sipp callers traced: {len(calls)}")
    return violations


# -- main -------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=50.0, help="new IVR -> queue -> agent calls a second")
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"which, in order (default {','.join(FAULTS)})")
    ap.add_argument("--down", type=float, default=5.0, help="seconds a killed part stays down (not redis)")
    ap.add_argument("--settle", type=float, default=30.0, help="seconds after the last call before the checks")
    ap.add_argument("--contacts", type=int, default=0, help="campaign list size (default 40 a minute)")
    ap.add_argument("--rtp-base", type=int, default=RTP[0], help="first RTP port of worker 1")
    ap.add_argument("--rtp-range", type=int, default=RTP[1], help="RTP ports per worker (2 a call, 1/8 per account)")
    ap.add_argument("--keep", action="store_true", help="keep the run's directory (logs, sipp traces)")
    ap.add_argument("--report", help="also write the report to this file")
    args = ap.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    if unknown := set(faults) - set(FAULTS):
        ap.error(f"unknown faults: {', '.join(sorted(unknown))}")
    if why := pg_missing_reason():
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    raise_nofile()
    RTP[:] = [args.rtp_base, args.rtp_range]
    seconds = args.minutes * 60
    rep = Report()
    rep.add(f"chaos run: {args.minutes:g} min at {args.rate:g} calls/s, faults {', '.join(faults)}; machine: "
            f"{os.cpu_count()} cores, busy {machine_busy():.2f} cores before the run")
    tmp = Path(tempfile.mkdtemp(prefix="chaos-"))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started: list[Site] = []
    violations = -1
    try:
        dnc = build(tmp, args.rate, seconds, args.contacts or int(40 * args.minutes), started)
        site = started[0]
        customers = site.sipps[1]
        cli("start", CAMPAIGN, redis_url=site.url, campaigns=tmp / "campaigns")
        t0 = time.time()
        callers = sipp.caller(site.edge.address, CALLER_STEPS, number=CALLER_PREFIX + "[call_number]",
                              calls=int(args.rate * seconds), rate=args.rate, limit=int(args.rate * 60),
                              timeout_s=int(seconds + 300), extra=["-trace_shortmsg"], local_ip=CALLERS_IP)
        site.sipps.append(callers)
        done: list[Fault] = []
        for i, name in enumerate(faults):
            at = t0 + seconds * (i + 1) / (len(faults) + 1)
            time.sleep(max(0.0, at - time.time()))
            done.append(inject(site, name, args.down))
        with contextlib.suppress(AssertionError):
            callers.wait(seconds + 300 - (time.time() - t0))
        t_end = time.time()
        print(f"[{time.strftime('%H:%M:%S')}] traffic over; settling {args.settle:g} s", flush=True)
        cli("stop", CAMPAIGN, redis_url=site.url, campaigns=tmp / "campaigns")
        time.sleep(args.settle)
        rep.add("")
        violations = check(site, callers, customers, done, t0, t_end, dnc, rep)
        rep.add(f"\ntotal invariant violations: {violations}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        for s in started:
            s.stop(args.keep)
        if args.report:
            Path(args.report).write_text("\n".join(rep.lines) + "\n")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if violations == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
