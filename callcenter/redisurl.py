"""Redis URLs as the config and the command lines give them: a plain ``redis://``/``rediss://``/``unix://``
URL, or a Sentinel one, ``redis+sentinel://[[user]:password@]host:port[,host:port...]/master_name[/db]``
(``?sentinel_password=`` when the sentinels ask for one); either may carry this package's own options
``?wait_replicas=N&wait_ms=T`` (:class:`Durability`). Pure parsing: :mod:`callcenter.redisconn` makes the
clients."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from callcenter.yamlsrc import Reader

SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")
SENTINEL_SCHEME = "redis+sentinel"


class UrlError(ValueError):
    """A Redis URL the package cannot use; the message says what is wrong (config.py names the key)."""


@dataclass(frozen=True)
class Durability:
    """How a write that must survive a failover is acknowledged: ``WAIT replicas timeout_ms`` on its own
    connection right after it (``replicas`` 0: no WAIT; the write counts once the master has it)."""
    replicas: int = 0
    timeout_ms: int = 0


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names: the sentinels to ask, the master's name, and the
    master's own db and credentials (``sentinel_password`` for the sentinels, if they have one)."""
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def host_port(item: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) of a sentinel; UrlError if it is not one."""
    host, sep, port = item.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UrlError(f"sentinel address {item.strip()!r} is not host:port")
    return host.strip("[]"), int(port)


def split_url(url: str) -> tuple[str, Durability]:
    """The URL without the package's own query options, and the durability they ask for."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in ("wait_replicas", "wait_ms")}
    if not ours:
        return url, Durability()
    for k, v in ours.items():
        if not v.isdigit():
            raise UrlError(f"{k} must be a whole number, got {v!r}")
    durable = Durability(int(ours.get("wait_replicas", "0")), int(ours.get("wait_ms", "0")))
    if durable.replicas and not durable.timeout_ms:
        raise UrlError("wait_replicas needs wait_ms > 0 (WAIT with no timeout would wait forever)")
    rest = urlencode([(k, v) for k, v in query if k not in ours])
    return urlunsplit(parts._replace(query=rest)), durable


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME + "://")


def check_url(url: str) -> None:
    """Raise :class:`UrlError` if ``url`` is not one :func:`callcenter.redisconn.connect` can use."""
    if not url.startswith(SCHEMES):
        raise UrlError("must start with " + ", ".join(SCHEMES[:-1]) + " or " + SCHEMES[-1])
    plain, _ = split_url(url)
    if is_sentinel(plain):
        parse_sentinel(plain)


def parse_sentinel(url: str) -> SentinelTarget:
    """The parts of a ``redis+sentinel://`` URL (without wait_* options: :func:`split_url` first)."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise UrlError(f"not a {SENTINEL_SCHEME}:// URL")
    creds, _, hosts = parts.netloc.rpartition("@")
    user, _, password = creds.partition(":")
    sentinels = tuple(host_port(h) for h in hosts.split(",") if h.strip())
    if not sentinels:
        raise UrlError("names no sentinel (redis+sentinel://host:port,host:port/master_name)")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise UrlError("must end in /master_name or /master_name/db")
    query = dict(parse_qsl(parts.query))
    unknown = sorted(set(query) - {"sentinel_password"})
    if unknown:
        raise UrlError(f"unknown option {unknown[0]!r}")
    return SentinelTarget(sentinels, unquote(path[0]), int(path[1]) if len(path) == 2 else 0,
                          unquote(user) or None, unquote(password) or None,
                          query.get("sentinel_password") or None)


def sentinel_url(sentinels: list[str], master: str, *, db: int = 0, password: str = "",
                 sentinel_password: str = "") -> str:
    """The ``redis+sentinel://`` URL of a config's ``redis.sentinels`` and ``redis.master_name``."""
    hosts = []
    for item in sentinels:
        host, port = host_port(item)
        hosts.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    creds = f":{quote(password, safe='')}@" if password else ""
    query = f"?{urlencode({'sentinel_password': sentinel_password})}" if sentinel_password else ""
    return f"{SENTINEL_SCHEME}://{creds}{','.join(hosts)}/{quote(master, safe='')}/{db}{query}"


def with_durability(url: str, durable: Durability) -> str:
    """``url`` asking the writers that must survive a failover for ``durable``."""
    if not durable.replicas:
        return url
    sep = "&" if urlsplit(url).query else "?"
    return f"{url}{sep}wait_replicas={durable.replicas}&wait_ms={durable.timeout_ms}"


REDIS_KEYS = {"url", "prefix", "sentinels", "master_name", "password", "sentinel_password", "db",
              "wait_replicas", "wait_timeout"}


def parse_config(rd: Reader) -> str | None:
    """The URL every client of a worker is made from, out of the config's ``redis:`` section: ``url``
    (``${REDIS_URL}``; None: the embedded server), or ``sentinels`` (host:port list) + ``master_name``
    (+ ``password``, ``sentinel_password``, ``db``). ``wait_replicas`` (default 1 under Sentinel, else 0)
    and ``wait_timeout`` (default 0.5 s): the WAIT of the writes that must survive a failover."""
    sentinels = [str(s) for s in rd.items("sentinels")]
    url = rd.text("url", "" if sentinels else "${REDIS_URL}") or None
    if sentinels:
        if url:
            raise rd.fail("url", "give either url or sentinels (+ master_name), not both")
        for i, item in enumerate(sentinels):
            try:
                host_port(item)
            except UrlError as exc:
                raise rd.fail(f"sentinels[{i}]", str(exc)) from None
        master = rd.text("master_name", "")
        if not master:
            raise rd.fail("master_name", "required with sentinels (the name they monitor the master by)")
        url = sentinel_url(sentinels, master, db=rd.integer("db", 0, 0, 15), password=rd.text("password", ""),
                           sentinel_password=rd.text("sentinel_password", ""))
    else:
        for key in ("master_name", "password", "sentinel_password", "db"):
            if key in rd:
                raise rd.fail(key, "only with sentinels (a plain url carries its own password and db)")
        if url:
            try:
                check_url(url)
            except UrlError as exc:
                raise rd.fail("url", str(exc)) from None
    if url is None:
        return None
    if split_url(url)[1].replicas:
        raise rd.fail("url", "wait_replicas belongs in redis.wait_replicas, not in the url")
    replicas = rd.integer("wait_replicas", 1 if is_sentinel(url) else 0, 0, 10)
    timeout = rd.duration("wait_timeout", 0.5, gt=0, hi=10)
    return with_durability(url, Durability(replicas, max(1, round(timeout * 1000))))
