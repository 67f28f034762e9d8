"""How many calls to start now. Pure functions, shared by the engine and ``bench/pacing_sim.py``.

Predictive pacing models the calls in flight as Binomial(m, answer_rate) answers arriving over
the next ``answer_delay`` seconds, and the agents able to take them as the free agents plus
Poisson(busy x (answer_delay + grace) / AHT) agents finishing in that time. It starts the largest
number of new calls whose expected abandoned share stays under the target. The target comes
from the abandonment ledger (``ledger.throttle``): it shrinks before the legal limit is reached,
and at 0 the dialer is progressive (never more calls in flight than free agents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PacingInput:
    free_agents: int
    busy_agents: int
    in_flight: int          # calls dialed, not yet answered or failed
    answer_rate: float      # share of dials answered by a person
    aht: float              # seconds an agent is busy per connected call (talk + wrap-up)
    answer_delay: float     # mean seconds from dial to answer, for answered calls
    target: float           # expected abandoned / answered allowed (0 = progressive)
    grace: float = 2.0      # an answered call may wait this long for an agent (TCPA: 2 s)
    max_ratio: float = 8.0  # ceiling of calls in flight per available agent
    # Calls already in flight have run part of their ring time, so agents finishing late in the
    # horizon come too late for them: only this share of the mean answer delay counts.
    lookahead: float = 0.5


def progressive_dials(free_agents: int, in_flight: int) -> int:
    """One call per free agent: never more calls in flight than agents waiting."""
    return max(0, free_agents - in_flight)


def _poisson_shortfall(mu: float, upto: int) -> list[float]:
    """h[j] = E[max(0, j - Y)] for Y ~ Poisson(mu), j = 0..upto."""
    h = [0.0] * (upto + 1)
    p = math.exp(-mu)
    cdf = 0.0
    for j in range(upto):
        cdf += p
        h[j + 1] = h[j] + cdf
        p *= mu / (j + 1)
    return h


def expected_abandoned(m: int, p: float, free: int, h: list[float]) -> float:
    """E[max(0, X - free - Y)] with X ~ Binomial(m, p) and h from :func:`_poisson_shortfall`."""
    if m <= free or p <= 0:
        return 0.0
    q = 1.0 - p
    if q <= 0:
        j = m - free
        return h[j] if j < len(h) else h[-1] + (j - len(h) + 1)
    mean, sd = m * p, math.sqrt(m * p * q)
    lo = max(free + 1, int(mean - 8 * sd))
    hi = min(m, int(mean + 8 * sd) + 1)
    if lo > hi:
        return 0.0
    logp = (math.lgamma(m + 1) - math.lgamma(lo + 1) - math.lgamma(m - lo + 1)
            + lo * math.log(p) + (m - lo) * math.log(q))
    pmf = math.exp(logp)
    total = 0.0
    odds = p / q
    last = len(h) - 1
    for x in range(lo, hi + 1):
        j = x - free
        total += pmf * (h[j] if j <= last else h[last] + (j - last))
        pmf *= (m - x) / (x + 1) * odds
    return total


def predictive_dials(s: PacingInput) -> int:
    """New calls to start now so that expected abandonment of the calls in flight stays <= target."""
    free = max(0, s.free_agents)
    if s.target <= 0:
        return progressive_dials(free, s.in_flight)
    p = min(1.0, max(1e-3, s.answer_rate))
    horizon = s.lookahead * max(0.0, s.answer_delay) + s.grace
    mu = s.busy_agents * min(1.0, horizon / s.aht) if s.aht > 0 else 0.0
    ceiling = int(s.max_ratio * (free + mu) + 0.5)
    if s.in_flight >= ceiling:
        return 0
    h = _poisson_shortfall(mu, max(8, int(mu + 10 * math.sqrt(mu) + 10)))
    k = 0
    while s.in_flight + k < ceiling:
        m = s.in_flight + k + 1
        if expected_abandoned(m, p, free, h) > s.target * m * p:
            break
        k += 1
    # Never leave a waiting agent with nothing in flight: progressive is the floor.
    return max(k, progressive_dials(free, s.in_flight))


class PacingStats:
    """Running estimates for one campaign, starting from the campaign's priors.

    Exponentially weighted so a change of list (different answer rate) shows within ~``window`` calls.
    """

    def __init__(self, answer_rate: float, aht: float, answer_delay: float = 10.0, window: int = 300) -> None:
        self.answer_rate = answer_rate
        self.aht = aht
        self.answer_delay = answer_delay
        self._a = 1.0 / window
        self._b = 1.0 / max(10, window // 10)
        self.resolved = 0

    @property
    def cautious_answer_rate(self) -> float:
        """The rate pacing should assume: starts at 1 (every dial answered, i.e. progressive) and
        approaches the estimate as calls resolve, so a wrong prior cannot cause a burst of abandons
        when a campaign starts with every agent free."""
        n0 = 20.0
        w = n0 / (self.resolved + n0)
        return self.answer_rate + (1.0 - self.answer_rate) * w

    def dial_resolved(self, answered: bool, seconds_to_answer: float | None = None) -> None:
        self.resolved += 1
        self.answer_rate += self._a * ((1.0 if answered else 0.0) - self.answer_rate)
        if answered and seconds_to_answer is not None:
            self.answer_delay += self._b * (seconds_to_answer - self.answer_delay)

    def handled(self, seconds: float) -> None:
        self.aht += self._b * (seconds - self.aht)
