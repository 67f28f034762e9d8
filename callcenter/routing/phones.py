"""Which agents have a phone registered at the SIP edge, so that routing offers calls only to those.

The workers pull: one worker per period (a Redis guard, as for queue.stats) asks each edge (Kamailio,
deploy/kamailio/kamailio.cfg) for its location table over JSON-RPC (``ul.dump`` on the edge's
admin-only HTTP port, ``callcenter kamailio --rpc-port``) and hands the agents with a live contact to
routing (``Router.phones``, phones.lua): an agent with none is paused ``no_phone`` and never offered a call
(the wallboard shows "No phone registered" from its agent.state event); one whose phone registered is
available again at once. The set expires when nobody polls (the edge unreachable, no edge configured):
then every agent is taken to have a phone, and the edge's instant 480 (OriginateResult.UNREGISTERED) is the
check again, as it stays for the race of a registration lapsing between two polls.

    edge:
      registrations: [http://10.0.0.2:5062/RPC]   # each edge's JSON-RPC URL ([]: routing does not ask)
      poll_every: 2s                             # how often one worker reads them
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import redis.asyncio as aredis

from callcenter import logs, metrics
from callcenter.routing.keys import Keys
from callcenter.yamlsrc import Reader

if TYPE_CHECKING:
    from callcenter.routing.router import Router

log = logs.get("phones")

RPC_TIMEOUT = 2.0


@dataclass(frozen=True)
class EdgeSettings:
    registrations: tuple[str, ...] = ()   # the edges' JSON-RPC URLs
    poll_every: float = 2.0

    @property
    def valid_for(self) -> float:
        """How long one poll's set stands without another (a few missed polls before routing stops trusting it)."""
        return max(3 * self.poll_every, 6.0)


def parse_settings(r: Reader) -> EdgeSettings:
    e = r.section("edge", {"registrations", "poll_every"})
    urls = []
    for i, url in enumerate(e.items("registrations")):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 500:
            raise e.fail(f"registrations[{i}]", "expected the edge's JSON-RPC URL, http://host:port/RPC")
        urls.append(url)
    return EdgeSettings(tuple(urls), e.duration("poll_every", EdgeSettings.poll_every, 0.2, 60))


def _live_aors(node: object) -> Iterator[str]:
    """The AoRs of ``ul.dump``'s answer that have a contact not expired."""
    if isinstance(node, list):
        for x in node:
            yield from _live_aors(x)
    elif isinstance(node, dict):
        info = node.get("Info")
        if isinstance(info, dict) and "AoR" in info:
            contacts = info.get("Contacts") or []
            if any(_live(c) for c in contacts if isinstance(c, dict)):
                yield str(info["AoR"]).split("@", 1)[0]
            return
        for v in node.values():
            yield from _live_aors(v)


def _live(contact: dict[str, object]) -> bool:
    c = contact.get("Contact", contact)
    expires = c.get("Expires") if isinstance(c, dict) else None
    return expires == "permanent" or (isinstance(expires, int) and expires > 0)


def registered(url: str, timeout: float = RPC_TIMEOUT) -> set[str]:
    """The users with a live contact in one edge's location table (blocking; raises OSError/ValueError)."""
    # the full dump: "brief" names the AoRs only, without their contacts' expiry (an expired contact stays in
    # the table until usrloc's timer, up to a minute)
    body = json.dumps({"jsonrpc": "2.0", "method": "ul.dump", "id": 1}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        answer = json.loads(resp.read(16 << 20))
    if not isinstance(answer, dict) or "result" not in answer:
        raise ValueError(f"ul.dump: {str(answer)[:200]}")
    return set(_live_aors(answer["result"]))


async def poll(redis: aredis.Redis, router: Router, settings: EdgeSettings) -> tuple[int, int] | None:
    """One period: the worker that takes the guard reads every edge and gives routing the agents with a phone.
    None when another worker polls this period or an edge did not answer (then the set is not written: an
    edge down must not take every agent's phone away; it lapses after ``valid_for``). Every worker's gauge
    follows the set."""
    keys = Keys(router.prefix)
    out = None
    if await redis.set(keys.phones_guard(), router.worker_id, nx=True, px=max(100, int(settings.poll_every * 900))):
        try:
            found = await asyncio.gather(*[asyncio.to_thread(registered, u) for u in settings.registrations])
        except (OSError, ValueError) as exc:
            log.warning("edge registrations not read", error=str(exc)[:200])
        else:
            agents = set().union(*found) & set(cast(set[str], await redis.smembers(keys.agents())))
            out = await router.phones(sorted(agents), settings.valid_for)
            if out != (0, 0):
                log.info("phones at the edge", registered=len(agents), made_available=out[0], paused=out[1])
    n = int(await redis.scard(keys.phones()))
    metrics.AGENTS_PHONE_REGISTERED.set(max(0, n - 1))
    return out

