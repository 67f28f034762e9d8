"""Users of the HTTP API, stored in Redis so every worker sharing a Redis shares them.

    store = UserStore(redis, AuthKeys(prefix))
    await store.create("ana", ["agent"], password="...", agent="1001")
    user = await store.authenticate("ana", "...")     # None: unknown, wrong password or disabled

A user holds one or more roles (:mod:`callcenter.auth.roles`); an agent user is linked to one agent
id of routing_rules.yaml and may act only on that agent. Disabling a user ends its sessions at once;
its API tokens stop working because every request re-reads the user.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

from callcenter.auth import passwords, roles
from callcenter.auth.keys import AuthKeys

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# A supervisor's phone (monitor sessions ring it): a plain sip:/sips: URI, no headers or parameters to smuggle.
SIP_URI = re.compile(r"^sips?:[A-Za-z0-9._~+-]{1,64}@[A-Za-z0-9.-]{1,100}(:[0-9]{1,5})?(;transport=(udp|tcp))?$")
QUEUE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_QUEUES = 200


class UserError(ValueError):
    """A user operation that cannot be done (unknown user, exists already, bad name/role/password)."""


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    agent: str | None = None
    disabled: bool = False
    created: float = 0.0
    sip_uri: str | None = None        # the phone a supervisor's monitor session rings (calls/monitor.py)
    queues: frozenset[str] = field(default_factory=frozenset)   # a supervisor's queues; empty: all

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "roles": sorted(self.roles), "agent": self.agent, "disabled": self.disabled,
                "created": self.created, "sip_uri": self.sip_uri, "queues": sorted(self.queues)}


RoleNames = list[str]    # inside UserStore, `list` is its method
QueueNames = list[str]


class UserStore:
    def __init__(self, redis: Any, keys: AuthKeys) -> None:
        self.redis = redis
        self.keys = keys

    async def _read(self, name: str) -> tuple[User, str] | None:
        raw = await self.redis.hgetall(self.keys.user(name))
        if not raw:
            return None
        d: dict[str, str] = raw
        user = User(name, frozenset(r for r in d.get("roles", "").split(",") if r), d.get("agent") or None,
                    d.get("disabled") == "1", float(d.get("created") or 0), d.get("sip_uri") or None,
                    frozenset(q for q in d.get("queues", "").split(",") if q))
        return user, d.get("password", "")

    async def get(self, name: str) -> User | None:
        found = await self._read(name) if NAME.match(name) else None
        return found[0] if found else None

    async def list(self) -> list[User]:
        names = sorted(await self.redis.smembers(self.keys.users()))
        users = [await self.get(n) for n in names]
        return [u for u in users if u is not None]

    async def create(self, name: str, role_names: RoleNames, password: str, agent: str | None = None) -> User:
        if not NAME.match(name):
            raise UserError("user name: 1-64 letters, digits or ._@- (starting with a letter or digit)")
        checked = self._roles(role_names, agent)
        passwords.check_strength(password)
        hashed = await asyncio.to_thread(passwords.hash_password, password)
        now = time.time()
        # HSETNX first: two admins creating the same name at once cannot both succeed.
        if not await self.redis.hsetnx(self.keys.user(name), "created", repr(now)):
            raise UserError(f"user {name!r} exists")
        async with self.redis.pipeline(transaction=True) as p:
            p.hset(self.keys.user(name), mapping={"roles": ",".join(checked), "agent": agent or "",
                                                  "password": hashed, "disabled": "0"})
            p.sadd(self.keys.users(), name)
            await p.execute()
        return User(name, frozenset(checked), agent or None, False, now)

    @staticmethod
    def _roles(role_names: RoleNames, agent: str | None) -> RoleNames:
        try:
            checked = roles.check(role_names)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if roles.AGENT in checked and not agent:
            raise UserError("an agent user needs its agent id (--agent ID)")
        return checked

    async def _require(self, name: str) -> User:
        user = await self.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        return user

    async def update(self, name: str, role_names: RoleNames | None = None, agent: str | None = None,
                     disabled: bool | None = None) -> User:
        user = await self._require(name)
        new_agent = user.agent if agent is None else (agent or None)
        mapping: dict[str, str] = {"agent": new_agent or ""}
        if role_names is not None or agent is not None:
            mapping["roles"] = ",".join(self._roles(list(user.roles) if role_names is None else role_names,
                                                    new_agent))
        if disabled is not None:
            mapping["disabled"] = "1" if disabled else "0"
        await self.redis.hset(self.keys.user(name), mapping=mapping)
        if disabled:
            await self.end_sessions(name)
        return await self._require(name)

    async def set_monitoring(self, name: str, sip_uri: str | None = None,
                             queues: QueueNames | None = None) -> User:
        """A supervisor's phone (``""`` removes it) and the queues whose calls it may monitor (``[]``: all);
        None leaves a value as it is."""
        await self._require(name)
        mapping: dict[str, str] = {}
        if sip_uri is not None:
            if sip_uri and not SIP_URI.match(sip_uri):
                raise UserError("sip_uri: a plain sip:user@host[:port] URI")
            mapping["sip_uri"] = sip_uri
        if queues is not None:
            if len(queues) > MAX_QUEUES or not all(isinstance(q, str) and QUEUE.match(q) for q in queues):
                raise UserError(f"queues: at most {MAX_QUEUES} queue names (letters, digits, _.-)")
            mapping["queues"] = ",".join(sorted(set(queues)))
        if mapping:
            await self.redis.hset(self.keys.user(name), mapping=mapping)
        return await self._require(name)

    async def set_password(self, name: str, password: str) -> None:
        await self._require(name)
        passwords.check_strength(password)
        hashed = await asyncio.to_thread(passwords.hash_password, password)
        await self.redis.hset(self.keys.user(name), "password", hashed)
        await self.end_sessions(name)    # a changed password logs every browser out

    async def end_sessions(self, name: str) -> int:
        digests = list(await self.redis.smembers(self.keys.user_sessions(name)))
        async with self.redis.pipeline(transaction=True) as p:
            for d in digests:
                p.delete(self.keys.session(d))
            p.delete(self.keys.user_sessions(name))
            await p.execute()
        return len(digests)

    async def delete(self, name: str) -> None:
        await self._require(name)
        await self.end_sessions(name)
        tokens = list((await self.redis.hgetall(self.keys.user_tokens(name))).values())
        async with self.redis.pipeline(transaction=True) as p:
            for d in tokens:
                p.delete(self.keys.token(d))
            p.delete(self.keys.user_tokens(name), self.keys.user(name))
            p.srem(self.keys.users(), name)
            await p.execute()

    async def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right and the user enabled. An unknown name costs the same
        argon2 verification as a wrong password (no timing oracle for which names exist)."""
        found = await self._read(name) if NAME.match(name) else None
        stored = found[1] if found else None
        ok = await asyncio.to_thread(passwords.verify, stored or None, password)
        if not ok or found is None or found[0].disabled:
            return None
        if stored and passwords.needs_rehash(stored):
            await self.redis.hset(self.keys.user(name), "password",
                                  await asyncio.to_thread(passwords.hash_password, password))
        return found[0]
