"""Redis keys of the CDR buffer. Every key carries the deployment prefix (default ``cc:``)."""

from __future__ import annotations

GROUP = "cdr-writers"   # the consumer group every writer joins


def stream(prefix: str = "cc:") -> str:
    """The durable buffer: a stream of {"t": kind, "d": json} entries, AOF-persisted by Redis."""
    return f"{prefix}cdr:stream"


def dead_letters(prefix: str = "cc:") -> str:
    """Entries the store refused on their own merit (not an outage), kept for an operator to inspect."""
    return f"{prefix}cdr:dead"
