"""Loads the dialer's Lua scripts (``lua/*.lua``) once per client."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import redis

from callcenter import redisconn

_DIR = Path(__file__).resolve().parent / "lua"


@cache
def source(name: str) -> str:
    return (_DIR / f"{name}.lua").read_text(encoding="utf-8")


def script(redis: Any, name: str) -> Any:
    """A redis-py Script object (EVALSHA with automatic reload) bound to ``redis``."""
    cache_attr = "_cc_dialer_scripts"
    scripts = getattr(redis, cache_attr, None)
    if scripts is None:
        scripts = {}
        setattr(redis, cache_attr, scripts)
    if name not in scripts:
        scripts[name] = redis.register_script(source(name))
    return scripts[name]


async def run_durable(client: Any, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """A script whose change must survive a Redis failover (a dial attempt reserved against its caps):
    EVALSHA and ``WAIT`` on one connection (:func:`callcenter.redisconn.durable`), the script loaded first
    where the server lacks it. One that went to a master replaced before a replica had it runs again on
    the new one: reserve.lua run twice finds the contact no longer pending and refuses (never a second
    dial; the lease recovery gives the contact back)."""
    command = ("EVALSHA", script(client, name).sha, len(keys), *keys, *args)
    for attempt in range(3):
        try:
            return await redisconn.durable(client, *command)
        except redis.exceptions.NoScriptError:
            if attempt == 2:
                raise
            await client.script_load(source(name))
        except redisconn.WriteNotReplicated:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
