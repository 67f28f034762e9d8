"""Loads the routing Lua scripts: generated key builders + lua/lib.lua + one script body each.

redis-py's Script objects run EVALSHA and reload on NOSCRIPT, so a Redis restart (which empties
the script cache) is invisible to callers.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from callcenter.routing.keys import lua_builders

LUA_DIR = Path(__file__).with_name("lua")
NAMES = ("enqueue", "offer_answered", "offer_failed", "call_finished", "abandon", "callback", "agent",
         "tick", "apply_rules", "ewt")

_PRELUDE = "local PREFIX = ARGV[1]\nlocal NOW = tonumber(ARGV[2])\nlocal DAY = ARGV[3]\n"


@cache
def source(name: str) -> str:
    """Full Lua source of script ``name`` as sent to Redis."""
    lib = (LUA_DIR / "lib.lua").read_text(encoding="utf-8")
    body = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
    return _PRELUDE + lua_builders() + lib + "\n-- script: " + name + "\n" + body


def register(client: Any) -> dict[str, Any]:
    """Script objects (sync or asyncio, whatever ``client`` is) by name."""
    return {name: client.register_script(source(name)) for name in NAMES}
