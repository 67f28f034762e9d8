"""The ``events:`` and ``webhooks:`` sections of callcenter.yaml (read at start, through yamlsrc.Reader).

    events:
      heartbeat: 15s            # an SSE comment this often on every open stream (proxies close idle ones)
      queue_stats_every: 2s     # queue.stats: each queue's figures, published when they change
      resume_max: 10000         # events a reconnecting page is sent after its Last-Event-ID, at most
      max_streams: 5000         # open streams a worker serves (more: 503 + Retry-After)
      max_streams_per_user: 10  # open streams of one user on a worker (more: 429; a tab is one)
    webhooks: {...}             # callcenter.events.webhooks
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.events.webhooks import Webhook, parse
from callcenter.yamlsrc import Reader


@dataclass(frozen=True)
class EventSettings:
    heartbeat: float = 15.0
    queue_stats_every: float = 2.0
    resume_max: int = 10_000
    max_streams: int = 5000
    max_streams_per_user: int = 10
    webhooks: tuple[Webhook, ...] = ()


def parse_settings(r: Reader, env: dict[str, str] | None = None) -> EventSettings:
    """``env``: where webhooks' secrets are read (the process environment by default)."""
    e = r.section("events", {"heartbeat", "queue_stats_every", "resume_max", "max_streams", "max_streams_per_user"})
    d = EventSettings()
    return EventSettings(heartbeat=e.duration("heartbeat", d.heartbeat, 0.05, 300),
                         queue_stats_every=e.duration("queue_stats_every", d.queue_stats_every, 0.1, 3600),
                         resume_max=e.integer("resume_max", d.resume_max, 0, 1_000_000),
                         max_streams=e.integer("max_streams", d.max_streams, 1, 100_000),
                         max_streams_per_user=e.integer("max_streams_per_user", d.max_streams_per_user, 1, 1000),
                         webhooks=parse(r, env))
