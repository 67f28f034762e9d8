"""routing_rules.yaml: queues, agents and escalation, validated into frozen dataclasses.

Every error names file, key path and line (read with :class:`callcenter.yamlsrc.Reader`), e.g.
``routing_rules.yaml:14: queues.sales.strategy: expected one of longest_idle, ..., got "random"``.
Times are durations: ``30``, ``2.5``, ``"30s"``, ``"15m"``, ``"2h"``.
The same validation serves the file at start and ``PUT /admin/rules`` at run time.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from callcenter import yamlsrc
from callcenter.exceptions import ConfigError
from callcenter.yamlsrc import Issues, Located, Reader

STRATEGIES = ("longest_idle", "fewest_calls", "least_talk_time", "round_robin", "skill_weighted", "ring_all")
FALLBACK_ACTIONS = ("voicemail", "callback", "transfer", "hangup")
PAUSE_REASONS = ("break", "lunch", "training", "meeting", "missed_offers", "no_phone", "other")
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
    sl_target: float = 0.8            # the share that should be (wallboards highlight a queue below it)
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


def problems(text: str, file: str = "<rules>") -> list[ConfigError]:
    """Every problem of a rules document that came over the network, in line order ([]: valid): those the
    reading goes past (a wrong value, an unknown key: :class:`yamlsrc.Issues` collecting) and the one that
    stops it (a document the rest cannot be read without)."""
    issues = Issues(collect=True)
    try:
        data, loc = yamlsrc.loads(text, file, allow_aliases=False)
        parse(data, loc, issues)
    except ConfigError as exc:
        issues.found.append(exc)
    return sorted(issues.found, key=lambda e: e.line or 0)


def _name(r: Reader, key: str | None, value: object) -> str:
    """A queue or agent name, found at ``key`` under ``r``."""
    name = str(value)
    if not _NAME.match(name):
        raise r.fail(key, f"{name!r} is not a valid name (letters, digits, _ . - up to 64)")
    return name


def _skills(r: Reader, key: str) -> dict[str, int]:
    m = r.mapping(key)
    if len(m) > MAX_SKILLS:
        raise r.fail(key, f"{len(m)} skills; at most {MAX_SKILLS}")
    for k, level in m.items():
        problem = skill_problem(k, level)
        if problem:
            raise r.fail(f"{key}.{k}", problem)
    return {k: int(v) for k, v in m.items() if isinstance(v, int)}


def _fallback(r: Reader, key: str, default: str | None = None) -> Fallback:
    """``voicemail`` or ``{action: transfer, target: "0281234567"}``."""
    value = r.raw(key, default)
    f = Reader({"action": value} if isinstance(value, str) else value, r.loc, r.key_path(key),
               known=("action", "target"), issues=r.issues)
    action = f.text("action", choices=FALLBACK_ACTIONS, required=True) or "hangup"
    target = f.raw("target")
    if action == "transfer" and not target:
        raise f.fail(None, "transfer needs a target number")
    return Fallback(action, None if target is None else str(target))


_QUEUE_KEYS = {"skills", "priority", "strategy", "max_wait", "max_length", "wrapup", "ring_timeout",
               "service_level", "sl_target", "miss_limit", "announce", "escalation", "on_timeout", "on_full"}
_STEP_KEYS = {"after", "relax_skills", "relax_by", "overflow", "raise_priority", "fallback"}
_AGENT_KEYS = {"name", "uri", "skills", "queues", "max_offers"}
_PAUSE_KEYS = {"max", "auto_ready"}


def _pause_reasons(defaults: Reader) -> dict[str, PauseRule]:
    """``break: 900`` (a duration, like every time in this file) or ``break: {max: 15m, auto_ready: true}``."""
    out: dict[str, PauseRule] = {}
    reasons = defaults.section("pause_reasons", PAUSE_REASONS)
    for reason, raw in reasons.data.items():
        p = Reader(raw if isinstance(raw, dict) else {"max": raw}, reasons.loc, reasons.key_path(reason),
                   known=_PAUSE_KEYS, issues=reasons.issues)
        limit = p.duration("max", 0.0, 0, 86400)
        auto = p.flag("auto_ready", False)
        if auto and limit <= 0:
            raise p.fail("auto_ready", "needs a max (seconds) to know when to make the agent ready")
        out[reason] = PauseRule(reason, limit, auto)
    return out


def parse(data: object, loc: Located, issues: Issues | None = None) -> RoutingRules:
    """``issues``: where problems go (raised at the first by default; see :func:`problems`)."""
    top = Reader(data, loc, known=("defaults", "queues", "agents"), issues=issues)
    defaults = top.section("defaults", (_QUEUE_KEYS - {"skills", "escalation"}) | {"pause_reasons"})
    pause_reasons = _pause_reasons(defaults)
    raw_queues = top.section("queues").sections()
    if not raw_queues:
        raise top.fail("queues", "at least one queue is required")
    queues: dict[str, QueueRule] = {}
    for qname, own in raw_queues:
        _name(own, None, qname)
        own.refuse_unknown(_QUEUE_KEYS)

        def pick(key: str, own: Reader = own) -> Reader:
            """The queue's own setting, else the one under defaults."""
            return own if key in own.data else defaults

        steps: list[EscalationStep] = []
        last = -1.0
        for i, sraw in enumerate(own.items("escalation")):
            s = Reader(sraw, loc, own.key_path(f"escalation[{i}]"), known=_STEP_KEYS, issues=own.issues)
            if "after" not in s:
                raise s.fail("after", "required, not given (seconds)")
            after = s.duration("after", 0.0)
            if after < last:
                raise s.fail("after", "escalation steps must be in increasing 'after' order")
            last = after
            overflow = s.raw("overflow", [])
            if isinstance(overflow, str):
                overflow = [overflow]
            if not isinstance(overflow, list | tuple):   # a tuple: rules parsed back from to_json()
                raise s.fail("overflow", f"expected a list of queue names, got {yamlsrc.shown(overflow)}")
            step = EscalationStep(
                after=after,
                relax_skills=_skills(s, "relax_skills"),
                relax_by=s.integer("relax_by", 0, 0, 9),
                overflow=tuple(_name(s, "overflow", o) for o in overflow),
                raise_priority=s.integer("raise_priority", 0, 0, 100),
                fallback=_fallback(s, "fallback") if "fallback" in s else None,
            )
            if step == EscalationStep(after=after):
                raise s.fail(None, "step does nothing; give relax_skills, relax_by, overflow, raise_priority "
                                   "or fallback")
            steps.append(step)
        ann = pick("announce").section("announce", ("position_every", "ewt"))
        queues[qname] = QueueRule(
            name=qname,
            skills=_skills(own, "skills"),
            priority=pick("priority").integer("priority", 0, 0, 100),
            strategy=pick("strategy").text("strategy", "longest_idle", choices=STRATEGIES),
            max_wait=pick("max_wait").duration("max_wait", 0.0),
            max_length=pick("max_length").integer("max_length", 0, 0),
            wrapup=pick("wrapup").duration("wrapup", 10.0, 0, 3600),
            ring_timeout=pick("ring_timeout").duration("ring_timeout", 15.0, 1, 300),
            service_level=pick("service_level").duration("service_level", 20.0, 1),
            sl_target=pick("sl_target").number("sl_target", 0.8, 0, 1),
            miss_limit=pick("miss_limit").integer("miss_limit", 3, 1, 100),
            announce=Announce(ann.duration("position_every", 0.0), ann.flag("ewt", False)),
            escalation=tuple(steps),
            on_timeout=_fallback(pick("on_timeout"), "on_timeout", "voicemail"),
            on_full=_fallback(pick("on_full"), "on_full", "voicemail"),
        )
    for qname, qr in queues.items():
        for i, step in enumerate(qr.escalation):
            for o in step.overflow:
                if o not in queues:
                    raise top.fail(f"queues.{qname}.escalation[{i}].overflow", f"unknown queue {o!r}")
                if o == qname:
                    raise top.fail(f"queues.{qname}.escalation[{i}].overflow", "a queue cannot overflow into itself")
    agents: dict[str, AgentRule] = {}
    seen_uri: dict[str, str] = {}
    for aid, a in top.section("agents").sections():
        _name(a, None, aid)
        a.refuse_unknown(_AGENT_KEYS)
        uri = str(a.raw("uri", ""))
        if not _SIP.match(uri):
            raise a.fail("uri", f"must be a SIP URI like sip:{aid}@127.0.0.1:5070")
        if uri in seen_uri:
            raise a.fail("uri", f"same phone as agent {seen_uri[uri]}")
        seen_uri[uri] = aid
        qraw = a.raw("queues", {})
        if isinstance(qraw, list):      # a plain list means weight 1 everywhere
            qraw = {str(x): 1 for x in qraw}
        weights = Reader(qraw, loc, a.key_path("queues"), issues=a.issues)
        memberships: dict[str, int] = {}
        for qn in weights.keys():
            if qn not in queues:
                raise weights.fail(qn, f"unknown queue {qn!r}")
            memberships[qn] = weights.integer(qn, 0, 0, 1000)
        agents[aid] = AgentRule(
            id=aid, name=a.text("name", aid), uri=uri, skills=_skills(a, "skills"), queues=memberships,
            max_offers=_max_offers(a),
        )
    return RoutingRules(queues, agents, loc.file, pause_reasons)


def _max_offers(a: Reader) -> int:
    """Only 1. An agent here is one voice phone: a second offer would ring over a ringing or live call,
    and the matching invariants (an agent in 'reserved' holds exactly one offer; ring_all rings many
    agents for one call, never many calls on one agent) rest on it. Chat-style concurrency would need
    per-agent capacity slots in the free sets; the key stays in the schema so such configs fail
    loudly instead of silently behaving as 1."""
    n = a.integer("max_offers", 1, 1)
    if n != 1:
        raise a.fail("max_offers", "only 1 is supported: a voice agent takes one offer at a time")
    return n
