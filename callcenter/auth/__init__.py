"""HTTP authentication: users and roles, passwords, sessions, API tokens, login throttling, audit.

Storage and rules only; the HTTP side (who is asking, may they, CSRF) is :mod:`callcenter.api.guard`.
:class:`Auth` bundles the stores one deployment prefix uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callcenter.auth.audit import AuditLog
from callcenter.auth.keys import AuthKeys
from callcenter.auth.sessions import SessionStore
from callcenter.auth.throttle import Throttle
from callcenter.auth.tokens import TokenStore
from callcenter.auth.users import UserStore


@dataclass
class Auth:
    users: UserStore
    sessions: SessionStore
    tokens: TokenStore
    throttle: Throttle
    audit: AuditLog

    @classmethod
    def connect(cls, redis: Any, prefix: str = "cc:", session_idle: float = 1800.0,
                session_max: float = 43200.0, login_failures: int = 5, login_window: int = 300,
                audit_max_entries: int = 1_000_000) -> Auth:
        keys = AuthKeys(prefix)
        return cls(UserStore(redis, keys), SessionStore(redis, keys, session_idle, session_max),
                   TokenStore(redis, keys), Throttle(redis, keys, login_failures, login_window),
                   AuditLog(redis, keys, audit_max_entries))
