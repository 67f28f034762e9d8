"""The records a call leaves behind: one CallRecord per call, one LegRecord per SIP leg,
and QueueEvents in the spirit of Asterisk's queue_log.

A CallRecord may be sent several times for one call (at answer, at end, after wrap-up). Each
send carries a ``version``; the store merges field by field and never lets an older version
overwrite a newer one, so the order in which copies reach the store does not matter.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# Queue event names (Asterisk queue_log vocabulary, plus the agent session events
# occupancy needs).
ENTERQUEUE = "ENTERQUEUE"
OFFER = "OFFER"                    # an agent's phone is ringing (queue_log: RINGNOANSWER's counterpart)
CONNECT = "CONNECT"
RINGNOANSWER = "RINGNOANSWER"
ABANDON = "ABANDON"
EXITWITHTIMEOUT = "EXITWITHTIMEOUT"
EXITEMPTY = "EXITEMPTY"
CALLBACK = "CALLBACK"
TRANSFER = "TRANSFER"
COMPLETECALLER = "COMPLETECALLER"
COMPLETEAGENT = "COMPLETEAGENT"
WRAPUPEND = "WRAPUPEND"
DISPOSITION = "DISPOSITION"
PAUSE = "PAUSE"
UNPAUSE = "UNPAUSE"
AGENTLOGIN = "AGENTLOGIN"
AGENTLOGOFF = "AGENTLOGOFF"
EVENTS = frozenset({ENTERQUEUE, OFFER, CONNECT, RINGNOANSWER, ABANDON, EXITWITHTIMEOUT, EXITEMPTY, CALLBACK,
                    TRANSFER, COMPLETECALLER, COMPLETEAGENT, WRAPUPEND, DISPOSITION, PAUSE, UNPAUSE,
                    AGENTLOGIN, AGENTLOGOFF})

# CallRecord.outcome values the KPIs understand.
OUTCOMES = frozenset({"answered", "abandoned", "timeout", "callback", "transferred", "ivr_only", "failed",
                      "no_answer", "busy", "rejected", "voicemail"})


def new_id() -> str:
    return uuid.uuid4().hex


def version_now() -> int:
    """A version stamp: nanoseconds since the epoch. Later snapshots of a call get larger stamps."""
    return time.time_ns()


@dataclass
class Record:
    """What every record is on the CDR stream and in the stores: a dict of its fields."""

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**_known(cls, data))


@dataclass
class CallRecord(Record):
    """One per call (inbound or outbound), keyed by call_id."""

    call_id: str
    direction: str                      # "inbound" | "outbound"
    caller: str                         # full number: it is the CDR. Never in logs or metric labels.
    called: str
    start: float                        # unix timestamps
    answer: float | None = None
    end: float | None = None
    ivr_path: str = ""
    ivr_digits: str = ""
    language: str = ""
    queue: str | None = None
    enqueue: float | None = None
    wait_seconds: float | None = None
    agent_id: str | None = None
    agent_answer: float | None = None
    talk_seconds: float | None = None   # agent talk time, hold excluded
    hold_seconds: float = 0             # the call's time on hold (every span, from the API or the agent's phone)
    hold_count: int = 0                 # how many times it was put on hold
    wrapup_seconds: float | None = None
    hangup_side: str | None = None      # "caller" | "agent" | "system"
    hangup_cause: str | None = None     # "200 BYE", "486 Busy Here", "worker_crash"
    disposition: str | None = None
    resolved: bool | None = None
    campaign: str | None = None
    customer_id: str | None = None
    survey: dict[str, int] = field(default_factory=dict)
    transferred_to: str | None = None
    callback: bool = False
    recording: str | None = None        # the stereo WAV (callcenter.calls.recording); None: not recorded
    recording_takes: int = 0            # its recordings: 1 the one above; 2, 3, ... the next beside it (a caller
                                        # transferred back to a queue): <call_id>-2.wav, GET /recordings/{id}?take=2
    recording_consent: bool | None = None   # the caller heard the consent prompt (None: no prompt configured)
    outcome: str | None = None          # answered/abandoned/timeout/callback/...
    worker_id: str | None = None
    version: int = 0                    # 0: the buffer stamps version_now() when sending


@dataclass
class LegRecord(Record):
    """One SIP leg of a call: the caller's inbound leg, each agent offer, an outbound dial, a callback."""

    leg_id: str
    call_id: str
    kind: str                           # "inbound" | "agent_offer" | "outbound" | "callback"
    uri: str = ""                       # full in the store, masked everywhere else
    agent_id: str | None = None
    start: float = 0.0
    answer: float | None = None
    end: float | None = None
    sip_code: int | None = None
    result: str | None = None           # "answered" | "busy" | "no_answer" | "rejected" | "failed" | ...
    version: int = 0


@dataclass
class QueueEvent(Record):
    """One line of the queue event log. ``event_id`` makes a re-delivered event a no-op."""

    event_id: str
    ts: float
    call_id: str | None
    queue: str | None
    agent_id: str | None
    event: str
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, event: str, *, call_id: str | None = None, queue: str | None = None,
             agent_id: str | None = None, ts: float | None = None, **data: Any) -> QueueEvent:
        return cls(new_id(), time.time() if ts is None else ts, call_id, queue, agent_id, event, dict(data))


@dataclass
class Disposition(Record):
    """The code an agent sets after the call, and whether the customer's issue was resolved."""

    call_id: str
    code: str
    resolved: bool | None
    ts: float
    agent_id: str | None = None


_SCALARS = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def plain_dict(rec: DataclassInstance) -> dict[str, Any]:
    """``dataclasses.asdict(rec)``, without its deep copy when every value is a scalar or a flat dict
    of scalars (every record a call sends: asdict was 2% of a worker's CPU at 50 calls/s). Anything
    else takes asdict itself, so the result is always the same."""
    names = _FIELD_NAMES.get(type(rec))
    if names is None:
        names = _FIELD_NAMES[type(rec)] = tuple(f.name for f in fields(rec))
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(rec, name)
        if type(value) is dict:
            if not all(type(k) in _SCALARS and type(v) in _SCALARS for k, v in value.items()):
                return asdict(rec)
            value = dict(value)
        elif type(value) not in _SCALARS:
            return asdict(rec)
        out[name] = value
    return out


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    # Records written by a newer worker may carry fields this one does not know; drop them
    # rather than refuse the whole record.
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
