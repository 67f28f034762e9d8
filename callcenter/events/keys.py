"""Every Redis key of the event bus (relative names below; ``prefix`` is the deployment's ``cc:``)."""

from __future__ import annotations

# The one stream of events. routing/lua/lib.lua writes it too (EVENTS_KEY there; a test holds them equal).
STREAM = "ev:stream"
STREAM_MAX = 100_000                  # entries kept (MAXLEN ~): about a busy day's resume window
WEBHOOK_GROUP = "webhooks"           # the consumer group every worker's webhook deliverer reads in


def stream(prefix: str) -> str:
    return prefix + STREAM


def dead_letters(prefix: str) -> str:
    """Stream: events a webhook never accepted within max_attempts (hook, event id, error, attempts)."""
    return prefix + "ev:wh:dead"


def delivered(prefix: str, hook: str, event_id: str) -> str:
    """String: set once ``hook`` accepted ``event_id`` (an entry reclaimed from a dead worker is not sent
    again to the hooks that already took it)."""
    return f"{prefix}ev:wh:done:{hook}:{event_id}"


def stats_guard(prefix: str) -> str:
    """String: held by the worker publishing queue.stats this period (one publisher across workers)."""
    return prefix + "ev:stats_guard"


def stats_last(prefix: str) -> str:
    """Hash: queue -> the last queue.stats figures published (JSON), so unchanged ones are not repeated."""
    return prefix + "ev:stats_last"
