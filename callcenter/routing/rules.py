"""routing_rules.yaml: queues, agents and escalation, validated into frozen dataclasses.

Every error names file, key path and line (via :mod:`callcenter.yamlsrc`), e.g.
``routing_rules.yaml:14: queues.sales.strategy: unknown strategy 'random'``.
The same validation serves the file at start and ``PUT /admin/rules`` at run time.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from callcenter import yamlsrc
from callcenter.yamlsrc import Located

STRATEGIES = ("longest_idle", "fewest_calls", "least_talk_time", "round_robin", "skill_weighted", "ring_all")
FALLBACK_ACTIONS = ("voicemail", "callback", "transfer", "hangup")
PAUSE_REASONS = ("break", "lunch", "training", "meeting", "missed_offers", "other")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Skill names end up in Redis keys, Lua tables and requirement signatures: short, lower case, no
# separators; and a bounded number per agent or queue, since matching walks them for every decision.
SKILL_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,31}$")
MAX_SKILLS = 64


def skill_problem(name: object, level: object) -> str | None:
    """Why ``name: level`` is not a valid skill (None if it is)."""
    if not isinstance(name, str) or not SKILL_NAME.match(name):
        return (f"{str(name)[:40]!r} is not a valid skill name (lower-case letters, digits, _ . -; "
                "up to 32, not starting with . or -)")
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 10:
        return "level must be an integer between 1 and 10"
    return None
_SIP = re.compile(r"^sips?:[^@\s]+@[^\s]+$")


@dataclass(frozen=True)
class Fallback:
    action: str                       # voicemail | callback | transfer | hangup
    target: str | None = None         # voicemail box, or the number to transfer to


@dataclass(frozen=True)
class EscalationStep:
    after: float                      # seconds since the caller entered the queue
    relax_skills: dict[str, int] = field(default_factory=dict)   # skill -> new minimum level
    relax_by: int = 0                 # lower every minimum level by this much (never below 1)
    overflow: tuple[str, ...] = ()    # also wait in these queues
    raise_priority: int = 0
    fallback: Fallback | None = None  # leave the queue; the owning worker acts on it


@dataclass(frozen=True)
class Announce:
    position_every: float = 0.0       # seconds between position announcements; 0 = never
    ewt: bool = False                 # announce estimated wait time


@dataclass(frozen=True)
class QueueRule:
    name: str
    skills: dict[str, int]            # required skill -> minimum level
    priority: int = 0                 # added to every call's priority
    strategy: str = "longest_idle"
    max_wait: float = 0.0             # 0 = unlimited; then on_timeout
    max_length: int = 0               # 0 = unlimited
    wrapup: float = 10.0
    ring_timeout: float = 15.0
    service_level: float = 20.0       # answered within this many seconds counts toward SL
    miss_limit: int = 3               # misses in a row before auto-pause
    announce: Announce = field(default_factory=Announce)
    escalation: tuple[EscalationStep, ...] = ()
    on_timeout: Fallback = field(default_factory=lambda: Fallback("voicemail"))
    on_full: Fallback = field(default_factory=lambda: Fallback("voicemail"))


@dataclass(frozen=True)
class AgentRule:
    id: str
    name: str
    uri: str
    skills: dict[str, int]            # skill -> level 1..10
    queues: dict[str, int]            # queue -> weight (higher is preferred)
    max_offers: int = 1


@dataclass(frozen=True)
class PauseRule:
    """How long a pause of one reason may last (``defaults.pause_reasons``). Past ``max_seconds`` the
    agent is flagged overdue on the wallboard; with ``auto_ready`` the ACD makes it ready instead."""

    reason: str
    max_seconds: float = 0.0          # 0 = no limit
    auto_ready: bool = False


@dataclass(frozen=True)
class RoutingRules:
    queues: dict[str, QueueRule]
    agents: dict[str, AgentRule]
    source: str = "<rules>"
    pause_reasons: dict[str, PauseRule] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain dict (for Redis and GET /admin/rules); loads back through :func:`parse`."""
        out = asdict(self)
        out.pop("source", None)
        # under defaults, as in the YAML, so the dict parses back; apply_rules.lua reads it there too
        out["defaults"] = {"pause_reasons": {r: {"max": p["max_seconds"], "auto_ready": p["auto_ready"]}
                                             for r, p in out.pop("pause_reasons").items()}}
        for q in out["queues"].values():
            q.pop("name", None)
            q["escalation"] = [{k: v for k, v in s.items() if v not in ({}, 0, (), [], None)} | {"after": s["after"]}
                               for s in q["escalation"]]
        for a in out["agents"].values():
            a.pop("id", None)
        return out


def load(path: str | Path) -> RoutingRules:
    data, loc = yamlsrc.load(path)
    return parse(data, loc)


def loads(text: str, file: str = "<rules>", *, allow_aliases: bool = True) -> RoutingRules:
    """``allow_aliases=False`` for rules that came over the network (see :func:`yamlsrc.loads`)."""
    data, loc = yamlsrc.loads(text, file, allow_aliases=allow_aliases)
    return parse(data, loc)


class _V:
    """Validation helpers that raise ConfigError naming the key and its line."""

    def __init__(self, loc: Located) -> None:
        self.loc = loc

    def fail(self, path: str, msg: str) -> Exception:
        return self.loc.error(path, msg)

    def mapping(self, value: Any, path: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping, got {type(value).__name__}")
        if allowed is not None:
            for k in value:
                if str(k) not in allowed:
                    raise self.fail(f"{path}.{k}" if path else str(k),
                                    f"unknown key; expected one of: {', '.join(sorted(allowed))}")
        return {str(k): v for k, v in value.items()}

    def number(self, value: Any, path: str, lo: float = 0.0, hi: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"must be a number, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            raise self.fail(path, f"must be between {lo:g} and {hi:g}" if hi is not None else f"must be >= {lo:g}")
        return float(value)

    def integer(self, value: Any, path: str, lo: int, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"must be an integer, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            raise self.fail(path, f"must be between {lo} and {hi}" if hi is not None else f"must be >= {lo}")
        return value

    def name(self, value: Any, path: str) -> str:
        s = str(value)
        if not _NAME.match(s):
            raise self.fail(path, f"{s!r} is not a valid name (letters, digits, _ . - up to 64)")
        return s

    def skills(self, value: Any, path: str) -> dict[str, int]:
        m = self.mapping(value, path)
        if len(m) > MAX_SKILLS:
            raise self.fail(path, f"{len(m)} skills; at most {MAX_SKILLS}")
        for k, level in m.items():
            problem = skill_problem(k, level)
            if problem:
                raise self.fail(f"{path}.{k}", problem)
        return {k: int(v) for k, v in m.items()}

    def fallback(self, value: Any, path: str) -> Fallback:
        if isinstance(value, str):
            value = {"action": value}
        m = self.mapping(value, path, {"action", "target"})
        action = m.get("action")
        if action not in FALLBACK_ACTIONS:
            raise self.fail(f"{path}.action", f"unknown action {action!r}; expected one of: "
                                              f"{', '.join(FALLBACK_ACTIONS)}")
        target = m.get("target")
        if action == "transfer" and not target:
            raise self.fail(path, "transfer needs a target number")
        return Fallback(action, None if target is None else str(target))


_QUEUE_KEYS = {"skills", "priority", "strategy", "max_wait", "max_length", "wrapup", "ring_timeout",
               "service_level", "miss_limit", "announce", "escalation", "on_timeout", "on_full"}
_STEP_KEYS = {"after", "relax_skills", "relax_by", "overflow", "raise_priority", "fallback"}
_AGENT_KEYS = {"name", "uri", "skills", "queues", "max_offers"}
_PAUSE_KEYS = {"max", "auto_ready"}


def _pause_reasons(v: _V, value: Any) -> dict[str, PauseRule]:
    """``break: 900`` (seconds, like every time in this file) or ``break: {max: 900, auto_ready: true}``."""
    out: dict[str, PauseRule] = {}
    for reason, raw in v.mapping(value, "defaults.pause_reasons").items():
        p = f"defaults.pause_reasons.{reason}"
        if reason not in PAUSE_REASONS:
            raise v.fail(p, f"unknown pause reason; expected one of: {', '.join(PAUSE_REASONS)}")
        if not isinstance(raw, dict):
            raw = {"max": raw}
        m = v.mapping(raw, p, _PAUSE_KEYS)
        limit = v.number(m.get("max", 0), f"{p}.max", 0, 86400)
        auto = m.get("auto_ready", False)
        if not isinstance(auto, bool):
            raise v.fail(f"{p}.auto_ready", f"must be true or false, got {auto!r}")
        if auto and limit <= 0:
            raise v.fail(f"{p}.auto_ready", "needs a max (seconds) to know when to make the agent ready")
        out[reason] = PauseRule(reason, limit, auto)
    return out


def parse(data: Any, loc: Located) -> RoutingRules:
    v = _V(loc)
    top = v.mapping(data, "", {"defaults", "queues", "agents"})
    defaults = v.mapping(top.get("defaults"), "defaults", (_QUEUE_KEYS - {"skills", "escalation"}) | {"pause_reasons"})
    pause_reasons = _pause_reasons(v, defaults.pop("pause_reasons", None))
    raw_queues = v.mapping(top.get("queues"), "queues")
    if not raw_queues:
        raise v.fail("queues", "at least one queue is required")
    queues: dict[str, QueueRule] = {}
    for qname, qraw in raw_queues.items():
        p = f"queues.{qname}"
        v.name(qname, p)
        own = v.mapping(qraw, p, _QUEUE_KEYS)
        q = defaults | own

        def path(key: str, p: str = p, own: dict[str, Any] = own) -> str:
            return f"{p}.{key}" if key in own or key not in defaults else f"defaults.{key}"

        strategy = q.get("strategy", "longest_idle")
        if strategy not in STRATEGIES:
            raise v.fail(path("strategy"), f"unknown strategy {strategy!r}; expected one of: {', '.join(STRATEGIES)}")
        ann = v.mapping(q.get("announce"), path("announce"), {"position_every", "ewt"})
        steps: list[EscalationStep] = []
        last = -1.0
        for i, sraw in enumerate(q.get("escalation") or []):
            sp = f"{p}.escalation[{i}]"
            s = v.mapping(sraw, sp, _STEP_KEYS)
            if "after" not in s:
                raise v.fail(sp, "missing 'after' (seconds)")
            after = v.number(s["after"], f"{sp}.after")
            if after < last:
                raise v.fail(f"{sp}.after", "escalation steps must be in increasing 'after' order")
            last = after
            overflow = s.get("overflow") or []
            if isinstance(overflow, str):
                overflow = [overflow]
            if not isinstance(overflow, list | tuple):
                raise v.fail(f"{sp}.overflow", "must be a list of queue names")
            step = EscalationStep(
                after=after,
                relax_skills=v.skills(s.get("relax_skills"), f"{sp}.relax_skills"),
                relax_by=v.integer(s.get("relax_by", 0), f"{sp}.relax_by", 0, 9),
                overflow=tuple(v.name(o, f"{sp}.overflow") for o in overflow),
                raise_priority=v.integer(s.get("raise_priority", 0), f"{sp}.raise_priority", 0, 100),
                fallback=v.fallback(s["fallback"], f"{sp}.fallback") if "fallback" in s else None,
            )
            if step == EscalationStep(after=after):
                raise v.fail(sp, "step does nothing; give relax_skills, relax_by, overflow, raise_priority "
                                 "or fallback")
            steps.append(step)
        queues[qname] = QueueRule(
            name=qname,
            skills=v.skills(q.get("skills"), f"{p}.skills"),
            priority=v.integer(q.get("priority", 0), path("priority"), 0, 100),
            strategy=strategy,
            max_wait=v.number(q.get("max_wait", 0), path("max_wait")),
            max_length=v.integer(q.get("max_length", 0), path("max_length"), 0),
            wrapup=v.number(q.get("wrapup", 10), path("wrapup"), 0, 3600),
            ring_timeout=v.number(q.get("ring_timeout", 15), path("ring_timeout"), 1, 300),
            service_level=v.number(q.get("service_level", 20), path("service_level"), 1),
            miss_limit=v.integer(q.get("miss_limit", 3), path("miss_limit"), 1, 100),
            announce=Announce(v.number(ann.get("position_every", 0), f"{path('announce')}.position_every"),
                              bool(ann.get("ewt", False))),
            escalation=tuple(steps),
            on_timeout=v.fallback(q.get("on_timeout", "voicemail"), path("on_timeout")),
            on_full=v.fallback(q.get("on_full", "voicemail"), path("on_full")),
        )
    for qname, qr in queues.items():
        for i, step in enumerate(qr.escalation):
            for o in step.overflow:
                if o not in queues:
                    raise v.fail(f"queues.{qname}.escalation[{i}].overflow", f"unknown queue {o!r}")
                if o == qname:
                    raise v.fail(f"queues.{qname}.escalation[{i}].overflow", "a queue cannot overflow into itself")
    agents: dict[str, AgentRule] = {}
    seen_uri: dict[str, str] = {}
    for aid, araw in v.mapping(top.get("agents"), "agents").items():
        p = f"agents.{aid}"
        v.name(aid, p)
        a = v.mapping(araw, p, _AGENT_KEYS)
        uri = str(a.get("uri", ""))
        if not _SIP.match(uri):
            raise v.fail(f"{p}.uri", f"must be a SIP URI like sip:{aid}@127.0.0.1:5070")
        if uri in seen_uri:
            raise v.fail(f"{p}.uri", f"same phone as agent {seen_uri[uri]}")
        seen_uri[uri] = aid
        memberships: dict[str, int] = {}
        qraw = a.get("queues") or {}
        if isinstance(qraw, list):      # a plain list means weight 1 everywhere
            qraw = {str(x): 1 for x in qraw}
        for qn, w in v.mapping(qraw, f"{p}.queues").items():
            if qn not in queues:
                raise v.fail(f"{p}.queues.{qn}", f"unknown queue {qn!r}")
            memberships[qn] = v.integer(w, f"{p}.queues.{qn}", 0, 1000)
        agents[aid] = AgentRule(
            id=aid, name=str(a.get("name", aid)), uri=uri,
            skills=v.skills(a.get("skills"), f"{p}.skills"), queues=memberships,
            max_offers=_max_offers(v, a.get("max_offers", 1), f"{p}.max_offers"),
        )
    return RoutingRules(queues, agents, loc.file, pause_reasons)


def _max_offers(v: _V, value: Any, path: str) -> int:
    """Only 1. An agent here is one voice phone: a second offer would ring over a ringing or live call,
    and the matching invariants (an agent in 'reserved' holds exactly one offer; ring_all rings many
    agents for one call, never many calls on one agent) rest on it. Chat-style concurrency would need
    per-agent capacity slots in the free sets; the key stays in the schema so such configs fail
    loudly instead of silently behaving as 1."""
    n = v.integer(value, path, 1)
    if n != 1:
        raise v.fail(path, "only 1 is supported: a voice agent takes one offer at a time")
    return n
