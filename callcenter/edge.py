"""The SIP edge (Kamailio, deploy/kamailio/kamailio.cfg): the files it reads, written from our config.

Agents' softphones REGISTER at the edge with digest auth; the workers' offers go to
``sip:<agent>@<edge>`` and the edge finds the phone in its location table. Callers reach the
workers through the edge's dispatcher. The edge reads three files from one directory:

* ``subscriber`` (db_text): agent id -> HA1 = MD5("<agent>:<realm>:<password>"); the passwords
  themselves are never written anywhere, only read from the credentials file;
* ``version`` (db_text): the table versions Kamailio checks;
* ``dispatcher.list``: the workers' SIP addresses (set 1), which the edge pings with OPTIONS, and the
  trunks (set 2, flagged disabled: never dispatched to nor pinged, only recognised as a source).

Workers and trunks are the edge's trusted sources: exempt from its bans and rate limits, and the only
ones whose P-Asserted-Identity it relays (see deploy/kamailio/kamailio.cfg).

The credentials file is YAML, ``<agent id>: <password>``, kept apart from routing_rules.yaml (which
ends up in Redis and behind GET /admin/rules) and readable by the operator only.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from callcenter import yamlsrc
from callcenter.exceptions import ConfigError
from callcenter.routing.rules import RoutingRules

REALM = "callcenter"
SUBSCRIBER_VERSION = 7   # Kamailio 5.x table versions (db_text checks them at start)
LOCATION_VERSION = 9
MIN_PASSWORD = 8
_WORKER = re.compile(r"^(sip:)?(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})(;transport=(udp|tcp))?$")
_TRUNK = re.compile(r"^(sip:)?(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\])(:(?P<port>\d{1,5}))?$")
_DS_DISABLED = 4   # dispatcher destination flag: never selected, never pinged


def ha1(user: str, password: str, realm: str = REALM) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 - SIP digest is MD5


def load_credentials(path: str | Path, rules: RoutingRules) -> dict[str, str]:
    """Agent id -> password from the credentials file; every id must be an agent in the rules."""
    data, loc = yamlsrc.load(path)
    if not isinstance(data, dict) or not data:
        raise loc.error("", "expected a mapping of agent id -> SIP password")
    out: dict[str, str] = {}
    for agent, password in data.items():
        key = str(agent)
        if key not in rules.agents:
            raise loc.error(key, f"no agent {key!r} in the routing rules")
        if not isinstance(password, str | int) or len(str(password)) < MIN_PASSWORD:
            # the message never contains the value
            raise loc.error(key, f"password must be a string of at least {MIN_PASSWORD} characters")
        out[key] = str(password)
    return out


def worker_uri(text: str) -> str:
    """A worker's SIP address as the dispatcher list wants it (``sip:host:port[;transport=x]``)."""
    m = _WORKER.match(text.strip())
    if not m or not 0 < int(m.group("port")) < 65536:
        raise ConfigError(f"worker address {text!r}: expected host:port or sip:host:port")
    return text.strip() if text.strip().startswith("sip:") else "sip:" + text.strip()


def trunk_uri(text: str) -> str:
    """A trunk's address (``host`` or ``host:port``): the edge trusts requests from that host, any port."""
    m = _TRUNK.match(text.strip())
    if not m or (m.group("port") and not 0 < int(m.group("port")) < 65536):
        raise ConfigError(f"trunk address {text!r}: expected host or host:port")
    return text.strip() if text.strip().startswith("sip:") else "sip:" + text.strip()


def write_tables(out: str | Path, credentials: dict[str, str], workers: list[str], realm: str = REALM,
                 trunks: list[str] | None = None) -> Path:
    """Write subscriber, version and dispatcher.list into ``out`` (created, mode 0700; files 0600)."""
    if not workers:
        raise ConfigError("at least one worker address is needed for the dispatcher list")
    uris = [worker_uri(w) for w in workers]
    trunk_uris = [trunk_uri(t) for t in trunks or []]
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    rows = ["id(int,auto) username(string) domain(string,null) password(string,null) ha1(string) "
            "ha1b(string,null)"]
    for i, (agent, password) in enumerate(sorted(credentials.items()), start=1):
        rows.append(f"{i}:{agent}:{realm}::{ha1(agent, password, realm)}:")
    _write(d / "subscriber", "\n".join(rows) + "\n")
    _write(d / "version", "table_name(string) table_version(int)\n"
                          f"subscriber:{SUBSCRIBER_VERSION}\nlocation:{LOCATION_VERSION}\n")
    _write(d / "dispatcher.list", "# set destination flags  (written by `callcenter kamailio`)\n"
           + "".join(f"1 {u}\n" for u in uris)
           + "".join(f"2 {u} {_DS_DISABLED}\n" for u in trunk_uris))
    return d


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
