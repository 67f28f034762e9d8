"""The browser phone of the agent desktop (``static/phone.js``, JsSIP): where it registers and with what.

The phone registers at the encrypted edge's WebSocket (Kamailio WSS, callcenter/edge.py ``Encryption``) with
the agent's SIP credentials, which live in the edge's credentials file (``<agent id>: <password>``, read by
``callcenter kamailio``). The worker reads the same file (``phone.credentials``) at start and keeps only each
agent's HA1 = MD5("<agent>:<realm>:<password>"), which is what the edge's subscriber table holds and what
JsSIP's ``ha1`` + ``realm`` options answer a digest challenge with: the password itself never leaves the
worker's start, never reaches a page, a log or Redis.

    GET /agents/{id}/phone   {"ws_url", "uri", "user", "realm", "ha1"} for the signed-in agent itself only
                             (role agent, own id: not a supervisor nor an admin); 404 when the agent has no
                             SIP credentials; not served at all without a ``phone`` section.

Config (worker yaml, validated at start)::

    phone:
      ws_url: wss://edge.example.com:7443     # the edge's WebSocket (wss://, or ws:// for a LAN demo)
      credentials: /etc/callcenter/sip-credentials.yaml   # the edge's file (relative: to the config file)
      domain: edge.example.com                # the agents' SIP domain (default: ws_url's host)

The agent page's Content-Security-Policy then allows ``connect-src`` to exactly that ws_url.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from callcenter import edge, logs
from callcenter.api.http import HttpError, HttpRouter, Reply, Request, Response
from callcenter.auth.roles import AGENT
from callcenter.routing.rules import RoutingRules
from callcenter.yamlsrc import Reader, shown

log = logs.get("console.phone")

KEYS = ("ws_url", "credentials", "domain")
OWN_PHONE = frozenset({AGENT})      # with own="id": an agent's own credentials, nobody else's


@dataclass(frozen=True)
class PhoneSettings:
    ws_url: str              # wss://host:port[/path]
    credentials: Path        # the edge's credentials file
    domain: str              # sip:<agent>@<domain>


def parse_settings(r: Reader, rel: Callable[[str], Path]) -> PhoneSettings | None:
    """The ``phone`` section (absent: the agent desktop has no phone)."""
    s = r.section("phone", KEYS)
    if "phone" not in r:
        return None
    url = s.text("ws_url", "", required=True)
    parts = urlsplit(url)
    if parts.scheme not in ("wss", "ws") or not parts.hostname or any(c in url for c in " \"';,"):
        raise s.fail("ws_url", f"expected the edge's WebSocket URL such as wss://edge.example.com:7443, got {shown(url)}")
    creds = rel(s.text("credentials", "", required=True))
    if not creds.is_file():
        raise s.fail("credentials", f"no such file: {creds}")
    domain = s.text("domain", parts.hostname or "")
    if not domain or any(c in domain for c in " @;:/<>\"'"):
        raise s.fail("domain", f"expected a SIP domain such as edge.example.com, got {shown(domain)}")
    return PhoneSettings(url, creds, domain)


@dataclass(frozen=True)
class PhoneBook:
    """Each agent's HA1 for the edge's realm, read once from the credentials file."""

    settings: PhoneSettings
    ha1: dict[str, str] = field(repr=False)
    realm: str = edge.REALM

    @classmethod
    def load(cls, settings: PhoneSettings, rules: RoutingRules) -> PhoneBook:
        passwords = edge.load_credentials(settings.credentials, rules)
        return cls(settings, {agent: edge.ha1(agent, pw) for agent, pw in passwords.items()})

    def origin(self) -> str:
        """What the agent page's CSP connect-src allows: the configured WebSocket URL, exactly."""
        return self.settings.ws_url

    def registration(self, agent: str) -> dict[str, str] | None:
        digest = self.ha1.get(agent)
        if digest is None:
            return None
        return {"ws_url": self.settings.ws_url, "uri": f"sip:{agent}@{self.settings.domain}", "user": agent,
                "realm": self.realm, "ha1": digest}


def install_routes(router: HttpRouter, book: PhoneBook) -> None:
    async def credentials(req: Request) -> Reply:
        agent = req.params["id"]
        found = book.registration(agent)
        if found is None:
            raise HttpError(404, f"agent {agent} has no SIP credentials at the edge")
        log.info("browser phone credentials handed out", agent_id=agent)      # never the digest itself
        return Response(found, headers={"Cache-Control": "no-store"})

    router.add("GET /agents/{id}/phone", credentials, roles=OWN_PHONE, own="id")
