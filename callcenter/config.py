"""The worker configuration (`callcenter.yaml`), read once and validated into frozen dataclasses.

Read with :class:`callcenter.yamlsrc.Reader`: every error names the file, the key path and the line:
    callcenter.yaml:7: sip.port: expected an integer 1-65535, got 70000
Relative paths are resolved against the config file's directory. `${VAR}` and `${VAR:-default}`
in string values are expanded from the environment (REDIS_URL for example).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.calls.recording import RecordingSettings, parse_settings
from callcenter.console.phone import PhoneSettings
from callcenter.console.phone import parse_settings as parse_phone
from callcenter.dialer.policy import DialRules
from callcenter.events.settings import EventSettings
from callcenter.events.settings import parse_settings as parse_event_settings
from callcenter.redisurl import REDIS_KEYS
from callcenter.redisurl import parse_config as parse_redis
from callcenter.routing.phones import EdgeSettings
from callcenter.routing.phones import parse_settings as parse_edge
from callcenter.telephony.settings import CapacitySettings, SipSettings
from callcenter.telephony.trust import DEFAULT_TRUSTED, TrustedSource, parse_network
from callcenter.timeofday import time_of_day
from callcenter.wrapup import WrapupSettings
from callcenter.wrapup import parse as parse_wrapup
from callcenter.yamlsrc import Reader, load, shown

_ENV = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _expand(value: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` from the environment."""
    return _ENV.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)


@dataclass(frozen=True)
class RedisConfig:
    url: str | None             # None: start an embedded redis-server under data_dir
    prefix: str = "cc:"


@dataclass(frozen=True)
class HttpConfig:
    bind: str = "127.0.0.1"
    port: int = 8080
    auth: bool = True                       # users, roles, sessions, tokens (callcenter.auth)
    allowed_origins: tuple[str, ...] = ()   # CSRF: origins of cookie-authenticated changes; () = our own
    metrics_token: str = ""                 # Bearer token Prometheus sends for /metrics
    cookie_secure: bool = False             # Secure flag on the session cookie (set behind TLS)
    session_idle_seconds: float = 1800.0
    session_max_seconds: float = 43200.0
    login_failures: int = 5                 # failed logins per user and per address ...
    login_window_seconds: int = 300         # ... in this window -> 429
    audit_max_entries: int = 1_000_000      # the audit stream is capped near this length
    advertise: str = "http://127.0.0.1:8080"   # how other workers reach this API (call-scoped requests: api/forward.py)
    forward_timeout: float = 10.0           # a forwarded request's answer must start within this


HTTP_KEYS = {"bind", "port", "auth", "allowed_origins", "metrics_token", "cookie_secure", "session_idle_seconds",
             "session_max_seconds", "login_failures", "login_window_seconds", "audit_max_entries", "advertise",
             "forward_timeout"}


def _http(r: Reader) -> HttpConfig:
    """The http section. An API reachable from other hosts must not run without authentication."""
    import ipaddress

    h = r.section("http", HTTP_KEYS)
    bind = h.text("bind", "127.0.0.1")
    auth = h.flag("auth", True)
    try:
        loopback = bind == "localhost" or ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = False
    if not auth and not loopback:
        raise h.fail("auth" if "auth" in h else "bind",
                     f"http.auth: false is only allowed with a loopback http.bind (127.0.0.1, ::1); "
                     f"http.bind is {bind}: anyone who reaches it could log agents out, start campaigns "
                     f"and read contacts")
    origins = h.items("allowed_origins")
    for i, o in enumerate(origins):
        if not isinstance(o, str) or not re.match(r"^https?://[^/\s]+$", o):
            raise h.fail(f"allowed_origins[{i}]", "must be an origin like https://cc.example.com "
                                                  "(scheme://host[:port], no path)")
    port = h.integer("port", 8080, 1, 65535)
    # other workers forward call-scoped requests here: a wildcard bind is reached by the host's name
    host = socket.gethostname() if bind in ("0.0.0.0", "::", "") else bind
    advertise = h.text("advertise", f"http://{f'[{host}]' if ':' in host else host}:{port}").rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", advertise):
        raise h.fail("advertise", f"must be the URL other workers reach this API at, like http://10.0.0.5:{port} "
                                  f"(scheme://host[:port], no path), got {shown(advertise)}")
    return HttpConfig(bind=bind, port=port, auth=auth,
                      allowed_origins=tuple(str(o).rstrip("/") for o in origins),
                      metrics_token=h.text("metrics_token", ""),
                      cookie_secure=h.flag("cookie_secure", False),
                      session_idle_seconds=h.duration("session_idle_seconds", 1800.0, gt=0),
                      session_max_seconds=h.duration("session_max_seconds", 43200.0, gt=0),
                      login_failures=h.integer("login_failures", 5, 1),
                      login_window_seconds=h.integer("login_window_seconds", 300, 1),
                      audit_max_entries=h.integer("audit_max_entries", 1_000_000, 1),
                      advertise=advertise, forward_timeout=h.duration("forward_timeout", 10.0, hi=300, gt=0))


@dataclass(frozen=True)
class QueueMediaConfig:
    music: Path
    agent_ring_timeout: float = 15.0
    announce_every: float = 30.0


@dataclass(frozen=True)
class ClickToCallSettings:
    """The ``click_to_call`` section: an agent's own dials (calls/click_to_call.py)."""

    caller_ids: tuple[str, ...] = ()          # empty: the campaigns' caller ids
    calling_hours: tuple[tuple[dt.time, dt.time], ...] = ((dt.time(8), dt.time(21)),)   # callee's local time
    time_zone: str = "Asia/Ho_Chi_Minh"       # the callee's zone when its number names none
    agent_ring_timeout: float = 20.0
    ring_timeout: float = 30.0                # the customer's phone
    max_calls_per_number: int = 0             # dials to one number per cap_window (0 = no cap)
    cap_window: float = 86400.0
    cap_group: str = "click_to_call"          # a campaign's cap group here shares its per-number cap
    wrapup: float | None = None               # after-call work after a conversation; None: its queues' longest


@dataclass(frozen=True)
class Config:
    file: Path
    worker_id: str
    data_dir: Path
    drain_seconds: float
    sip: SipSettings
    redis: RedisConfig
    http: HttpConfig
    ivr_scripts: Path
    sounds: Path
    routing_rules: Path
    campaigns: Path
    cdr_store: str
    run_cdr_writer: bool
    default_language: str
    routes: dict[str, str] = field(default_factory=dict)   # called number -> IVR flow
    queue: QueueMediaConfig = field(default_factory=lambda: QueueMediaConfig(Path("sounds/moh.wav")))
    log_level: str = "info"
    trunk: str = ""            # host:port of the SIP trunk/edge for outbound calls (callbacks, dialer)
    dialing: DialRules = field(default_factory=DialRules)   # what may be dialed (callcenter.dialer.policy)
    recording: RecordingSettings | None = None   # callcenter.calls.recording; None: never record
    monitor_ring_timeout: float = 20.0   # monitor.ring_timeout: how long a supervisor's phone rings (calls/monitor.py)
    click_to_call: ClickToCallSettings = field(default_factory=ClickToCallSettings)   # calls/click_to_call.py
    events: EventSettings = field(default_factory=EventSettings)   # the event bus, push, webhooks (events/)
    edge: EdgeSettings = field(default_factory=EdgeSettings)   # the edge's registrations (routing/phones.py)
    wrapup: WrapupSettings = field(default_factory=WrapupSettings)   # disposition codes per queue/campaign
    phone: PhoneSettings | None = None   # the agent desktop's browser phone (console/phone.py); None: no phone

    def flow_for(self, called: str) -> str:
        return self.routes.get(called) or self.routes.get("default") or "hotline"


SIP_SECURITY_KEYS = ("trusted", "max_calls_per_source", "rtp_timeout", "max_call_seconds",
                     "max_tcp_connections")


def _sip_security(s: Reader) -> dict[str, Any]:
    """sip.trusted (addresses/CIDRs, or {net, max_calls, pai} mappings) and the per-call limits."""
    trusted: tuple[TrustedSource, ...] = DEFAULT_TRUSTED
    if "trusted" in s:
        entries = []
        for i, item in enumerate(s.items("trusted")):
            key = f"trusted[{i}]"
            cap: int | None = None
            pai = True
            if isinstance(item, dict):
                entry = Reader(item, s.loc, s.key_path(key), known=("net", "max_calls", "pai"), issues=s.issues)
                cap, pai = entry.integer("max_calls", None, 1), entry.flag("pai", True)
                net: object = entry.text("net", required=True)
                key = f"{key}.net"
            else:
                net = item
            if not isinstance(net, str):
                raise s.fail(key, "must be an IP address or CIDR network such as 10.0.0.0/24")
            try:
                entries.append(TrustedSource(parse_network(net), cap, pai))
            except ValueError as exc:
                raise s.fail(key, str(exc)) from None
        trusted = tuple(entries)
    limits: dict[str, Any] = {"trusted": trusted,
                              "max_calls_per_source": s.integer("max_calls_per_source", 200, 1),
                              "max_tcp_connections": s.integer("max_tcp_connections", 1000, 0)}
    for key, default in (("rtp_timeout", 60.0), ("max_call_seconds", 14400.0)):
        value = s.duration(key, default)
        if 0 < value < 2:
            raise s.fail(key, f"expected 0 (off) or a duration of at least 2 seconds, got {value:g}")
        limits[key] = value
    return limits


CAPACITY_KEYS = {"loop_lag_seconds", "loop_cpu", "process_cpu", "reserve_calls", "max_new_calls_per_second",
                 "retry_after", "hold_seconds"}


def _capacity(r: Reader, max_calls: int) -> CapacitySettings:
    """The capacity section: when a worker answers new calls 503 + Retry-After (telephony/admission.py)."""
    c = r.section("capacity", CAPACITY_KEYS)
    d = CapacitySettings()
    loop_cpu = c.number("loop_cpu", d.loop_cpu, 0)
    if loop_cpu != 0 and not 0.2 <= loop_cpu <= 1.0:
        raise c.fail("loop_cpu", f"expected 0 (off) or a share of one core 0.2-1, got {loop_cpu:g}")
    # A small worker (sip.max_calls under 100) keeps a quarter for agent legs unless told otherwise.
    return CapacitySettings(
        loop_lag_seconds=c.duration("loop_lag_seconds", d.loop_lag_seconds, 0.001, 10), loop_cpu=loop_cpu,
        process_cpu=c.number("process_cpu", d.process_cpu, 0),
        reserve_calls=c.integer("reserve_calls", min(d.reserve_calls, max_calls // 4), 0, max_calls // 2),
        max_new_calls_per_second=c.number("max_new_calls_per_second", d.max_new_calls_per_second, 0),
        retry_after=c.integer("retry_after", d.retry_after, 1, 3600),
        hold_seconds=c.duration("hold_seconds", d.hold_seconds, 0, 600))


TOP_KEYS = ("worker", "sip", "edge", "redis", "http", "paths", "cdr", "routes", "queue", "language", "logging", "dialing",
            "capacity", "recording", "monitor", "click_to_call", "events", "webhooks", "wrapup", "phone")


def load_config(path: str | Path) -> Config:
    """Read and validate the worker config; raises ConfigError naming file, key and line."""
    p = Path(path).resolve()
    data, loc = load(p)
    r = Reader(data, loc, known=TOP_KEYS, strings=_expand)
    base = p.parent

    def rel(value: str) -> Path:
        q = Path(value)
        return q if q.is_absolute() else (base / q).resolve()

    w = r.section("worker", {"id", "data_dir", "drain_seconds"})
    worker_id = w.text("id", "") or os.environ.get("CALLCENTER_WORKER_ID") or \
        f"{socket.gethostname()}-{os.getpid()}"
    data_dir = rel(w.text("data_dir", "var"))
    drain = w.duration("drain_seconds", 30.0, gt=0)

    s = r.section("sip", {"bind", "port", "transports", "public_address", "rtp_port", "rtp_port_range",
                          "max_calls", "log_level", "user", "trunk", *SIP_SECURITY_KEYS})
    transports = s.items("transports", ["udp", "tcp"])
    for i, t in enumerate(transports):
        if t not in ("udp", "tcp"):
            raise s.fail(f"transports[{i}]", f"expected one of udp, tcp, got {shown(t)}")
    max_calls = s.integer("max_calls", 1000, 1, 1024)   # PJSUA_MAX_CALLS of the build
    sip = SipSettings(
        bind=s.text("bind", "0.0.0.0"),
        port=s.integer("port", 5060, 1, 65535),
        public_address=s.text("public_address", ""),
        transports=tuple(str(t) for t in transports),
        rtp_port=s.integer("rtp_port", 10000, 1, 65535),
        rtp_port_range=s.integer("rtp_port_range", 20000),
        max_calls=max_calls,
        user=s.text("user", "callcenter"),
        log_level=s.integer("log_level", 2),
        capacity=_capacity(r, max_calls),
        **_sip_security(s),
    )

    rd = r.section("redis", REDIS_KEYS)
    redis_cfg = RedisConfig(url=parse_redis(rd), prefix=rd.text("prefix", "cc:"))

    http = _http(r)

    pa = r.section("paths", {"ivr_scripts", "sounds", "routing_rules", "campaigns"})
    paths = {k: rel(pa.text(k, d)) for k, d in
             (("ivr_scripts", "ivr_scripts"), ("sounds", "sounds"), ("routing_rules", "routing_rules.yaml"),
              ("campaigns", "campaigns"))}
    for key, q in paths.items():
        if not q.exists():
            raise pa.fail(key, f"{q} does not exist")

    c = r.section("cdr", {"store", "writer"})
    store = c.text("store", f"sqlite:///{data_dir / 'cdr.db'}")
    if not store.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise c.fail("store", "must be sqlite:///PATH or postgresql://...")

    routes = {k: str(v) for k, v in r.mapping("routes").items()}   # called number -> IVR flow

    qm = r.section("queue", {"music", "agent_ring_timeout", "announce_every"})
    queue = QueueMediaConfig(music=rel(qm.text("music", "sounds/moh.wav")),
                             agent_ring_timeout=qm.duration("agent_ring_timeout", 15.0, gt=0),
                             announce_every=qm.duration("announce_every", 30.0, gt=0))
    lang = r.text("language", "vi", choices=("vi", "en"))
    level = r.section("logging", {"level"}).text("level", "info", choices=("debug", "info", "warning", "error"))
    return Config(file=p, worker_id=worker_id, data_dir=data_dir, drain_seconds=drain, sip=sip,
                  redis=redis_cfg, http=http, ivr_scripts=paths["ivr_scripts"], sounds=paths["sounds"],
                  routing_rules=paths["routing_rules"], campaigns=paths["campaigns"], cdr_store=store,
                  run_cdr_writer=c.flag("writer", True), default_language=lang, routes=routes,
                  queue=queue, log_level=level, trunk=s.text("trunk", ""), dialing=_dialing(r),
                  recording=parse_settings(r, data_dir, paths["sounds"]),
                  monitor_ring_timeout=r.section("monitor", {"ring_timeout"}).duration("ring_timeout", 20.0, gt=0),
                  click_to_call=_click_to_call(r), events=parse_event_settings(r), edge=parse_edge(r),
                  wrapup=parse_wrapup(r), phone=parse_phone(r, rel))


def _click_to_call(r: Reader) -> ClickToCallSettings:
    """The ``click_to_call`` section: an agent's own dials (``POST /agents/{id}/dial``)."""
    c = r.section("click_to_call", {"caller_ids", "calling_hours", "time_zone", "agent_ring_timeout", "ring_timeout",
                                    "max_calls_per_number", "cap_window", "cap_group", "wrapup"})
    d = ClickToCallSettings()
    ids = c.items("caller_ids")
    for i, item in enumerate(ids):
        if not isinstance(item, str) or not re.fullmatch(r"\+?[0-9]{3,15}", item):
            raise c.fail(f"caller_ids[{i}]", f"expected a quoted number shown to callees (digits, optional '+'), "
                                             f"got {shown(item)}")
    hours = []
    for i, h in enumerate(c.items("calling_hours", ["08:00-21:00"])):
        parts = str(h).split("-")
        try:
            a, b = time_of_day(parts[0]), time_of_day(parts[1]) if len(parts) == 2 else None
        except ValueError as exc:
            raise c.fail(f"calling_hours[{i}]", str(exc)) from None
        if b is None or a >= b:
            raise c.fail(f"calling_hours[{i}]", f"expected HH:MM-HH:MM with start before end, got {shown(h)}")
        hours.append((a, b))
    if not hours:
        raise c.fail("calling_hours", "expected a list like ['08:00-12:00', '13:30-21:00']")
    tz = c.text("time_zone", d.time_zone)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise c.fail("time_zone", f"unknown time zone {tz!r}") from None
    return ClickToCallSettings(caller_ids=tuple(str(x) for x in ids), calling_hours=tuple(hours), time_zone=tz,
                               agent_ring_timeout=c.duration("agent_ring_timeout", d.agent_ring_timeout, gt=0),
                               ring_timeout=c.duration("ring_timeout", d.ring_timeout, gt=0),
                               max_calls_per_number=c.integer("max_calls_per_number", 0, 0, 1000),
                               cap_window=c.duration("cap_window", d.cap_window, gt=0),
                               cap_group=c.text("cap_group", d.cap_group) or d.cap_group,
                               wrapup=c.duration("wrapup", None, 0, 3600))


def _dialing(r: Reader) -> DialRules:
    """The ``dialing`` section: the dial policy every callback, transfer and campaign dial goes through."""
    d = r.section("dialing", {"allow_international", "allow_premium", "allowed_prefixes", "denied_prefixes",
                              "callback_max_per_number", "callback_max_per_source", "transfer_allow"})
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("allowed_prefixes", "denied_prefixes", "transfer_allow"):
        items = d.items(key)
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise d.fail(f"{key}[{i}]", f"expected a string, got {shown(item)}")
            if key != "transfer_allow" and not re.fullmatch(r"\+[0-9]{1,14}", item):
                raise d.fail(f"{key}[{i}]", f"{item!r} is not an E.164 prefix (+ and digits)")
            if key == "transfer_allow" and not re.match(r"^(sips?|tel):", item):
                raise d.fail(f"{key}[{i}]", "must be a sip:, sips: or tel: URI pattern")
        lists[key] = tuple(str(item) for item in items)
    return DialRules(allow_international=d.flag("allow_international", False),
                     allow_premium=d.flag("allow_premium", False), **lists,
                     callback_max_per_number=d.integer("callback_max_per_number", 3, 0),
                     callback_max_per_source=d.integer("callback_max_per_source", 100, 0))
