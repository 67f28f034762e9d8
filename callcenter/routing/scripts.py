"""Loads the routing Lua as one Redis Functions library: generated key builders + lua/lib.lua + one
function per script file (lua/<name>.lua, each with its KEYS/ARGV header).

Why a Functions library rather than EVALSHA: the shared library (~50 helpers) would otherwise be
re-defined on every call, about 8 us of a routing decision. The library name carries a hash of the
source, so workers of two versions (a rolling deploy) each find their own code, and a Redis that
lost it (a new server) gets it loaded again on the next call. Functions are kept in the AOF, so a
Redis restart keeps them.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis

from callcenter.routing.keys import lua_builders

LUA_DIR = Path(__file__).with_name("lua")
NAMES = ("enqueue", "offer_answered", "offer_failed", "call_finished", "abandon", "callback", "agent",
         "tick", "apply_rules", "ewt")


@cache
def library() -> tuple[str, str]:
    """(library name, source). Function names are ``<library>_<script name>``."""
    parts = [(LUA_DIR / "lib.lua").read_text(encoding="utf-8")]
    bodies = {n: (LUA_DIR / f"{n}.lua").read_text(encoding="utf-8") for n in NAMES}
    digest = hashlib.sha1("".join(parts + list(bodies.values())).encode() + lua_builders().encode())
    lib = "ccroute_" + digest.hexdigest()[:10]
    out = [f"#!lua name={lib}",
           "local PREFIX, NOW, DAY = '', 0, ''",
           lua_builders(),
           parts[0],
           # per-call state: the caller's prefix and clock; the queue-config cache must not outlive a call
           "local function begin(args) PREFIX = args[1]; NOW = tonumber(args[2]); DAY = args[3]; QC = {}; QVER = nil end"]
    for name, body in bodies.items():
        out.append(f"-- {name}.lua\nredis.register_function('{lib}_{name}', function(KEYS, ARGV)\n"
                   f"begin(ARGV)\n{body}\nend)")
    return lib, "\n".join(out) + "\n"


def function_name(name: str) -> str:
    return f"{library()[0]}_{name}"


def _missing(exc: redis.ResponseError) -> bool:
    return "function not found" in str(exc).lower()


def _load_sync(client: Any) -> None:
    try:
        client.function_load(library()[1])
    except redis.ResponseError as exc:
        if "already exists" not in str(exc):
            raise


class Library:
    """Synchronous caller (tests, benchmarks, tools). ``call(name, *argv, client=pipeline)``."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def ensure(self) -> None:
        _load_sync(self.client)

    def call(self, name: str, *argv: Any, client: Any = None) -> Any:
        target = client if client is not None else self.client
        try:
            return target.fcall(function_name(name), 0, *argv)
        except redis.ResponseError as exc:
            if client is not None or not _missing(exc):
                raise
            self.ensure()
            return self.client.fcall(function_name(name), 0, *argv)


class AsyncLibrary:
    """asyncio caller used by the Router."""

    def __init__(self, client: aredis.Redis) -> None:
        self.client = client

    async def ensure(self) -> None:
        try:
            await self.client.function_load(library()[1])
        except redis.ResponseError as exc:
            if "already exists" not in str(exc):
                raise

    async def call(self, name: str, *argv: Any) -> Any:
        try:
            return await self.client.fcall(function_name(name), 0, *argv)
        except redis.ResponseError as exc:
            if not _missing(exc):
                raise
        await self.ensure()
        return await self.client.fcall(function_name(name), 0, *argv)
