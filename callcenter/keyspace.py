"""How a concept writes down its Redis keys: one declaration per key, which is also the typed builder.

Each concept (routing, auth, dialer, voicemail) has one table, a :class:`KeySpace` subclass whose class
attributes declare its keys::

    class RoutingKeys(KeySpace):
        queue = key1("rt:q:{q}", "hash", "queue config and running AHT")

``RoutingKeys("cc:").queue("sales")`` is ``"cc:rt:q:sales"``; ``key0/key1/key2`` say how many parts the
template takes, so mypy checks every call site's arity, and the template is checked against it when the
class is defined. ``RoutingKeys.declared()`` lists the keys (the Lua key builders and the docs are made from
it), so a key's name, template, type and meaning are written once.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar, cast, overload

F = TypeVar("F", bound=Callable[..., str])


class Key(Generic[F]):
    """One key: its template relative to the deployment prefix, its Redis type and what it holds."""

    def __init__(self, template: str, kind: str, doc: str, arity: int) -> None:
        self.template = template
        self.kind = kind
        self.doc = doc
        self.parts = tuple(field for _, field, _, _ in string.Formatter().parse(template) if field)
        if len(self.parts) != arity:
            raise TypeError(f"key template {template!r} has {len(self.parts)} parts, declared with {arity}")
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def at(self, prefix: str, *parts: object) -> str:
        """The full key under ``prefix`` with the template's parts filled in order."""
        return prefix + self.template.format(**{p: str(v) for p, v in zip(self.parts, parts, strict=True)})

    @overload
    def __get__(self, obj: None, owner: type) -> Key[F]: ...

    @overload
    def __get__(self, obj: KeySpace, owner: type) -> F: ...

    def __get__(self, obj: KeySpace | None, owner: type) -> Key[F] | F:
        if obj is None:
            return self
        return cast(F, partial(self.at, obj.prefix))


def key0(template: str, kind: str, doc: str) -> Key[Callable[[], str]]:
    return Key(template, kind, doc, 0)


def key1(template: str, kind: str, doc: str) -> Key[Callable[[object], str]]:
    return Key(template, kind, doc, 1)


def key2(template: str, kind: str, doc: str) -> Key[Callable[[object, object], str]]:
    return Key(template, kind, doc, 2)


class KeySpace:
    """A concept's keys, bound to one deployment prefix (default ``cc:``)."""

    def __init__(self, prefix: str = "cc:") -> None:
        self.prefix = prefix

    @classmethod
    def declared(cls) -> dict[str, Key[Any]]:
        """Every key the class declares, by name, in declaration order."""
        out: dict[str, Key[Any]] = {}
        for klass in reversed(cls.__mro__):
            out.update({n: v for n, v in vars(klass).items() if isinstance(v, Key)})
        return out


def lua_builders(space: type[KeySpace], table: str = "K") -> str:
    """Lua source defining ``<table>.<name>(...)`` for every key of ``space``; the prefix is ``PREFIX``."""
    out = [f"local {table} = {{}}"]
    for name, k in space.declared().items():
        pieces = ["PREFIX"]
        for literal, field, _, _ in string.Formatter().parse(k.template):
            if literal:
                pieces.append('"' + literal.replace("\\", "\\\\").replace('"', '\\"') + '"')
            if field:
                pieces.append(field)
        out.append(f"{table}.{name} = function({', '.join(k.parts)}) return {' .. '.join(pieces)} end")
    return "\n".join(out) + "\n"
