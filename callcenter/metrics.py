"""Prometheus metrics, one place.

Two kinds:

* counters/histograms/gauges each worker updates as calls happen (module-level objects below);
  Prometheus sums them over workers (``sum by (queue) (rate(...))``).
* ``QueueCollector``: the shared queue state lives in Redis, so it is read at scrape time
  (waiting callers, oldest wait, agents by state, today's service level). Scrape it from one
  worker or from all: the values are the same on each, so dashboards use ``max by (queue)``.

This module imports nothing of the package: what the collector reads is passed in as callables by the
composition root (``worker.py``: routing's wallboard for the queues and agents, the CDR stream's length).

No label ever carries a phone number or a call id (cardinality, and a metric store is not a
contact list): labels are queue, campaign, agent state, direction, result, SIP code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

WAIT_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)
HANDLE_BUCKETS = (10, 30, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 3600)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

# Every metric's help text, by name: metrics.yaml is the catalogue an operator reads (and the one place a help
# text is written); a declaration below names its metric and labels, and one with no help there fails here.
HELP: dict[str, str] = yaml.safe_load(Path(__file__).with_name("metrics.yaml").read_text(encoding="utf-8"))


# ``labels``: the label names, space-separated ("" for none), as namedtuple takes its fields.
def counter(name: str, labels: str) -> Counter:
    return Counter(name, HELP[name], labels.split())


def gauge(name: str, labels: str) -> Gauge:
    return Gauge(name, HELP[name], labels.split())


def histogram(buckets: Sequence[float]) -> Callable[[str, str], Histogram]:
    """What declares histograms with these buckets: ``waits = histogram(WAIT_BUCKETS)``, then
    ``waits(name, labels)``."""
    def declare(name: str, labels: str) -> Histogram:
        return Histogram(name, HELP[name], labels.split(), buckets=buckets)
    return declare


waits = histogram(WAIT_BUCKETS)            # a caller's seconds in a queue
handle_times = histogram(HANDLE_BUCKETS)   # seconds of a call's handling, or of its holds
deliveries = histogram(DELIVERY_BUCKETS)   # seconds a webhook delivery takes


def family(name: str, *labels: str) -> GaugeMetricFamily:
    """One gauge family of a scrape-time collector."""
    return GaugeMetricFamily(name, HELP[name], labels=list(labels))


# --- calls --------------------------------------------------------------------------------------
CALLS_TOTAL = counter("callcenter_calls_total", "direction result")
CALLS_IN_PROGRESS = gauge("callcenter_calls_in_progress", "direction")
SIP_ERRORS_TOTAL = counter("callcenter_sip_errors_total", "code")
SIP_REFUSED_TOTAL = counter("callcenter_sip_refused_total", "reason")
SIP_WATCHDOG_HANGUPS_TOTAL = counter("callcenter_sip_watchdog_hangups_total", "reason")
# --- overload admission (telephony/admission.py) ---------------------------------------------------
ADMISSION_OVERLOADED = gauge("callcenter_admission_overloaded", "signal")
LOOP_LAG_SECONDS = gauge("callcenter_loop_lag_seconds", "")
LOOP_LAG_MAX_SECONDS = gauge("callcenter_loop_lag_max_seconds", "")
LOOP_CPU_RATIO = gauge("callcenter_loop_cpu_ratio", "")
PROCESS_CPU_RATIO = gauge("callcenter_process_cpu_ratio", "")
MEDIA_SLOTS_FREE = gauge("callcenter_media_slots_free", "")
IVR_NODES_TOTAL = counter("callcenter_ivr_nodes_total", "script node")

# --- queues (per worker; the collector adds the shared state) --------------------------------------
QUEUE_OFFERED_TOTAL = counter("callcenter_queue_offered_total", "queue")
QUEUE_ANSWERED_TOTAL = counter("callcenter_queue_answered_total", "queue")
QUEUE_ABANDONED_TOTAL = counter("callcenter_queue_abandoned_total", "queue")
QUEUE_SHORT_ABANDONED_TOTAL = counter("callcenter_queue_short_abandoned_total", "queue")
QUEUE_ANSWERED_IN_SL_TOTAL = counter("callcenter_queue_answered_within_sl_total", "queue")
QUEUE_TIMEOUTS_TOTAL = counter("callcenter_queue_timeouts_total", "queue")
QUEUE_CALLBACKS_TOTAL = counter("callcenter_queue_callbacks_total", "queue")
QUEUE_TRANSFERS_TOTAL = counter("callcenter_queue_transfers_total", "queue")
QUEUE_WAIT_SECONDS = waits("callcenter_queue_wait_seconds", "queue outcome")
HANDLE_SECONDS = handle_times("callcenter_handle_seconds", "queue")
AGENT_OFFERS_TOTAL = counter("callcenter_agent_offers_total", "queue result")
CALL_HOLDS_TOTAL = counter("callcenter_call_holds_total", "queue by")
CALL_HOLD_SECONDS = handle_times("callcenter_call_hold_seconds", "queue")

# --- dialer -------------------------------------------------------------------------------------
DIALER_ATTEMPTS_TOTAL = counter("callcenter_dialer_attempts_total", "campaign result")
DIALER_DROPPED_TOTAL = counter("callcenter_dialer_dropped_total", "campaign")
DIALER_BLOCKED_TOTAL = counter("callcenter_dialer_blocked_total", "campaign reason")
DIALER_LINES_IN_USE = gauge("callcenter_dialer_lines_in_use", "campaign")
DIALER_PACING_RATIO = gauge("callcenter_dialer_pacing_ratio", "campaign")
DIAL_REFUSED_TOTAL = counter("callcenter_dial_refused_total", "purpose reason")

# --- CDR pipeline -------------------------------------------------------------------------------
CDR_WRITTEN_TOTAL = counter("callcenter_cdr_written_total", "kind")
CDR_WRITE_ERRORS_TOTAL = counter("callcenter_cdr_write_errors_total", "reason")

# --- call recording (callcenter/calls/recording.py) ------------------------------------------------
RECORDINGS_STARTED_TOTAL = counter("callcenter_recordings_started_total", "")
RECORDING_FAILURES_TOTAL = counter("callcenter_recording_failures_total", "reason")
RECORDINGS_PURGED_TOTAL = counter("callcenter_recordings_purged_total", "")

# --- voicemail inbox (callcenter/calls/voicemail.py) -----------------------------------------------
VOICEMAILS_TOTAL = counter("callcenter_voicemails_total", "queue")

# --- agent click-to-call (callcenter/calls/click_to_call.py) ---------------------------------------
CLICK_TO_CALL_TOTAL = counter("callcenter_click_to_call_total", "result")

# --- supervisor monitoring (callcenter/calls/monitor.py) -------------------------------------------
MONITOR_SESSIONS_TOTAL = counter("callcenter_monitor_sessions_total", "result")

# --- conference (callcenter/calls/conference.py) ----------------------------------------------------
CONFERENCE_PARTIES_TOTAL = counter("callcenter_conference_parties_total", "result")

# --- call-scoped requests answered by the worker holding the call (callcenter/api/forward.py) ------
HTTP_FORWARDED_TOTAL = counter("callcenter_http_forwarded_requests_total", "route result")

# --- HTTP authentication ----------------------------------------------------------------------------
AUTH_LOGINS_TOTAL = counter("callcenter_auth_logins_total", "result")
AUTH_DENIED_TOTAL = counter("callcenter_auth_denied_total", "reason")

# --- event bus, push and webhooks (callcenter/events) -----------------------------------------------
EVENTS_PUBLISHED_TOTAL = counter("callcenter_events_published_total", "result")
AGENTS_PHONE_REGISTERED = gauge("callcenter_agents_phone_registered", "")
EVENT_STREAMS_OPEN = gauge("callcenter_event_streams_open", "")
WEBHOOK_DELIVERIES_TOTAL = counter("callcenter_webhook_deliveries_total", "webhook result")
WEBHOOK_DELIVERY_SECONDS = deliveries("callcenter_webhook_delivery_seconds", "webhook")
WEBHOOK_DEAD_LETTERS_TOTAL = counter("callcenter_webhook_dead_letters_total", "webhook")


class QueueFigures(Protocol):
    """One queue's shared state, as ``routing.wallboard.QueueStats`` reads it."""

    @property
    def oldest_wait_seconds(self) -> float | None: ...
    @property
    def queue(self) -> str: ...
    @property
    def waiting(self) -> int: ...
    @property
    def agents_by_state(self) -> Mapping[str, int]: ...
    @property
    def offered_today(self) -> int: ...
    @property
    def answered_today(self) -> int: ...
    @property
    def abandoned_today(self) -> int: ...
    @property
    def service_level(self) -> float | None: ...
    @property
    def answered_within_sl_today(self) -> int: ...


# The collector's one-sample-a-queue gauges and what each reads (None: no sample, e.g. no service level yet).
PER_QUEUE: tuple[tuple[str, Callable[[QueueFigures], float | None]], ...] = (
    ("callcenter_queue_waiting_calls", lambda q: q.waiting),
    ("callcenter_queue_oldest_wait_seconds", lambda q: q.oldest_wait_seconds or 0.0),
    ("callcenter_queue_offered_today", lambda q: q.offered_today),
    ("callcenter_queue_answered_today", lambda q: q.answered_today),
    ("callcenter_queue_abandoned_today", lambda q: q.abandoned_today),
    ("callcenter_queue_answered_within_sl_today", lambda q: q.answered_within_sl_today),
    ("callcenter_queue_service_level_ratio", lambda q: q.service_level),
)


class QueueCollector(Collector):
    """Reads the shared queue state at scrape time, through the callables it is given (each reads Redis):
    ``queue_stats()`` every queue's figures, ``agent_states()`` logged-in agents by state,
    ``cdr_backlog()`` the CDR entries not yet in the store."""

    def __init__(self, queue_stats: Callable[[], Iterable[QueueFigures]],
                 agent_states: Callable[[], Mapping[str, int]], cdr_backlog: Callable[[], int]) -> None:
        self._queue_stats = queue_stats
        self._agent_states = agent_states
        self._cdr_backlog = cdr_backlog

    def describe(self) -> Iterable[Metric]:
        # Unchecked registration: describing would mean reading Redis at register time.
        return []

    def collect(self) -> Iterable[Metric]:
        started = time.monotonic()
        up = family("callcenter_queue_collector_up")
        per_queue = {name: family(name, "queue") for name, _ in PER_QUEUE}
        q_agents = family("callcenter_queue_agents", "queue", "state")
        agents = family("callcenter_agents", "state")
        backlog = family("callcenter_cdr_backlog_entries")
        try:
            for qs in self._queue_stats():
                for name, read in PER_QUEUE:
                    if (v := read(qs)) is not None:
                        per_queue[name].add_metric([qs.queue], float(v))
                for state, n in sorted(qs.agents_by_state.items()):
                    q_agents.add_metric([qs.queue, state], float(n))
            for state, n in sorted(self._agent_states().items()):
                agents.add_metric([state], float(n))
            backlog.add_metric([], float(self._cdr_backlog()))
            families: list[Metric] = [*per_queue.values(), q_agents, agents, backlog]
            up.add_metric([], 1.0)
        except Exception:  # noqa: BLE001 - a scrape must answer even when Redis does not
            # Half-read state would draw misleading graphs: report only that reading failed.
            up.add_metric([], 0.0)
            families = []
        duration = family("callcenter_queue_collector_duration_seconds")
        duration.add_metric([], time.monotonic() - started)
        return [up, duration, *families]


def register_queue_collector(collector: QueueCollector, registry: CollectorRegistry = REGISTRY) -> QueueCollector:
    registry.register(collector)
    return collector


def metrics_resource(registry: CollectorRegistry = REGISTRY) -> Any:
    """The twisted.web resource serving /metrics (runs the scrape in the reactor's thread pool)."""
    from prometheus_client.twisted import MetricsResource

    return MetricsResource(registry)
