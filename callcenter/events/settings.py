"""The ``events:`` and ``webhooks:`` sections of callcenter.yaml (read at start, through yamlsrc.Reader).

    events:
      heartbeat: 15s            # an SSE comment this often on every open stream (proxies close idle ones)
      queue_stats_every: 2s     # queue.stats: each queue's figures, published when they change
      resume_max: 10000         # events a reconnecting page is sent after its Last-Event-ID, at most
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
    webhooks: tuple[Webhook, ...] = ()


def parse_settings(r: Reader, env: dict[str, str] | None = None) -> EventSettings:
    """``env``: where webhooks' secrets are read (the process environment by default)."""
    e = r.section("events", {"heartbeat", "queue_stats_every", "resume_max"})
    d = EventSettings()
    return EventSettings(heartbeat=e.duration("heartbeat", d.heartbeat, 0.05, 300),
                         queue_stats_every=e.duration("queue_stats_every", d.queue_stats_every, 0.1, 3600),
                         resume_max=e.integer("resume_max", d.resume_max, 0, 1_000_000),
                         webhooks=parse(r, env))
