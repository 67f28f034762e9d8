"""Discrete-event, seeded simulation of dialer pacing: agent occupancy and abandonment.

Uses the engine's own pacing (callcenter.dialer.pacing) and ledger throttle (callcenter.dialer.ledger).
Model: each dial is answered by a person with probability `answer rate` after U(4, 20) s of ringing;
otherwise it fails (30% busy after U(2, 6) s, 70% no answer at the 25 s ring timeout). An answered
call takes a free agent at once or within the 2 s grace, else it is abandoned. Agents are busy for
AHT (talk + wrap-up): uniform 3-6 min, or lognormal with mean 4.5 min and sigma 0.5 (long tail).
Pacing starts from a wrong prior (answer rate 30%, AHT 4.5 min) and learns online, as in production.
Occupancy = agent busy time / agent time after a 10 min warm-up; abandonment = abandoned / answered
by a person (the ledger's measure); "answered" = calls answered by a person.

    .venv/bin/python bench/pacing_sim.py [--hours 4] [--seed 1]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callcenter import yamlsrc
from callcenter.dialer.campaign import parse_campaign
from callcenter.dialer.ledger import LedgerView, LedgerWindow, throttle
from callcenter.dialer.pacing import PacingInput, PacingStats, predictive_dials, progressive_dials

CAMPAIGN = parse_campaign(*yamlsrc.loads("""
id: sim
type: telesales
dial_mode: predictive
queue: q
caller_id: "0280000000"
compliance: {preset: us_tcpa}
pacing: {target_abandon_rate: 0.02, initial_answer_rate: 0.3, expected_aht: 270}
""", "sim.yaml"))
GRACE = 2.0
WARMUP = 600.0


def aht_sample(rng: random.Random, dist: str) -> float:
    if dist == "uniform":
        return rng.uniform(180, 360)
    # lognormal with mean 270 s; long tail (sigma 0.5), as real handle times are
    sigma = 0.5
    return rng.lognormvariate(math.log(270) - sigma * sigma / 2, sigma)


def simulate(agents: int, answer_rate: float, dist: str, mode: str, hours: float, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    end = hours * 3600.0
    events: list[tuple[float, int, str, float]] = []
    seq = 0

    def push(t: float, kind: str, data: float = 0.0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, data))

    free = agents
    busy_time = 0.0
    in_flight = 0
    waiting: list[float] = []           # deadlines of answered calls waiting for an agent
    answered = abandoned = dials = 0
    stats = PacingStats(CAMPAIGN.pacing.initial_answer_rate, CAMPAIGN.pacing.expected_aht)
    now = 0.0

    def connect(t: float) -> None:
        nonlocal free, busy_time
        free -= 1
        d = aht_sample(rng, dist)
        stats.handled(d)
        if t + d > WARMUP:
            busy_time += min(t + d, end) - max(t, WARMUP)
        push(t + d, "agent_free")

    def pace(t: float) -> None:
        nonlocal in_flight, dials
        if mode == "progressive":
            k = progressive_dials(free - len(waiting), in_flight)
        else:
            view = LedgerView(LedgerWindow(answered, abandoned), LedgerWindow(answered, abandoned))
            target = throttle(CAMPAIGN, view)
            k = predictive_dials(PacingInput(free - len(waiting), agents - free, in_flight, stats.cautious_answer_rate,
                                             stats.aht, stats.answer_delay, target, GRACE, 8.0))
        for _ in range(k):
            dials += 1
            in_flight += 1
            if rng.random() < answer_rate:
                push(t + rng.uniform(4, 20), "answer", t)
            elif rng.random() < 0.3:
                push(t + rng.uniform(2, 6), "fail", t)
            else:
                push(t + 25.0, "fail", t)

    push(0.0, "tick")
    while events:
        now, _, kind, data = heapq.heappop(events)
        if now > end:
            break
        if kind == "tick":
            push(now + 1.0, "tick")
        elif kind == "answer":
            in_flight -= 1
            stats.dial_resolved(True, now - data)
            answered += 1
            if free > len(waiting):
                connect(now)
            else:
                waiting.append(now + GRACE)
                push(now + GRACE, "grace_end", now + GRACE)
        elif kind == "fail":
            in_flight -= 1
            stats.dial_resolved(False)
        elif kind == "agent_free":
            free += 1
            if waiting:
                waiting.pop(0)
                connect(now)
        elif kind == "grace_end":
            if waiting and waiting[0] == data:
                waiting.pop(0)
                abandoned += 1
        pace(now)
    occupancy = busy_time / (agents * (end - WARMUP))
    return {"dials": dials, "answered": answered, "abandoned": abandoned,
            "abandon_rate": abandoned / answered if answered else 0.0, "occupancy": occupancy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--agents", type=int, nargs="*", default=[5, 20, 100])
    ap.add_argument("--rates", type=float, nargs="*", default=[0.15, 0.30, 0.50])
    args = ap.parse_args()
    t0 = time.monotonic()
    print(f"shift {args.hours} h, seed {args.seed}, target 2% (ledger limit 3%), grace {GRACE} s")
    print(f"{'agents':>6} {'answer':>6} {'AHT':>9} | {'predictive':^27} | {'progressive 1:1':^27}")
    print(f"{'':>6} {'rate':>6} {'':>9} | {'abandon':>8} {'occup':>7} {'answered':>9} | "
          f"{'abandon':>8} {'occup':>7} {'answered':>9}")
    worst_ab, worst_occ = 0.0, 1.0
    for agents in args.agents:
        for rate in args.rates:
            for dist in ("uniform", "lognormal"):
                seed = args.seed * 1000 + agents * 10 + int(rate * 100)
                pr = simulate(agents, rate, dist, "predictive", args.hours, seed)
                pg = simulate(agents, rate, dist, "progressive", args.hours, seed)
                worst_ab = max(worst_ab, pr["abandon_rate"])
                if agents >= 20:
                    worst_occ = min(worst_occ, pr["occupancy"])
                print(f"{agents:>6} {rate:>6.0%} {dist:>9} | {pr['abandon_rate']:>8.2%} {pr['occupancy']:>7.1%} "
                      f"{pr['answered']:>9} | {pg['abandon_rate']:>8.2%} {pg['occupancy']:>7.1%} {pg['answered']:>9}")
    print(f"worst predictive abandonment {worst_ab:.2%}; worst predictive occupancy at 20+ agents "
          f"{worst_occ:.1%}; {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
