"""What the tests of routing's view of the edge's registrations read from a worker: the agent grid, the agent's
events on the bus, the registered-phones gauge (tests/test_edge_phones_sip.py, test_edge_phones_tls_sip.py)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import redis
from worker_proc import METRICS_TOKEN, WorkerProc

from callcenter.events.keys import EventKeys


def until(what: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def agent_info(w: WorkerProc, agent: str) -> dict[str, Any]:
    st, body = w.http("GET", f"/agents/{agent}")        # what the wallboard's agent grid shows
    assert st == 200, body
    return dict(body)


def agent_states(w: WorkerProc, agent: str) -> list[tuple[str, str | None]]:
    """The agent's agent.state events on the bus, in order: (state, reason)."""
    r = redis.Redis.from_url(w.redis_url, decode_responses=True)
    try:
        entries = r.xrange(EventKeys("cc:").stream())
    finally:
        r.close()
    out = []
    for _, fields in entries:
        ev = json.loads(fields["data"])
        if ev.get("type") == "agent.state" and ev.get("agent") == agent:
            out.append((ev["state"], ev.get("reason")))
    return out


def phones_gauge(w: WorkerProc) -> float | None:
    req = urllib.request.Request(f"http://127.0.0.1:{w.http_port}/metrics",
                                 headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(r"^callcenter_agents_phone_registered (\S+)$", text, re.M)
    return float(m.group(1)) if m else None
