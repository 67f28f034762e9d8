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
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

WAIT_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)
HANDLE_BUCKETS = (10, 30, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 3600)

# --- calls --------------------------------------------------------------------------------------
CALLS_TOTAL = Counter("callcenter_calls_total", "Calls finished, by direction and result.",
                      ["direction", "result"])
CALLS_IN_PROGRESS = Gauge("callcenter_calls_in_progress", "Calls up on this worker.", ["direction"])
SIP_ERRORS_TOTAL = Counter("callcenter_sip_errors_total", "SIP failures by final status code.", ["code"])
SIP_REFUSED_TOTAL = Counter("callcenter_sip_refused_total",
                            "SIP requests refused: untrusted_source (403), source_cap (486), refer (603), "
                            "replaces (403), tcp_cap (connection closed), draining and overload_<signal> "
                            "(503 with Retry-After; signals: calls, media, lag, cpu, process_cpu, rate).",
                            ["reason"])
SIP_WATCHDOG_HANGUPS_TOTAL = Counter("callcenter_sip_watchdog_hangups_total",
                                     "Calls the worker hung up itself: rtp_timeout, max_call_seconds.",
                                     ["reason"])
# --- overload admission (telephony/admission.py) ---------------------------------------------------
ADMISSION_OVERLOADED = Gauge("callcenter_admission_overloaded",
                             "1 while this signal makes the worker refuse new calls with 503.", ["signal"])
LOOP_LAG_SECONDS = Gauge("callcenter_loop_lag_seconds", "Event-loop lag, smoothed (EWMA of a 50 ms timer's lateness).")
LOOP_LAG_MAX_SECONDS = Gauge("callcenter_loop_lag_max_seconds", "Worst event-loop lag over the last second.")
LOOP_CPU_RATIO = Gauge("callcenter_loop_cpu_ratio", "Share of one core the event-loop thread used over the last second.")
PROCESS_CPU_RATIO = Gauge("callcenter_process_cpu_ratio", "Cores the worker process used over the last second.")
MEDIA_SLOTS_FREE = Gauge("callcenter_media_slots_free",
                         "Calls' worth of media left: conference-bridge slots or inbound RTP port pairs, the fewer.")
IVR_NODES_TOTAL = Counter("callcenter_ivr_nodes_total", "IVR nodes executed.", ["script", "node"])

# --- queues (per worker; the collector adds the shared state) --------------------------------------
QUEUE_OFFERED_TOTAL = Counter("callcenter_queue_offered_total", "Calls that entered a queue.", ["queue"])
QUEUE_ANSWERED_TOTAL = Counter("callcenter_queue_answered_total", "Queued calls answered by an agent.", ["queue"])
QUEUE_ABANDONED_TOTAL = Counter("callcenter_queue_abandoned_total",
                                "Queued calls the caller hung up on (short abandons included).", ["queue"])
QUEUE_SHORT_ABANDONED_TOTAL = Counter("callcenter_queue_short_abandoned_total",
                                      "Abandons under the short-abandon threshold.", ["queue"])
QUEUE_ANSWERED_IN_SL_TOTAL = Counter("callcenter_queue_answered_within_sl_total",
                                     "Queued calls answered within the queue's service-level target.", ["queue"])
QUEUE_TIMEOUTS_TOTAL = Counter("callcenter_queue_timeouts_total", "Calls that left a queue on its timeout.",
                               ["queue"])
QUEUE_CALLBACKS_TOTAL = Counter("callcenter_queue_callbacks_total", "Callers who chose a callback.", ["queue"])
QUEUE_TRANSFERS_TOTAL = Counter("callcenter_queue_transfers_total", "Calls transferred out by an agent.",
                                ["queue"])
QUEUE_WAIT_SECONDS = Histogram("callcenter_queue_wait_seconds", "Time callers waited in queue, by outcome.",
                               ["queue", "outcome"], buckets=WAIT_BUCKETS)
HANDLE_SECONDS = Histogram("callcenter_handle_seconds", "Handle time: talk + hold + wrap-up.", ["queue"],
                           buckets=HANDLE_BUCKETS)
AGENT_OFFERS_TOTAL = Counter("callcenter_agent_offers_total", "Calls offered to agents' phones, by result.",
                             ["queue", "result"])
CALL_HOLDS_TOTAL = Counter("callcenter_call_holds_total",
                           "Bridged callers put on hold, by who asked: api, phone (the agent's re-INVITE).",
                           ["queue", "by"])
CALL_HOLD_SECONDS = Histogram("callcenter_call_hold_seconds", "One hold span of a bridged caller.", ["queue"],
                              buckets=HANDLE_BUCKETS)

# --- dialer -------------------------------------------------------------------------------------
DIALER_ATTEMPTS_TOTAL = Counter("callcenter_dialer_attempts_total", "Outbound dial attempts by result.",
                                ["campaign", "result"])
DIALER_DROPPED_TOTAL = Counter("callcenter_dialer_dropped_total",
                               "Answered outbound calls with no agent free (regulated abandon).", ["campaign"])
DIALER_BLOCKED_TOTAL = Counter("callcenter_dialer_blocked_total",
                               "Numbers not dialed by a compliance rule (DNC, calling hours, attempt cap).",
                               ["campaign", "reason"])
DIALER_LINES_IN_USE = Gauge("callcenter_dialer_lines_in_use", "Outbound lines ringing or connected.",
                            ["campaign"])
DIALER_PACING_RATIO = Gauge("callcenter_dialer_pacing_ratio", "Lines dialed per available agent.", ["campaign"])
DIAL_REFUSED_TOTAL = Counter("callcenter_dial_refused_total",
                             "Numbers the dial policy refused to dial (class, DNC, per-number/per-source cap).",
                             ["purpose", "reason"])

# --- CDR pipeline -------------------------------------------------------------------------------
CDR_WRITTEN_TOTAL = Counter("callcenter_cdr_written_total", "Records committed to the CDR store.", ["kind"])
CDR_WRITE_ERRORS_TOTAL = Counter("callcenter_cdr_write_errors_total",
                                 "CDR writer failures (store unavailable, record rejected).", ["reason"])

# --- call recording (callcenter/calls/recording.py) ------------------------------------------------
RECORDINGS_STARTED_TOTAL = Counter("callcenter_recordings_started_total", "Call recordings started.")
RECORDING_FAILURES_TOTAL = Counter("callcenter_recording_failures_total",
                                   "Recordings lost (the call went on unrecorded): disk_full, write_error, too_many.",
                                   ["reason"])
RECORDINGS_PURGED_TOTAL = Counter("callcenter_recordings_purged_total", "Recordings deleted past their retention.")

# --- voicemail inbox (callcenter/calls/voicemail.py) -----------------------------------------------
VOICEMAILS_TOTAL = Counter("callcenter_voicemails_total", "Voice messages saved, by queue (box).", ["queue"])

# --- agent click-to-call (callcenter/calls/click_to_call.py) ---------------------------------------
CLICK_TO_CALL_TOTAL = Counter("callcenter_click_to_call_total",
                              "Agent click-to-call dials started, by how they ended: answered, agent_<result> (the "
                              "agent's phone not answered: the customer not dialed), customer_<result>, failed.",
                              ["result"])

# --- supervisor monitoring (callcenter/calls/monitor.py) -------------------------------------------
MONITOR_SESSIONS_TOTAL = Counter("callcenter_monitor_sessions_total",
                                 "Supervisor monitor sessions ended, by result: answered, or why the supervisor's "
                                 "phone was not (no_answer, busy, rejected, failed, stopped, call_ended).",
                                 ["result"])

# --- conference (callcenter/calls/conference.py) ----------------------------------------------------
CONFERENCE_PARTIES_TOTAL = Counter("callcenter_conference_parties_total",
                                   "Conference parties: added (rung), then how each ended: answered, or why it was "
                                   "not (no_answer, busy, rejected, failed, call_ended).",
                                   ["result"])

# --- call-scoped requests answered by the worker holding the call (callcenter/api/forward.py) ------
HTTP_FORWARDED_TOTAL = Counter("callcenter_http_forwarded_requests_total",
                               "Call-scoped API requests this worker admitted and forwarded to the worker holding "
                               "the call, by route and result: answered (any status), gone (that worker is dead), "
                               "unreachable, timeout.", ["route", "result"])

# --- HTTP authentication ----------------------------------------------------------------------------
AUTH_LOGINS_TOTAL = Counter("callcenter_auth_logins_total",
                            "Login attempts by result: ok, failed (wrong name or password), throttled (429).",
                            ["result"])
AUTH_DENIED_TOTAL = Counter("callcenter_auth_denied_total",
                            "API requests refused: unauthenticated (401), forbidden (403), csrf (403).",
                            ["reason"])

# --- event bus, push and webhooks (callcenter/events) -----------------------------------------------
EVENTS_PUBLISHED_TOTAL = Counter("callcenter_events_published_total",
                                 "Call events this worker put on the bus (agent and queue ones come from routing's "
                                 "Lua), by result: ok, failed (Redis unreachable).", ["result"])
AGENTS_PHONE_REGISTERED = Gauge("callcenter_agents_phone_registered",
                                "Agents with a phone registered at the SIP edge, as last polled (routing/phones.py; "
                                "0 while no edge is polled).")
EVENT_STREAMS_OPEN = Gauge("callcenter_event_streams_open", "Server-Sent Events connections open (GET /events).")
WEBHOOK_DELIVERIES_TOTAL = Counter("callcenter_webhook_deliveries_total",
                                   "Webhook delivery attempts by webhook and result: delivered, failed (will retry), "
                                   "dead (dead-lettered after max_attempts).", ["webhook", "result"])
WEBHOOK_DELIVERY_SECONDS = Histogram("callcenter_webhook_delivery_seconds",
                                     "From an event's publication to its webhook's 2xx, retries included.",
                                     ["webhook"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900))
WEBHOOK_DEAD_LETTERS_TOTAL = Counter("callcenter_webhook_dead_letters_total",
                                     "Events a webhook never accepted within max_attempts (kept in the dead-letter "
                                     "stream, GET /admin/webhooks/dead).", ["webhook"])


class QueueFigures(Protocol):
    """One queue's shared state, as ``routing.wallboard.QueueStats`` reads it."""

    @property
    def queue(self) -> str: ...
    @property
    def waiting(self) -> int: ...
    @property
    def oldest_wait_seconds(self) -> float | None: ...
    @property
    def agents_by_state(self) -> Mapping[str, int]: ...
    @property
    def offered_today(self) -> int: ...
    @property
    def answered_today(self) -> int: ...
    @property
    def abandoned_today(self) -> int: ...
    @property
    def answered_within_sl_today(self) -> int: ...
    @property
    def service_level(self) -> float | None: ...


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
        up = GaugeMetricFamily("callcenter_queue_collector_up", "1 if the queue state could be read from Redis.")
        waiting = GaugeMetricFamily("callcenter_queue_waiting_calls", "Callers waiting in queue.", labels=["queue"])
        oldest = GaugeMetricFamily("callcenter_queue_oldest_wait_seconds", "Wait of the longest-waiting caller.",
                                   labels=["queue"])
        q_agents = GaugeMetricFamily("callcenter_queue_agents", "Agents serving the queue, by state.",
                                     labels=["queue", "state"])
        agents = GaugeMetricFamily("callcenter_agents", "Logged-in agents by state.", labels=["state"])
        offered = GaugeMetricFamily("callcenter_queue_offered_today", "Calls offered since local midnight.",
                                    labels=["queue"])
        answered = GaugeMetricFamily("callcenter_queue_answered_today", "Calls answered since local midnight.",
                                     labels=["queue"])
        abandoned = GaugeMetricFamily("callcenter_queue_abandoned_today", "Calls abandoned since local midnight.",
                                      labels=["queue"])
        in_sl = GaugeMetricFamily("callcenter_queue_answered_within_sl_today",
                                  "Calls answered within the service-level target since local midnight.",
                                  labels=["queue"])
        sl = GaugeMetricFamily("callcenter_queue_service_level_ratio",
                               "Today's service level (0..1) as the router computes it live (see docs/KPIS.md).",
                               labels=["queue"])
        backlog = GaugeMetricFamily("callcenter_cdr_backlog_entries", "CDR entries in Redis not yet in the store.")
        families: list[Metric] = [waiting, oldest, q_agents, agents, offered, answered, abandoned, in_sl, sl]
        try:
            for qs in self._queue_stats():
                waiting.add_metric([qs.queue], float(qs.waiting))
                oldest.add_metric([qs.queue], float(qs.oldest_wait_seconds or 0.0))
                for state, n in sorted(qs.agents_by_state.items()):
                    q_agents.add_metric([qs.queue, state], float(n))
                offered.add_metric([qs.queue], float(qs.offered_today))
                answered.add_metric([qs.queue], float(qs.answered_today))
                abandoned.add_metric([qs.queue], float(qs.abandoned_today))
                in_sl.add_metric([qs.queue], float(qs.answered_within_sl_today))
                if qs.service_level is not None:
                    sl.add_metric([qs.queue], float(qs.service_level))
            for state, n in sorted(self._agent_states().items()):
                agents.add_metric([state], float(n))
            backlog.add_metric([], float(self._cdr_backlog()))
            families.append(backlog)
            up.add_metric([], 1.0)
        except Exception:  # noqa: BLE001 - a scrape must answer even when Redis does not
            # Half-read state would draw misleading graphs: report only that reading failed.
            up.add_metric([], 0.0)
            families = []
        duration = GaugeMetricFamily("callcenter_queue_collector_duration_seconds",
                                     "Time spent reading queue state for this scrape.")
        duration.add_metric([], time.monotonic() - started)
        return [up, duration, *families]


def register_queue_collector(collector: QueueCollector, registry: CollectorRegistry = REGISTRY) -> QueueCollector:
    registry.register(collector)
    return collector


def metrics_resource(registry: CollectorRegistry = REGISTRY) -> Any:
    """The twisted.web resource serving /metrics (runs the scrape in the reactor's thread pool)."""
    from prometheus_client.twisted import MetricsResource

    return MetricsResource(registry)
