"""Every Redis key of the event bus (callcenter.keyspace: one declaration per key)."""

from __future__ import annotations

from callcenter.keyspace import KeySpace, key0, key2


class EventKeys(KeySpace):
    # routing's Lua writes it too, as E.stream() (routing/scripts.py builds it from this table)
    stream = key0("ev:stream", "stream", "the event bus: agent, call and queue changes")
    dead_letters = key0("ev:wh:dead", "stream", "events a webhook never accepted within max_attempts (hook, event "
                                               "id, error, attempts, the event)")
    delivered = key2("ev:wh:done:{hook}:{event}", "string", "set once the hook accepted the event: an entry "
                                                          "reclaimed from a dead worker is not sent to it again")
    stats_guard = key0("ev:stats_guard", "string", "held by the worker publishing queue.stats this period")
    stats_last = key0("ev:stats_last", "hash", "queue -> the last queue.stats figures published (JSON)")


STREAM_MAX = 100_000       # entries kept (MAXLEN ~): about a busy day's resume window
WEBHOOK_GROUP = "webhooks"  # the consumer group every worker's webhook deliverer reads in
