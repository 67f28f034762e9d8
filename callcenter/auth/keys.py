"""Every Redis key of the auth concept. One place, so a key rename is one diff."""

from __future__ import annotations

from callcenter.keyspace import KeySpace, key0, key1


class AuthKeys(KeySpace):
    """The auth keys under one deployment prefix.

    Secrets are never key names: sessions and tokens are found by the SHA-256 of the secret, so a Redis
    dump or ``KEYS *`` does not hand out live credentials.
    """

    users = key0("auth:users", "set", "user names")
    # roles (comma list), agent, password (argon2 hash), disabled, created
    user = key1("auth:u:{name}", "hash", "one user")
    user_sessions = key1("auth:u:{name}:sessions", "set", "the user's session digests (dropped on disable)")
    user_tokens = key1("auth:u:{name}:tokens", "hash", "token id -> token digest (listing, revoking)")
    session = key1("auth:s:{digest}", "hash", "a session: user, created, seen (expires when idle)")
    token = key1("auth:t:{digest}", "hash", "an API token: user, id, label, created")
    fail_user = key1("auth:fail:u:{name}", "string", "a user's failed logins in this window (expires)")
    fail_address = key1("auth:fail:a:{address}", "string", "failed logins from an address (expires)")
    audit = key0("audit", "stream", "the audit log (capped with MAXLEN ~)")
