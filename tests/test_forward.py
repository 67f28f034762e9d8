"""The pieces of call-scoped forwarding that need no second worker (api/forward.py): the signed assertion
of who asked (believed only with the deployment's key, for this worker and this request, fresh), the owner's
check of it through Redis (a nonce is good once), which routes are call-scoped, and the http.advertise key.
Two workers forwarding over real SIP: tests/test_forward_sip.py."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from worker_proc import new_worker

from callcenter.api import forward
from callcenter.api.forward import (
    ASSERTION_TTL,
    AssertionRefused,
    Claims,
    Forwarder,
    ForwardKeys,
    check,
    read,
    sign,
)
from callcenter.api.http import HttpRouter, Request
from callcenter.auth.roles import SUPERVISORS
from callcenter.config import load_config
from callcenter.exceptions import ConfigError
from callcenter.redisconn import connect

KEY = b"k" * 64


def request(method: str = "POST", path: str = "/calls/c1/hold", query: dict[str, list[str]] | None = None,
            body: bytes = b"{}", header: str = "") -> Request:
    return Request(method, path, {"call_id": "c1"}, query or {"agent": ["1001"]},
                   {"x-callcenter-forwarded": header} if header else {}, body)


def claims(req: Request, **changes: object) -> Claims:
    base = Claims(user="ana", roles=["agent"], agent="1001", via="session", only_agent="1001", client="10.0.0.9",
                  origin="wa", to="wb", method=req.method, target=forward.target_of(req), body=forward.body_digest(req.body),
                  at=time.time(), nonce="n1")
    return replace(base, **changes)  # type: ignore[arg-type]


def test_an_assertion_is_believed_only_signed_with_the_key_for_this_worker_and_request() -> None:
    req = request()
    c = claims(req)
    assert read(KEY, sign(KEY, c)) == c
    check(c, "wb", req, time.time())
    with pytest.raises(AssertionRefused, match="not signed"):
        read(b"another key", sign(KEY, c))
    with pytest.raises(AssertionRefused, match="not signed"):
        read(KEY, sign(KEY, c).split(".")[0])                                  # no signature
    mac = sign(KEY, c).split(".")[1]
    forged = sign(KEY, replace(c, roles=["admin"])).split(".")[0]
    with pytest.raises(AssertionRefused, match="not signed"):
        read(KEY, f"{forged}.{mac}")                                          # claims changed after signing
    with pytest.raises(AssertionRefused, match="worker wb, not wc"):
        check(c, "wc", req, time.time())
    for other in (request(path="/calls/c1/unhold"), request(body=b'{"x": 1}'), request(method="DELETE"),
                  request(query={"agent": ["1002"]})):
        with pytest.raises(AssertionRefused, match="another request"):
            check(c, "wb", other, time.time())
    with pytest.raises(AssertionRefused, match="expired"):
        check(c, "wb", req, time.time() + ASSERTION_TTL + 1)


def test_the_owner_believes_an_assertion_once(redis_url: str) -> None:
    async def go() -> None:
        r = connect(redis_url)
        owner = Forwarder(r, "wb", "http://127.0.0.1:1", prefix="cc:", is_local=lambda c: False,
                          call_owner=_none, alive=_yes)
        other = Forwarder(r, "wa", "http://127.0.0.1:2", prefix="cc:", is_local=lambda c: False,
                          call_owner=_none, alive=_yes)
        await owner.refresh()
        await other.refresh()          # the first worker's key is the deployment's
        assert await r.hgetall(ForwardKeys("cc:").addresses()) == {"wb": "http://127.0.0.1:1",
                                                                   "wa": "http://127.0.0.1:2"}
        key = await other._key()
        assert key == await owner._key() and len(key) == 64
        req = request()
        header = sign(key, claims(req))
        assert (await owner.verify(request(header=header))).user == "ana"
        with pytest.raises(AssertionRefused, match="replayed"):
            await owner.verify(request(header=header))
        await r.flushall()             # Redis lost the key: a worker puts its own back; one changed is read again
        await other.refresh()
        await r.set(ForwardKeys("cc:").secret(), "n" * 64)
        header = sign(b"n" * 64, claims(req, nonce="n2"))
        assert (await owner.verify(request(header=header))).nonce == "n2"
        await other.withdraw()         # a clean stop
        assert await r.hgetall(ForwardKeys("cc:").addresses()) == {"wb": "http://127.0.0.1:1"}
        await r.aclose()

    asyncio.run(go())


async def _none(call_id: str) -> str | None:
    return None


async def _yes(worker_id: str) -> bool:
    return True


def test_routes_with_a_call_id_are_call_scoped() -> None:
    async def handler(req: Request) -> dict[str, str]:
        return {}

    router = HttpRouter()
    router.add("POST /calls/{call_id}/transfer", handler, roles=SUPERVISORS)
    router.add("GET /recordings/{call_id}", handler, roles=SUPERVISORS)
    router.add("GET /queues/{name}", handler, roles=SUPERVISORS)
    assert [r.call for r in router.routes] == ["call_id", "call_id", None]
    with pytest.raises(ValueError, match="not forwarded"):      # an upload's body is not sent on
        router.add("POST /calls/{call_id}/attachments", handler, roles=SUPERVISORS, stream=True)


def test_http_advertise_is_validated(tmp_path: Path) -> None:
    w = new_worker(tmp_path, "redis://127.0.0.1:1")
    w.write_config()
    text = w.config.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("http:"))
    assert load_config(w.config).http.advertise == f"http://127.0.0.1:{w.http_port}"
    w.config.write_text(text.replace(line, f"http: {{port: {w.http_port}, advertise: 'http://10.0.0.5:8080/api'}}"))
    with pytest.raises(ConfigError) as err:
        load_config(w.config)
    assert err.value.key == "http.advertise" and err.value.line
    w.config.write_text(text.replace(line, f"http: {{port: {w.http_port}, advertise: 'http://10.0.0.5:{w.http_port}/', "
                                           f"forward_timeout: 3s}}"))
    cfg = load_config(w.config)
    assert cfg.http.advertise == f"http://10.0.0.5:{w.http_port}" and cfg.http.forward_timeout == 3.0
