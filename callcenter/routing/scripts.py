"""Loads the routing Lua as one Redis Functions library: generated key builders + lua/lib.lua + one
function per script file (lua/<name>.lua, each with its KEYS/ARGV header).

Why a Functions library rather than EVALSHA: the shared library (~50 helpers) would otherwise be
re-defined on every call, about 8 us of a routing decision. The library name carries a hash of the
source, so workers of two versions (a rolling deploy) each find their own code, and a Redis that
lost it (a new server) gets it loaded again on the next call. Functions are kept in the AOF, so a
Redis restart keeps them.

After a Sentinel failover the new master has the library already (FUNCTION LOAD is replicated and kept
in the AOF); if it has not (a master rebuilt empty), the first call loads it, as on a new server.

Durable calls (:data:`DURABLE`): the scripts that decide a caller's place or an agent's state are followed by
``WAIT`` (the URL's ``wait_replicas``/``wait_ms``, :func:`callcenter.redisconn.durable`); one that went to a
master that was replaced before a replica had it is run again on the new one. Every routing script may be
run twice (:data:`RERUN`: what a second run does after a first whose reply was lost, as redis-py's retry of a
command on a broken connection does too); HACKING.md "Redis failover" has the loss window of the others.

Old versions are deleted once no process uses them: every Router heartbeat stamps its library in
``libs`` (a zset), and :func:`stale` picks the ``ccroute_*`` libraries other than ours not stamped for
``PRUNE_AFTER`` seconds. Deleting one a straggler still uses costs that process one reload (a missing
function is loaded again on the next call), never a failed call.
"""

from __future__ import annotations

import hashlib
import time
from functools import cache
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis
from redis.client import Pipeline

from callcenter import redisconn
from callcenter.events.keys import STREAM_MAX, EventKeys
from callcenter.keyspace import lua_builders
from callcenter.routing.keys import Keys

LIB_PREFIX = "ccroute_"
PRUNE_AFTER = 300.0   # seconds without a heartbeat stamp before an old library may go

LUA_DIR = Path(__file__).with_name("lua")
NAMES = ("enqueue", "offer_answered", "offer_failed", "call_finished", "abandon", "callback", "agent",
         "tick", "apply_rules", "ewt", "restart", "phones")

# What running a script a second time does, after a first run whose reply was lost (redis-py retries a
# command whose connection broke; a durable call that went to a replaced master is run again): none
# changes the state twice.
RERUN = {
    "enqueue": "idempotent: 'duplicate' with this worker as owner is taken as done",
    "offer_answered": "idempotent: the call's answered_offer is this offer -> 1 again",
    "offer_failed": "no-op: the offer is no longer the agent's",
    "call_finished": "no-op: the call is forgotten and the agent no longer on it (stats not counted twice)",
    "abandon": "no-op: the call is gone",
    "callback": "idempotent: the number's callback already names this call -> 'ok' again",
    "agent": "the same state set again; the reply may say the agent is already in it",
    "tick": "safe; the events the first run popped for this worker are lost with its reply",
    "apply_rules": "idempotent",
    "ewt": "read only",
    "restart": "no-op: the previous run's calls are already closed out; their ids are lost with the reply",
    "phones": "no-op: the same registrations again change nothing",
}
# The scripts whose change must survive a failover (a caller's place, an agent's state): WAIT after them.
DURABLE = frozenset({"enqueue", "callback", "offer_answered", "call_finished", "agent"})


@cache
def library() -> tuple[str, str]:
    """(library name, source). Function names are ``<library>_<script name>``."""
    parts = [(LUA_DIR / "lib.lua").read_text(encoding="utf-8")]
    bodies = {n: (LUA_DIR / f"{n}.lua").read_text(encoding="utf-8") for n in NAMES}
    # routing's keys as K.<name>(...), the event bus's (written atomically with each change) as E.<name>(...)
    keys = lua_builders(Keys) + lua_builders(EventKeys, "E") + f"local EVENTS_MAX = {STREAM_MAX}\n"
    digest = hashlib.sha1("".join(parts + list(bodies.values())).encode() + keys.encode(),
                          usedforsecurity=False)  # a version tag, not a secret
    lib = LIB_PREFIX + digest.hexdigest()[:10]
    out = [f"#!lua name={lib}",
           "local PREFIX, NOW, NOW_S, DAY = '', 0, '', ''",
           keys,
           parts[0],
           # per-call state: the caller's prefix and clock; the queue-config cache must not outlive a call
           "local function begin(args) PREFIX = args[1]; NOW_S = args[2]; NOW = tonumber(NOW_S); DAY = args[3]; "
           "QC = {}; QVER = nil end"]
    for name, body in bodies.items():
        out.append(f"-- {name}.lua\nredis.register_function('{lib}_{name}', function(KEYS, ARGV)\n"
                   f"begin(ARGV)\n{body}\nend)")
    return lib, "\n".join(out) + "\n"


def function_name(name: str) -> str:
    return f"{library()[0]}_{name}"


def _missing(exc: redis.ResponseError) -> bool:
    return "function not found" in str(exc).lower()


def _library_names(listing: Any) -> list[str]:
    """Names from FUNCTION LIST (RESP2 flat lists or RESP3 maps)."""
    names = []
    for entry in listing or []:
        if isinstance(entry, dict):
            items = list(entry.items())
        else:
            items = list(zip(entry[0::2], entry[1::2], strict=False))
        for k, v in items:
            if k == "library_name":
                names.append(v)
    return names


def stale(names: list[str], current: str, seen: dict[str, float], now: float,
          after: float = PRUNE_AFTER) -> list[str]:
    """Routing libraries safe to delete: ours by prefix, not the current one, unused for ``after`` s."""
    return sorted(n for n in names
                  if n.startswith(LIB_PREFIX) and n != current and seen.get(n, 0.0) < now - after)


def _seen(raw: list[Any]) -> dict[str, float]:
    return {k: float(v) for k, v in raw}


def _load_sync(client: redis.Redis) -> None:
    try:
        client.function_load(library()[1])
    except redis.ResponseError as exc:
        if "already exists" not in str(exc):
            raise


class Library:
    """Synchronous caller (tests, benchmarks, tools). ``call(name, *argv, client=pipeline)``."""

    def __init__(self, client: redis.Redis, prefix: str = "cc:") -> None:
        self.client = client
        self.keys = Keys(prefix)

    def ensure(self) -> None:
        _load_sync(self.client)

    def prune(self, after: float = PRUNE_AFTER) -> list[str]:
        """Delete old routing libraries no process stamped in ``after`` seconds; their names."""
        names = _library_names(self.client.function_list(library=LIB_PREFIX + "*"))
        seen = _seen(self.client.zrange(self.keys.libs(), 0, -1, withscores=True))
        gone = stale(names, library()[0], seen, time.time(), after)
        for name in gone:
            try:
                self.client.function_delete(name)
            except redis.ResponseError:   # another process deleted it first
                pass
            self.client.zrem(self.keys.libs(), name)
        return gone

    def call(self, name: str, *argv: Any, client: redis.Redis | Pipeline | None = None) -> Any:
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

    def __init__(self, client: aredis.Redis, prefix: str = "cc:") -> None:
        self.client = client
        self.keys = Keys(prefix)

    async def ensure(self) -> None:
        try:
            await self.client.function_load(library()[1])
        except redis.ResponseError as exc:
            if "already exists" not in str(exc):
                raise
        await self.client.zadd(self.keys.libs(), {library()[0]: time.time()})

    async def prune(self, after: float = PRUNE_AFTER) -> list[str]:
        """Delete old routing libraries no process stamped in ``after`` seconds; their names."""
        names = _library_names(await self.client.function_list(library=LIB_PREFIX + "*"))
        seen = _seen(await self.client.zrange(self.keys.libs(), 0, -1, withscores=True))
        gone = stale(names, library()[0], seen, time.time(), after)
        for name in gone:
            try:
                await self.client.function_delete(name)
            except redis.ResponseError:   # another process deleted it first
                pass
            await self.client.zrem(self.keys.libs(), name)
        return gone

    async def call(self, name: str, *argv: Any) -> Any:
        try:
            return await self._fcall(name, argv)
        except redis.ResponseError as exc:
            if not _missing(exc):
                raise
        await self.ensure()
        return await self._fcall(name, argv)

    async def _fcall(self, name: str, argv: tuple[Any, ...]) -> Any:
        command = ("FCALL", function_name(name), 0, *argv)
        if name not in DURABLE:
            return await self.client.execute_command(*command)
        try:
            return await redisconn.durable(self.client, *command)
        except redisconn.WriteNotReplicated:   # lost with the old master, most likely: again (RERUN)
            return await redisconn.durable(self.client, *command)
