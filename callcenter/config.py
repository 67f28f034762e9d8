"""The worker configuration (`callcenter.yaml`), read once and validated into frozen dataclasses.

Every error names the file, the key path and the line:
    callcenter.yaml:7: sip.port: must be an integer between 1 and 65535
Relative paths are resolved against the config file's directory. `${VAR}` and `${VAR:-default}`
in string values are expanded from the environment (REDIS_URL for example).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.dialer.policy import DialRules
from callcenter.telephony.settings import CapacitySettings, SipSettings
from callcenter.telephony.trust import DEFAULT_TRUSTED, TrustedSource, parse_network
from callcenter.yamlsrc import Located, load

_ENV = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


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


HTTP_KEYS = {"bind", "port", "auth", "allowed_origins", "metrics_token", "cookie_secure", "session_idle_seconds",
             "session_max_seconds", "login_failures", "login_window_seconds", "audit_max_entries"}


def _http(r: _Reader) -> HttpConfig:
    """The http section. An API reachable from other hosts must not run without authentication."""
    import ipaddress

    h = r.section("http", HTTP_KEYS)
    bind = r.get(h, "http.bind", str, "127.0.0.1")
    auth = r.get(h, "http.auth", bool, True)
    try:
        loopback = bind == "localhost" or ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = False
    if not auth and not loopback:
        raise r.loc.error("http.auth" if "auth" in h else "http.bind",
                          f"http.auth: false is only allowed with a loopback http.bind (127.0.0.1, ::1); "
                          f"http.bind is {bind}: anyone who reaches it could log agents out, start campaigns "
                          f"and read contacts")
    origins = r.get(h, "http.allowed_origins", list, [])
    for i, o in enumerate(origins):
        if not isinstance(o, str) or not re.match(r"^https?://[^/\s]+$", o):
            raise r.loc.error(f"http.allowed_origins[{i}]", "must be an origin like https://cc.example.com "
                                                             "(scheme://host[:port], no path)")
    ints = {k: r.get(h, f"http.{k}", int, d) for k, d in (("login_failures", 5), ("login_window_seconds", 300),
                                                          ("audit_max_entries", 1_000_000))}
    for k, v in ints.items():
        if v < 1:
            raise r.loc.error(f"http.{k}", "must be >= 1")
    return HttpConfig(bind=bind, port=r.port(h, "http.port", 8080), auth=auth,
                      allowed_origins=tuple(o.rstrip("/") for o in origins),
                      metrics_token=r.get(h, "http.metrics_token", str, ""),
                      cookie_secure=r.get(h, "http.cookie_secure", bool, False),
                      session_idle_seconds=r.positive(h, "http.session_idle_seconds", 1800.0),
                      session_max_seconds=r.positive(h, "http.session_max_seconds", 43200.0), **ints)


@dataclass(frozen=True)
class QueueMediaConfig:
    music: Path
    agent_ring_timeout: float = 15.0
    announce_every: float = 30.0


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

    def flow_for(self, called: str) -> str:
        return self.routes.get(called) or self.routes.get("default") or "hotline"


class _Reader:
    """Typed getters over one loaded document; each failure names file, key and line."""

    def __init__(self, data: Any, loc: Located) -> None:
        self.data = data if isinstance(data, dict) else {}
        self.loc = loc
        if data is not None and not isinstance(data, dict):
            raise loc.error("", "the top level must be a mapping")

    def section(self, name: str, known: set[str]) -> dict[str, Any]:
        value = self.data.get(name, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.loc.error(name, "must be a mapping")
        for key in value:
            if key not in known:
                raise self.loc.error(f"{name}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
        return value

    def get(self, section: dict[str, Any], path: str, kind: type, default: Any) -> Any:
        key = path.rsplit(".", 1)[-1]
        value = section.get(key, default)
        if isinstance(value, str):
            value = _ENV.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if value is not None and not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise self.loc.error(path, f"must be {kind.__name__}, got {type(value).__name__} {value!r}")
        return value

    def port(self, section: dict[str, Any], path: str, default: int) -> int:
        value = self.get(section, path, int, default)
        if not 1 <= value <= 65535:
            raise self.loc.error(path, "must be an integer between 1 and 65535")
        return int(value)

    def positive(self, section: dict[str, Any], path: str, default: float) -> float:
        value = self.get(section, path, float, default)
        if value <= 0:
            raise self.loc.error(path, "must be greater than 0")
        return float(value)


SIP_SECURITY_KEYS = ("trusted", "max_calls_per_source", "rtp_timeout", "max_call_seconds",
                     "max_tcp_connections")


def _sip_security(r: _Reader, s: dict[str, Any]) -> dict[str, Any]:
    """sip.trusted (addresses/CIDRs, or {net, max_calls, pai} mappings) and the per-call limits."""
    loc = r.loc
    raw = r.get(s, "sip.trusted", list, None)
    trusted = DEFAULT_TRUSTED
    if raw is not None:
        entries = []
        for i, item in enumerate(raw):
            path = f"sip.trusted[{i}]"
            if isinstance(item, dict):
                for key in item:
                    if key not in ("net", "max_calls", "pai"):
                        raise loc.error(f"{path}.{key}", "unknown key (known: max_calls, net, pai)")
                net, cap, pai = item.get("net"), item.get("max_calls"), item.get("pai", True)
                if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
                    raise loc.error(f"{path}.max_calls", "must be an integer >= 1")
                if not isinstance(pai, bool):
                    raise loc.error(f"{path}.pai", "must be true or false")
                path = f"{path}.net"
            else:
                net, cap, pai = item, None, True
            if not isinstance(net, str):
                raise loc.error(path, "must be an IP address or CIDR network such as 10.0.0.0/24")
            try:
                entries.append(TrustedSource(parse_network(net), cap, pai))
            except ValueError as exc:
                raise loc.error(path, str(exc)) from None
        trusted = tuple(entries)
    limits: dict[str, Any] = {"trusted": trusted}
    for key, default in (("max_calls_per_source", 200), ("max_tcp_connections", 1000)):
        value = r.get(s, f"sip.{key}", int, default)
        if value < 0:
            raise loc.error(f"sip.{key}", "must be >= 0")
        limits[key] = value
    for key, default in (("rtp_timeout", 60.0), ("max_call_seconds", 14400.0)):
        value = r.get(s, f"sip.{key}", float, default)
        if value < 0 or 0 < value < 2:
            raise loc.error(f"sip.{key}", "must be 0 (off) or at least 2 seconds")
        limits[key] = value
    if limits["max_calls_per_source"] == 0:
        raise loc.error("sip.max_calls_per_source", "must be >= 1 (a trusted entry can raise its own)")
    return limits


CAPACITY_KEYS = {"loop_lag_seconds", "loop_cpu", "process_cpu", "reserve_calls", "max_new_calls_per_second",
                 "retry_after", "hold_seconds"}


def _capacity(r: _Reader, max_calls: int) -> CapacitySettings:
    """The capacity section: when a worker answers new calls 503 + Retry-After (telephony/admission.py)."""
    c = r.section("capacity", CAPACITY_KEYS)
    d = CapacitySettings()
    lag = r.get(c, "capacity.loop_lag_seconds", float, d.loop_lag_seconds)
    if not 0.001 <= lag <= 10:
        raise r.loc.error("capacity.loop_lag_seconds", "must be between 0.001 and 10 seconds")
    loop_cpu = r.get(c, "capacity.loop_cpu", float, d.loop_cpu)
    if loop_cpu != 0 and not 0.2 <= loop_cpu <= 1.0:
        raise r.loc.error("capacity.loop_cpu", "must be 0 (off) or a share of one core between 0.2 and 1.0")
    process_cpu = r.get(c, "capacity.process_cpu", float, d.process_cpu)
    if process_cpu < 0:
        raise r.loc.error("capacity.process_cpu", "must be 0 (off) or cores, e.g. 1.5")
    # A small worker (sip.max_calls under 100) keeps a quarter for agent legs unless told otherwise.
    reserve = r.get(c, "capacity.reserve_calls", int, min(d.reserve_calls, max_calls // 4))
    if not 0 <= reserve <= max_calls // 2:
        raise r.loc.error("capacity.reserve_calls", f"must be between 0 and half of sip.max_calls ({max_calls // 2})")
    rate = r.get(c, "capacity.max_new_calls_per_second", float, d.max_new_calls_per_second)
    if rate < 0:
        raise r.loc.error("capacity.max_new_calls_per_second", "must be 0 (no cap) or more")
    retry = r.get(c, "capacity.retry_after", int, d.retry_after)
    if not 1 <= retry <= 3600:
        raise r.loc.error("capacity.retry_after", "must be between 1 and 3600 seconds")
    hold = r.get(c, "capacity.hold_seconds", float, d.hold_seconds)
    if not 0 <= hold <= 600:
        raise r.loc.error("capacity.hold_seconds", "must be between 0 and 600 seconds")
    return CapacitySettings(loop_lag_seconds=lag, loop_cpu=loop_cpu, process_cpu=process_cpu,
                            reserve_calls=reserve, max_new_calls_per_second=rate, retry_after=retry,
                            hold_seconds=hold)


def load_config(path: str | Path) -> Config:
    """Read and validate the worker config; raises ConfigError naming file, key and line."""
    p = Path(path).resolve()
    data, loc = load(p)
    r = _Reader(data, loc)
    for key in r.data:
        if key not in {"worker", "sip", "redis", "http", "paths", "cdr", "routes", "queue", "language",
                       "logging", "dialing", "capacity"}:
            raise loc.error(str(key), "unknown section")
    base = p.parent

    def rel(value: str) -> Path:
        q = Path(value)
        return q if q.is_absolute() else (base / q).resolve()

    w = r.section("worker", {"id", "data_dir", "drain_seconds"})
    worker_id = r.get(w, "worker.id", str, "") or os.environ.get("CALLCENTER_WORKER_ID") or \
        f"{socket.gethostname()}-{os.getpid()}"
    data_dir = rel(r.get(w, "worker.data_dir", str, "var"))
    drain = r.positive(w, "worker.drain_seconds", 30.0)

    s = r.section("sip", {"bind", "port", "transports", "public_address", "rtp_port", "rtp_port_range",
                          "max_calls", "log_level", "user", "trunk", *SIP_SECURITY_KEYS})
    transports = r.get(s, "sip.transports", list, ["udp", "tcp"])
    for i, t in enumerate(transports):
        if t not in ("udp", "tcp"):
            raise loc.error(f"sip.transports[{i}]", f"unknown transport {t!r} (udp, tcp)")
    max_calls = r.get(s, "sip.max_calls", int, 1000)
    if not 1 <= max_calls <= 1024:
        raise loc.error("sip.max_calls", "must be between 1 and 1024 (PJSUA_MAX_CALLS of the build)")
    sip = SipSettings(
        bind=r.get(s, "sip.bind", str, "0.0.0.0"),
        port=r.port(s, "sip.port", 5060),
        public_address=r.get(s, "sip.public_address", str, ""),
        transports=tuple(transports),
        rtp_port=r.port(s, "sip.rtp_port", 10000),
        rtp_port_range=r.get(s, "sip.rtp_port_range", int, 20000),
        max_calls=max_calls,
        user=r.get(s, "sip.user", str, "callcenter"),
        log_level=r.get(s, "sip.log_level", int, 2),
        capacity=_capacity(r, max_calls),
        **_sip_security(r, s),
    )

    rd = r.section("redis", {"url", "prefix"})
    url = r.get(rd, "redis.url", str, "${REDIS_URL}") or None
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise loc.error("redis.url", "must start with redis://, rediss:// or unix://")
    redis_cfg = RedisConfig(url=url, prefix=r.get(rd, "redis.prefix", str, "cc:"))

    http = _http(r)

    pa = r.section("paths", {"ivr_scripts", "sounds", "routing_rules", "campaigns"})
    paths = {k: rel(r.get(pa, f"paths.{k}", str, d)) for k, d in
             (("ivr_scripts", "ivr_scripts"), ("sounds", "sounds"), ("routing_rules", "routing_rules.yaml"),
              ("campaigns", "campaigns"))}
    for key, q in paths.items():
        if not q.exists():
            raise loc.error(f"paths.{key}", f"{q} does not exist")

    c = r.section("cdr", {"store", "writer"})
    store = r.get(c, "cdr.store", str, f"sqlite:///{data_dir / 'cdr.db'}")
    if not store.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise loc.error("cdr.store", "must be sqlite:///PATH or postgresql://...")

    routes_raw = r.data.get("routes", {}) or {}
    if not isinstance(routes_raw, dict):
        raise loc.error("routes", "must map called numbers to IVR flow names")
    routes = {str(k): str(v) for k, v in routes_raw.items()}

    q = r.section("queue", {"music", "agent_ring_timeout", "announce_every"})
    queue = QueueMediaConfig(music=rel(r.get(q, "queue.music", str, "sounds/moh.wav")),
                             agent_ring_timeout=r.positive(q, "queue.agent_ring_timeout", 15.0),
                             announce_every=r.positive(q, "queue.announce_every", 30.0))
    lang = r.get(r.data, "language", str, "vi")
    if lang not in ("vi", "en"):
        raise loc.error("language", "must be vi or en")
    lg = r.section("logging", {"level"})
    level = r.get(lg, "logging.level", str, "info")
    if level not in ("debug", "info", "warning", "error"):
        raise loc.error("logging.level", "must be debug, info, warning or error")
    dialing = _dialing(r)
    return Config(file=p, worker_id=worker_id, data_dir=data_dir, drain_seconds=drain, sip=sip,
                  redis=redis_cfg, http=http, ivr_scripts=paths["ivr_scripts"], sounds=paths["sounds"],
                  routing_rules=paths["routing_rules"], campaigns=paths["campaigns"], cdr_store=store,
                  run_cdr_writer=r.get(c, "cdr.writer", bool, True), default_language=lang, routes=routes,
                  queue=queue, log_level=level, trunk=r.get(s, "sip.trunk", str, ""), dialing=dialing)


def _dialing(r: _Reader) -> DialRules:
    """The ``dialing`` section: the dial policy every callback, transfer and campaign dial goes through."""
    d = r.section("dialing", {"allow_international", "allow_premium", "allowed_prefixes", "denied_prefixes",
                              "callback_max_per_number", "callback_max_per_source", "transfer_allow"})
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("allowed_prefixes", "denied_prefixes", "transfer_allow"):
        items = r.get(d, f"dialing.{key}", list, [])
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise r.loc.error(f"dialing.{key}[{i}]", "must be a non-empty string")
            if key != "transfer_allow" and not re.fullmatch(r"\+[0-9]{1,14}", item):
                raise r.loc.error(f"dialing.{key}[{i}]", f"{item!r} is not an E.164 prefix (+ and digits)")
            if key == "transfer_allow" and not re.match(r"^(sips?|tel):", item):
                raise r.loc.error(f"dialing.{key}[{i}]", "must be a sip:, sips: or tel: URI pattern")
        lists[key] = tuple(items)
    caps = {}
    for key, default in (("callback_max_per_number", 3), ("callback_max_per_source", 100)):
        caps[key] = r.get(d, f"dialing.{key}", int, default)
        if caps[key] < 0:
            raise r.loc.error(f"dialing.{key}", "must be 0 (no cap) or more")
    return DialRules(allow_international=r.get(d, "dialing.allow_international", bool, False),
                     allow_premium=r.get(d, "dialing.allow_premium", bool, False), **lists, **caps)
