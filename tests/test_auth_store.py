"""The auth library on a real Redis: session expiry (idle and absolute), equal work for unknown users,
throttle windows, the audit stream's cap and queries, and the config's refusal to serve an open API."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from worker_proc import new_worker

from callcenter.auth import Auth
from callcenter.auth.audit import AuditLog
from callcenter.auth.keys import AuthKeys
from callcenter.auth.sessions import SessionStore
from callcenter.auth.throttle import Throttle
from callcenter.config import load_config
from callcenter.exceptions import ConfigError
from callcenter.redisconn import connect


class Clock:
    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_session_ends_after_idle_time_and_at_its_absolute_end(redis_url: str) -> None:
    async def go() -> None:
        r = connect(redis_url)
        clock = Clock()
        s = SessionStore(r, AuthKeys("t:"), idle=600, absolute=3600, clock=clock)
        sid = await s.create("ana")
        assert await s.user(sid) == "ana"
        clock.now += 599
        assert await s.user(sid) == "ana"             # used: idle time starts again
        clock.now += 599
        assert await s.user(sid) == "ana"
        clock.now += 601
        assert await s.user(sid) is None              # idle too long
        sid = await s.create("ana")
        for _ in range(7):                            # active all along, but 3600 s after login it ends
            clock.now += 500
            assert await s.user(sid) == "ana"
        clock.now += 500
        assert await s.user(sid) is None
        assert await r.ttl(AuthKeys("t:").session("x")) == -2
        sid = await s.create("ana")
        key = [k async for k in r.scan_iter("t:auth:s:*")]
        assert len(key) == 1 and sid not in key[0]   # the id is not the key
        assert 0 < await r.ttl(key[0]) <= 600
        await s.end(sid)
        assert await s.user(sid) is None and not await r.smembers(AuthKeys("t:").user_sessions("ana"))
        await r.aclose()

    asyncio.run(go())


def test_unknown_user_costs_the_same_as_a_wrong_password(redis_url: str) -> None:
    async def go() -> tuple[list[float], list[float]]:
        r = connect(redis_url)
        auth = Auth.connect(r, "t:")
        await auth.users.create("ana", ["supervisor"], "right password")
        assert (await auth.users.authenticate("ana", "right password")).name == "ana"
        wrong, unknown = [], []
        for _ in range(5):
            t = time.perf_counter()
            assert await auth.users.authenticate("ana", "wrong password") is None
            wrong.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert await auth.users.authenticate("nobody", "wrong password") is None
            unknown.append(time.perf_counter() - t)
        await r.aclose()
        return wrong, unknown

    wrong, unknown = asyncio.run(go())
    # argon2 runs for both (tens of ms); without the dummy hash an unknown name answers in ~0.1 ms
    assert statistics.median(unknown) > 0.5 * statistics.median(wrong) > 0.005


def test_throttle_window_passes(redis_url: str) -> None:
    async def go() -> None:
        r = connect(redis_url)
        t = Throttle(r, AuthKeys("t:"), limit=3, window=1)
        for _ in range(3):
            assert await t.retry_after("ana", "10.0.0.1") == 0
            await t.failed("ana", "10.0.0.1")
        assert await t.retry_after("ana", "10.0.0.9") >= 1          # the user, from anywhere
        assert await t.retry_after("bob", "10.0.0.1") >= 1          # the address, for anyone
        assert await t.retry_after("bob", "10.0.0.9") == 0
        await asyncio.sleep(1.2)
        assert await t.retry_after("ana", "10.0.0.1") == 0
        await r.aclose()

    asyncio.run(go())


def test_audit_stream_is_capped_and_queried_by_time(redis_url: str) -> None:
    async def go() -> None:
        r = connect(redis_url)
        log = AuditLog(r, AuthKeys("t:"), max_entries=100)
        for i in range(1000):
            await log.record(f"u{i % 3}", ["admin"], "POST /dnc", {"number": "+84912345678"}, "10.0.0.1", 201)
        assert 100 <= await r.xlen("t:audit") < 300
        entries = await log.query(user="u1", limit=10)
        assert len(entries) == 10 and {e.user for e in entries} == {"u1"}
        assert entries[0].target["number"].endswith("678") and "912345" not in entries[0].target["number"]
        assert await log.query(since=time.time() + 60) == []
        assert len(await log.query(until=time.time() + 60, limit=1000)) == await r.xlen("t:audit")
        await r.aclose()

    asyncio.run(go())


def test_worker_refuses_an_open_api_on_a_public_address(tmp_path: Path, redis_url: str) -> None:
    w = new_worker(tmp_path, redis_url)
    w.write_config()
    text = w.config.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("http:"))
    w.config.write_text(text.replace(line, f"http:\n  bind: 0.0.0.0\n  port: {w.http_port}\n  auth: false"))
    with pytest.raises(ConfigError) as err:
        load_config(w.config)
    assert err.value.key == "http.auth" and err.value.line and str(w.config.name) in str(err.value)
    proc = subprocess.run([sys.executable, "-m", "callcenter", "worker", "--config", str(w.config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{w.config.name}:" in proc.stderr and "http.auth" in proc.stderr and "loopback" in proc.stderr
    # on loopback it is allowed (a developer's machine); auth on a public address is fine too
    w.config.write_text(text.replace(line, f"http:\n  bind: 127.0.0.1\n  port: {w.http_port}\n  auth: false"))
    assert load_config(w.config).http.auth is False
    w.config.write_text(text.replace(line, f"http:\n  bind: 0.0.0.0\n  port: {w.http_port}"))
    assert load_config(w.config).http.auth is True
    w.config.write_text(text.replace(line, f"http:\n  port: {w.http_port}\n  allowed_origins: [evil.example]"))
    with pytest.raises(ConfigError) as err:
        load_config(w.config)
    assert err.value.key == "http.allowed_origins[0]"
