"""Every Redis key of the auth concept. One place, so a key rename is one diff.

Layout (prefix ``cc:`` by default); secrets are never key names: sessions and tokens are found
by the SHA-256 of the secret, so a Redis dump or ``KEYS *`` does not hand out live credentials.
  auth:users                 set     user names
  auth:u:{name}              hash    roles (comma list), agent, password (argon2 hash), disabled, created
  auth:u:{name}:sessions     set     session digests of the user (dropped when disabled/deleted)
  auth:u:{name}:tokens       hash    token id -> token digest (for listing and revoking)
  auth:s:{digest}            hash    a session: user, created, seen (expires after the idle time)
  auth:t:{digest}            hash    an API token: user, id, label, created
  auth:fail:u:{name}         string  failed logins of a user in the current window (expires)
  auth:fail:a:{address}      string  failed logins from an address in the current window (expires)
  audit                      stream  the audit log (capped with MAXLEN ~)
"""

from __future__ import annotations


class AuthKeys:
    def __init__(self, prefix: str = "cc:") -> None:
        self.prefix = prefix
        self.base = f"{prefix}auth:"

    def users(self) -> str:
        return self.base + "users"

    def user(self, name: str) -> str:
        return self.base + f"u:{name}"

    def user_sessions(self, name: str) -> str:
        return self.base + f"u:{name}:sessions"

    def user_tokens(self, name: str) -> str:
        return self.base + f"u:{name}:tokens"

    def session(self, digest: str) -> str:
        return self.base + f"s:{digest}"

    def token(self, digest: str) -> str:
        return self.base + f"t:{digest}"

    def fail_user(self, name: str) -> str:
        return self.base + f"fail:u:{name}"

    def fail_address(self, address: str) -> str:
        return self.base + f"fail:a:{address}"

    def audit(self) -> str:
        return self.prefix + "audit"
