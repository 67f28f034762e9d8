"""Overload admission: may this worker take one more incoming call right now?

Past its capacity a worker answers new INVITEs `503 Service Unavailable` with `Retry-After` (the SIP edge
then tries the next worker, see deploy/kamailio/kamailio.cfg `NEXT_WORKER`), so the calls it already took
keep clean audio, digits and CDRs instead of everyone degrading together. The decision reads what actually
runs out on a worker, each signal with its own gate:

- ``lag``: how late a 50 ms timer fires on the event loop, smoothed (EWMA). Every SIP message, prompt,
  digit and Redis reply of every call waits in that one queue: when it is late, everything is late.
- ``cpu``: the share of one core the loop thread itself used over the last second (Python runs on one
  core, so ~100% there is the ceiling whatever the machine has); ``process_cpu``: cores the whole process
  used (pjmedia's clock and I/O threads too), off unless configured.
- ``calls``: live legs against ``sip.max_calls`` less a reserve for the agent and outbound legs the
  admitted callers will need (pjsua answers 486 itself past max_calls, which the edge does not fail over).
- ``media``: conference-bridge slots and RTP ports left in the inbound account's slice of the range.
- ``rate``: new calls admitted per second (a token bucket), off unless configured.

Gates switch on at their threshold and off only below a lower one and after ``hold_seconds``, so a worker
near its limit does not flap; each switch is one log line (never one per refused call). Measuring costs a
timer callback every 50 ms on the loop thread; the per-INVITE check is a few comparisons.
No pjsua2 here: the softswitch passes in how to count calls and free media slots.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Callable

from callcenter import logs, metrics
from callcenter.telephony.settings import CapacitySettings

log = logs.get("admission")

TICK = 0.05           # seconds between measurements
WINDOW = 1.0          # seconds the CPU shares and the lag maximum are taken over
LAG_ALPHA = 0.25      # EWMA weight of the newest lag sample (time constant ~4 ticks = 0.2 s)
MEDIA_RESERVE = 32    # conference slots / RTP port pairs always left free (a call needs 1-3 of each)
GAUGES_EVERY = 4      # ticks between gauge updates (5 per second is plenty for a scrape)
SIGNALS = ("calls", "media", "lag", "cpu", "process_cpu", "rate")


class Gate:
    """One signal's overload state: on when value >= enter, off when value < leave and it has been on
    for at least `hold` seconds."""

    __slots__ = ("enter", "hold", "leave", "on", "refused", "signal", "since")

    def __init__(self, signal: str, enter: float, leave: float, hold: float) -> None:
        self.signal, self.enter, self.leave, self.hold = signal, enter, leave, hold
        self.on = False
        self.since = 0.0
        self.refused = 0     # calls refused for this signal during the current overload

    def update(self, value: float, now: float) -> bool:
        """True when the state changed."""
        if not self.on and value >= self.enter:
            self.on, self.since, self.refused = True, now, 0
            return True
        if self.on and value < self.leave and now - self.since >= self.hold:
            self.on = False
            return True
        return False


def process_cpu_seconds() -> float:
    """user+system seconds of the whole process (every thread)."""
    t = os.times()
    return t.user + t.system


class Admission:
    """The admission decision of one softswitch; `start` it on the loop, ask `refusal()` per INVITE."""

    def __init__(self, settings: CapacitySettings, max_calls: int, live_calls: Callable[[], int],
                 media_free: Callable[[], int] | None = None) -> None:
        s = self.settings = settings
        self.live_calls = live_calls
        self.media_free = media_free
        self.limit = max(1, max_calls - min(s.reserve_calls, max_calls // 2))
        hold = s.hold_seconds
        # Taking calls again only once 5% of the slots are free: at the limit every call that ends
        # would otherwise switch the gate (and log) twice.
        self.gates = {
            "calls": Gate("calls", self.limit, self.limit - max(1, self.limit // 20) + 1, hold),
            # media and rate gates take "how short we are" as their value
            "media": Gate("media", -MEDIA_RESERVE + 1, -2 * MEDIA_RESERVE + 1, hold),
            "lag": Gate("lag", s.loop_lag_seconds, s.loop_lag_seconds / 2, hold),
            "cpu": Gate("cpu", s.loop_cpu or float("inf"), max(0.0, s.loop_cpu - 0.1), hold),
            "process_cpu": Gate("process_cpu", s.process_cpu or float("inf"), s.process_cpu * 0.9, hold),
            "rate": Gate("rate", 1.0, 1.0, hold),
        }
        self._sticky = [self.gates[k] for k in ("media", "lag", "cpu", "process_cpu", "rate")]
        self.lag = 0.0          # smoothed loop lag, seconds
        self.lag_max = 0.0      # worst lag sample over the last WINDOW
        self.loop_cpu = 0.0     # share of one core, loop thread, last WINDOW
        self.process_cpu = 0.0  # cores, whole process, last WINDOW
        self.free_media = -1
        self._samples: collections.deque[tuple[float, float, float, float]] = collections.deque()
        self._rate = s.max_new_calls_per_second
        self._tokens = self._rate
        self._refill_at = time.monotonic()
        self._ticks = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        for name in SIGNALS:
            metrics.ADMISSION_OVERLOADED.labels(signal=name).set(0)

    # -- the timer -------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = loop.call_at(loop.time() + TICK, self._tick, loop.time() + TICK)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self, due: float) -> None:
        assert self._loop is not None
        now = self._loop.time()
        try:
            media = self.media_free() if self.media_free is not None else -1
            self.observe(time.monotonic(), max(0.0, now - due), time.thread_time(), process_cpu_seconds(), media)
        except Exception:  # measuring must never stop: the next tick tries again
            log.exception("admission tick failed")
        nxt = self._loop.time() + TICK
        self._handle = self._loop.call_at(nxt, self._tick, nxt)

    def observe(self, now: float, lag: float, thread_cpu: float, proc_cpu: float, media_free: int = -1) -> None:
        """One measurement: lag of this tick, CPU seconds so far (loop thread, process), free media slots."""
        self.lag += LAG_ALPHA * (lag - self.lag)
        samples = self._samples
        samples.append((now, lag, thread_cpu, proc_cpu))
        while len(samples) > 2 and now - samples[1][0] >= WINDOW:
            samples.popleft()
        t0, _, c0, p0 = samples[0]
        span = now - t0
        if span > 0:
            self.loop_cpu = (thread_cpu - c0) / span
            self.process_cpu = (proc_cpu - p0) / span
        self.lag_max = max(s[1] for s in samples)
        self.free_media = media_free
        g = self.gates
        self._set(g["lag"], self.lag, now)
        self._set(g["cpu"], self.loop_cpu, now)
        self._set(g["process_cpu"], self.process_cpu, now)
        if media_free >= 0:
            self._set(g["media"], -media_free, now)
        self._set(g["calls"], self.live_calls(), now)
        # The rate gate is switched on by refusal(); it goes off once the bucket has refilled.
        if g["rate"].on:
            self._refill(now)
            self._set(g["rate"], 0.0 if self._tokens >= self._rate / 2 else 1.0, now)
        self._ticks += 1
        if self._ticks % GAUGES_EVERY == 0:
            metrics.LOOP_LAG_SECONDS.set(self.lag)
            metrics.LOOP_LAG_MAX_SECONDS.set(self.lag_max)
            metrics.LOOP_CPU_RATIO.set(self.loop_cpu)
            metrics.PROCESS_CPU_RATIO.set(self.process_cpu)
            if media_free >= 0:
                metrics.MEDIA_SLOTS_FREE.set(media_free)

    # -- the decision ----------------------------------------------------------------------------

    def refusal(self) -> str | None:
        """None to take this new call, else the signal that refuses it ('overload_<signal>' in metrics)."""
        now = time.monotonic()
        calls = self.gates["calls"]
        self._set(calls, self.live_calls(), now)
        if calls.on:
            return self._refused(calls)
        for gate in self._sticky:
            if gate.on:
                return self._refused(gate)
        if self._rate > 0:
            self._refill(now)
            if self._tokens < 1.0:
                self._set(self.gates["rate"], 1.0, now)
                return self._refused(self.gates["rate"])
            self._tokens -= 1.0
        return None

    @property
    def overloaded(self) -> list[str]:
        return [name for name, g in self.gates.items() if g.on]

    def _refused(self, gate: Gate) -> str:
        gate.refused += 1
        return gate.signal

    def _refill(self, now: float) -> None:
        # A bucket of one second's worth: bursts up to the rate, then the rate itself.
        self._tokens = min(self._rate, self._tokens + (now - self._refill_at) * self._rate)
        self._refill_at = now

    def _set(self, gate: Gate, value: float, now: float) -> None:
        if not gate.update(value, now):
            return
        metrics.ADMISSION_OVERLOADED.labels(signal=gate.signal).set(1 if gate.on else 0)
        figures = {"loop_lag_ms": round(self.lag * 1000, 1), "loop_cpu": round(self.loop_cpu, 2),
                   "process_cpu": round(self.process_cpu, 2), "live_calls": self.live_calls(),
                   "call_limit": self.limit, "media_free": self.free_media}
        if gate.on:
            log.warning("overload: refusing new calls", signal=gate.signal, threshold=gate.enter, **figures)
        else:
            log.info("overload over: taking new calls", signal=gate.signal, refused=gate.refused,
                     lasted_ms=round((now - gate.since) * 1000), still_overloaded=self.overloaded, **figures)
