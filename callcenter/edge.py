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

* ``limits.cfg``: the edge's flood and brute-force limits (``Limits``) as Kamailio defines, which
  kamailio.cfg imports from ``callcenter/limits.cfg`` beside itself (``kamailio -A NAME=value`` still wins).

* ``dialogs.cfg``: the secret (``DLG_SECRET``) the edge signs its Record-Route with, made once and kept across
  rewrites: Kamailio keeps its dialogs in memory, so after a restart it relays an in-dialog request of a
  dialog it no longer knows only if that request carries this edge's signature (forged ones still get 481).

* ``encryption.cfg``: the encrypted edge (``Encryption``): rtpengine's control socket, the TLS certificate
  and key, the WebSocket port, as Kamailio defines (an empty file: plain SIP, media untouched).
  ``self_signed`` makes a certificate for a demo or a test (openssl; never committed).

The credentials file is YAML, ``<agent id>: <password>``, kept apart from routing_rules.yaml (which
ends up in Redis and behind GET /admin/rules) and readable by the operator only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import subprocess
from dataclasses import dataclass, fields
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


@dataclass(frozen=True)
class Limits:
    """What an untrusted address may do before the edge bans it (no answer at all for ban_seconds)."""

    ban_seconds: int = 600
    pike_density: int = 60      # requests per 2 s, any method
    invite_rate: int = 10       # new INVITEs per second
    register_rate: int = 10     # REGISTERs per second
    auth_failures: int = 5      # wrong digest answers (or 403s) ...
    auth_window: int = 600      # ... counted until the address has not failed for this long
    max_call: int = 14400       # seconds; then the edge sends BYE to both ends

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"edge limit {f.name}: must be a positive integer, got {value!r}")

    def defines(self) -> str:
        """Kamailio preprocessor text; guarded so that `kamailio -A NAME=value` overrides a value."""
        return "".join(f"#!ifndef {f.name.upper()}\n#!define {f.name.upper()} {getattr(self, f.name)}\n#!endif\n"
                       for f in fields(self))


_SOCK = re.compile(r"^udp6?:[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True)
class Encryption:
    """The encrypted edge: rtpengine anchors the media of agents on TLS, WebSocket or behind NAT; with a
    certificate the edge serves SIP over TLS (desk phones, SRTP by SDES) and WSS (browsers, DTLS-SRTP)."""

    rtpengine: str = ""          # rtpengine's ng socket, e.g. udp:127.0.0.1:2223 ("" = no media anchoring)
    certificate: str = ""        # PEM certificate (chain) for TLS and WSS ("" = no TLS)
    private_key: str = ""
    wss_port: int = 8443
    ws_port: int = 0             # plain ws://, for a LAN or localhost only (0 = none)

    def __post_init__(self) -> None:
        if self.rtpengine and not _SOCK.match(self.rtpengine):
            raise ConfigError(f"rtpengine socket {self.rtpengine!r}: expected udp:HOST:PORT")
        if bool(self.certificate) != bool(self.private_key):
            raise ConfigError("TLS needs both a certificate and its private key")
        if self.certificate and not self.rtpengine:
            raise ConfigError("TLS and WebSocket agents need rtpengine (their media is SRTP): give its socket")
        for name in ("wss_port", "ws_port"):
            port = getattr(self, name)
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
                raise ConfigError(f"edge {name}: expected a port number, got {port!r}")
        for name in ("certificate", "private_key"):
            if '"' in getattr(self, name):
                raise ConfigError(f"edge {name}: a path without quotes")

    def defines(self) -> str:
        out = []
        if self.rtpengine:
            out.append(f'#!define RTPENGINE "{self.rtpengine}"\n')
        if self.certificate:
            out += ["#!define WITH_TLS\n", f'#!define TLS_CERT "{self.certificate}"\n',
                    f'#!define TLS_KEY "{self.private_key}"\n', f"#!define WSS_PORT {self.wss_port}\n"]
            if self.ws_port:
                out.append(f"#!define WS_PORT {self.ws_port}\n")
        return "".join(out)


def self_signed(out: str | Path, names: list[str], days: int = 825) -> tuple[Path, Path]:
    """A self-signed certificate for the edge (demo, tests): its key (0600) and certificate in ``out``,
    valid for ``names`` (host names or IP addresses: the subjectAltName phones and browsers check)."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    key, cert = d / "edge.key", d / "edge.crt"
    alt = ",".join(f"IP:{n}" if re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]*:[0-9A-Fa-f:]*", n) else f"DNS:{n}"
                   for n in names)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", str(days),
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={names[0]}",
                    "-addext", f"subjectAltName={alt}", "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    return cert, key


_LIMIT_HELP = {
    "ban_seconds": "seconds a banned address gets no answer at all",
    "pike_density": "requests per address per 2 s before a ban",
    "invite_rate": "new INVITEs per address per second before a ban",
    "register_rate": "REGISTERs per address per second before a ban",
    "auth_failures": "wrong passwords per address before a ban",
    "auth_window": "seconds without a failure after which an address's count is forgotten",
    "max_call": "longest call through the edge in seconds (then BYE to both ends)",
}


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """`callcenter kamailio --ban-seconds N ...`: one option per field of Limits."""
    for f in fields(Limits):
        parser.add_argument("--" + f.name.replace("_", "-"), type=int, default=f.default, metavar="N",
                            help=f"{_LIMIT_HELP[f.name]} (default {f.default})")


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})


def trunk_uri(text: str) -> str:
    """A trunk's address (``host`` or ``host:port``): the edge trusts requests from that host, any port."""
    m = _TRUNK.match(text.strip())
    if not m or (m.group("port") and not 0 < int(m.group("port")) < 65536):
        raise ConfigError(f"trunk address {text!r}: expected host or host:port")
    return text.strip() if text.strip().startswith("sip:") else "sip:" + text.strip()


def rpc_defines(address: str) -> str:
    """rpc.cfg: the edge's admin-only JSON-RPC port (``host:port``; "" = none), where the workers read its
    registrations (routing/phones.py); kamailio.cfg answers there only ul.dump, to loopback and the workers."""
    if not address:
        return ""
    m = _WORKER.match(address.strip())
    if not m or address.strip().startswith("sip:") or ";" in address or not 0 < int(m.group("port")) < 65536:
        raise ConfigError(f"edge RPC address {address!r}: expected host:port (an admin-only interface)")
    return f"#!define RPC_PORT {int(m.group('port'))}\nlisten=tcp:{m.group('host')}:{int(m.group('port'))}\n"


def write_tables(out: str | Path, credentials: dict[str, str], workers: list[str], realm: str = REALM,
                 trunks: list[str] | None = None, limits: Limits | None = None,
                 encryption: Encryption | None = None, rpc: str = "") -> Path:
    """Write subscriber, version, dispatcher.list, limits.cfg, encryption.cfg, rpc.cfg and dialogs.cfg into ``out``
    (created, mode 0700; files 0600)."""
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
    _write(d / "limits.cfg", "# the edge's limits (written by `callcenter kamailio`)\n" + (limits or Limits()).defines())
    _write(d / "encryption.cfg", "# the encrypted edge (written by `callcenter kamailio`)\n"
           + (encryption or Encryption()).defines())
    _write(d / "rpc.cfg", "# the registrations' JSON-RPC port (written by `callcenter kamailio`)\n" + rpc_defines(rpc))
    _write(d / "dialogs.cfg", "# the edge's Record-Route signing secret (written once by `callcenter kamailio`, then kept)\n"
           f'#!define DLG_SECRET "{dialog_secret(d / "dialogs.cfg")}"\n')
    return d


_SECRET = re.compile(r'^#!define DLG_SECRET "([0-9a-f]{32,})"$', re.M)


def dialog_secret(path: Path) -> str:
    """The secret in ``path`` if it holds one (so dialogs signed before a rewrite or a restart stay
    valid), else a new one."""
    try:
        m = _SECRET.search(path.read_text(encoding="utf-8"))
    except OSError:
        m = None
    return m.group(1) if m else secrets.token_hex(16)


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
