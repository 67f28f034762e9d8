"""What an event is, what the call layer's queue log becomes on the bus, and who may see what.

An event is one JSON object: ``type``, ``ts`` (epoch seconds) and, where they apply, ``call_id``,
``agent``, ``queue`` and the type's own fields (docs/EVENTS.md lists them). Its id is the Redis stream
id it was stored under.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from callcenter.auth.roles import ADMIN, AGENT, CAMPAIGN_MANAGER, SUPERVISOR
from callcenter.privacy import mask_number

Event = dict[str, Any]

# the call layer's queue-log lines (cdr.record EVENTS) that are call events on the bus
FROM_QUEUE_LOG = {
    "OFFER": "call.offered", "RINGNOANSWER": "call.offer_missed", "CONNECT": "call.answered",
    "HOLD": "call.held", "UNHOLD": "call.unheld", "TRANSFER": "call.transferred",
    "COMPLETECALLER": "call.ended", "COMPLETEAGENT": "call.ended", "ABANDON": "call.abandoned",
    "EXITWITHTIMEOUT": "call.timeout", "EXITEMPTY": "call.rejected", "CALLBACK": "call.callback",
    "WRAPUPEND": "call.wrapup", "CONFERENCE_ADD": "call.conference",
}
# what a queue-log line's data is called on the bus
RENAMED = {"holdtime": "wait_s", "talktime": "talk_s", "onhold": "hold_s", "waited": "wait_s",
           "ringtime": "ring_s"}
# the screen pop of call.offered: the IVR's variables an agent's page may show (sensitive ones are
# already "***": ivr.runner's shown()); anything else the flow set stays out
SCREEN_POP = ("name", "customer_id", "vip", "language", "segment", "ivr_path", "ivr_digits")
MAX_FIELD = 256          # characters of one screen-pop value


def from_queue_log(event: str, call_id: str | None, queue: str | None, agent_id: str | None,
                   data: dict[str, Any], ts: float) -> Event | None:
    """The bus event of one queue-log line (None: not a call event)."""
    kind = FROM_QUEUE_LOG.get(event)
    if kind is None:
        return None
    ev: Event = {"type": kind, "ts": ts, "call_id": call_id, "queue": queue}
    if agent_id:
        ev["agent"] = agent_id
    for k, v in data.items():
        if v is not None:
            ev[RENAMED.get(k, k)] = v
    if event.startswith("COMPLETE"):
        ev["cause"] = "caller_hangup" if event == "COMPLETECALLER" else "agent_hangup"
    return ev


def screen_pop(caller: str, variables: dict[str, Any], enqueued: float, now: float) -> dict[str, Any]:
    """call.offered's payload beyond ids: the caller's number (masked later for all but the agent) and
    what the IVR learned, so the agent's page needs no second request."""
    shown = {k: str(v)[:MAX_FIELD] for k, v in variables.items() if k in SCREEN_POP and v is not None}
    return {"caller": caller, "wait_s": round(max(0.0, now - enqueued), 3), "data": shown}


def decode(fields: dict[str, str]) -> Event | None:
    """A stream entry's fields as an event (None: not one of ours)."""
    try:
        ev = json.loads(fields.get("data", ""))
    except ValueError:
        return None
    if not isinstance(ev, dict) or not isinstance(ev.get("type"), str):
        return None
    if ev.get("queues") == {}:
        ev["queues"] = []           # Lua's cjson writes an empty table as {}
    return ev


@dataclass(frozen=True)
class Viewer:
    """Who holds an event stream: its user's roles, agent id and queues."""

    user: str
    roles: frozenset[str]
    agent: str | None = None
    queues: frozenset[str] = field(default_factory=frozenset)        # a supervisor's queues; empty: all
    agent_queues: frozenset[str] = field(default_factory=frozenset)  # its agent's queues (routing rules)


def _supervised(ev: Event, v: Viewer) -> bool:
    if ev["type"].startswith("campaign."):
        return False
    if ev["type"] == "agent.state":
        return not v.queues or bool(v.queues & set(ev.get("queues") or ()))
    queue = ev.get("queue")
    return isinstance(queue, str) and (not v.queues or queue in v.queues)


def visible(ev: Event, v: Viewer) -> Event | None:
    """The event as ``v`` may see it, or None. Admins see everything; a supervisor the events of its
    queues (every queue when it has none) and the agents in them; a campaign manager campaigns and
    queue figures; an agent its own state, the calls offered to it and its queues' figures. The
    caller's number is in clear only for the agent of the call and for admins."""
    if ADMIN in v.roles:
        return ev
    # its calls: as the agent of the event, or the agent a transfer took the call from
    own = AGENT in v.roles and v.agent is not None and v.agent in (ev.get("agent"), ev.get("from_agent"))
    shown = (own or SUPERVISOR in v.roles and _supervised(ev, v)
             or CAMPAIGN_MANAGER in v.roles and (ev["type"].startswith("campaign.") or ev["type"] == "queue.stats")
             or AGENT in v.roles and ev["type"] == "queue.stats" and ev.get("queue") in v.agent_queues)
    if not shown:
        return None
    if not own and ev.get("caller"):
        ev = {**ev, "caller": mask_number(str(ev["caller"]))}
    return ev
