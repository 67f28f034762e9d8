"""Loads the dialer's Lua scripts (``lua/*.lua``) once per client."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

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
