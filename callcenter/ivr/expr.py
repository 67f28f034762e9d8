"""The branch-condition language: a tiny, safe expression evaluator (no eval).

Grammar::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | cmp
    cmp     := value (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in" | "startswith") value)?
    value   := NAME | STRING | NUMBER | true | false | null | "[" value ("," value)* "]" | "(" expr ")"

Variables from campaign CSVs are strings, so comparisons coerce: when both sides read as
numbers they compare as numbers ("1500000" > 1000000). A missing variable is null.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<num>-?\d+(?:\.\d+)?)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in", "startswith", "true", "false", "null"}


class ExprError(ValueError):
    """The condition text does not parse."""


@dataclass(frozen=True)
class Expr:
    """A parsed condition; ``names`` are the variables it reads."""

    text: str
    tree: tuple[Any, ...]
    names: frozenset[str]

    def evaluate(self, variables: Mapping[str, Any]) -> bool:
        return truthy(_eval(self.tree, variables))


def _tokenize(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected character at {pos + 1}: {text[pos:pos + 10]!r}")
        pos = m.end()
        if m["num"] is not None:
            out.append(("lit", float(m["num"]) if "." in m["num"] else int(m["num"])))
        elif m["str"] is not None:
            out.append(("lit", re.sub(r"\\(.)", r"\1", m["str"][1:-1])))
        elif m["op"] is not None:
            out.append(("op", m["op"]))
        else:
            word = m["name"]
            if word in ("true", "false"):
                out.append(("lit", word == "true"))
            elif word == "null":
                out.append(("lit", None))
            elif word in _KEYWORDS:
                out.append(("op", word))
            else:
                out.append(("name", word))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.toks = tokens
        self.i = 0
        self.names: set[str] = set()

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take_op(self, *ops: str) -> str | None:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ops:
            self.i += 1
            return str(tok[1])
        return None

    def expect(self, op: str) -> None:
        if not self.take_op(op):
            tok = self.peek()
            raise ExprError(f"expected {op!r}, found {tok[1] if tok else 'end of condition'!r}")

    def parse_or(self) -> tuple[Any, ...]:
        left = self.parse_and()
        while self.take_op("or"):
            left = ("or", left, self.parse_and())
        return left

    def parse_and(self) -> tuple[Any, ...]:
        left = self.parse_not()
        while self.take_op("and"):
            left = ("and", left, self.parse_not())
        return left

    def parse_not(self) -> tuple[Any, ...]:
        if self.take_op("not"):
            return ("not", self.parse_not())
        return self.parse_cmp()

    def parse_cmp(self) -> tuple[Any, ...]:
        left = self.parse_value()
        op = self.take_op("==", "!=", "<", "<=", ">", ">=", "in", "startswith")
        if op is None and self.peek() == ("op", "not") and self.i + 1 < len(self.toks) \
                and self.toks[self.i + 1] == ("op", "in"):
            self.i += 2
            op = "not in"
        if op is None:
            return left
        return ("cmp", op, left, self.parse_value())

    def parse_value(self) -> tuple[Any, ...]:
        tok = self.peek()
        if tok is None:
            raise ExprError("condition ends too early")
        if tok[0] == "lit":
            self.i += 1
            return ("lit", tok[1])
        if tok[0] == "name":
            self.i += 1
            self.names.add(tok[1])
            return ("var", tok[1])
        if self.take_op("("):
            inner = self.parse_or()
            self.expect(")")
            return inner
        if self.take_op("["):
            items: list[tuple[Any, ...]] | None = [] if self.take_op("]") else None
            if items is None:
                items = [self.parse_value()]
                while self.take_op(","):
                    items.append(self.parse_value())
                self.expect("]")
            return ("list", tuple(items))
        raise ExprError(f"unexpected {tok[1]!r}")


def parse(text: str) -> Expr:
    """Parse a condition; raises ExprError with a readable message."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("empty condition")
    p = _Parser(_tokenize(text))
    tree = p.parse_or()
    extra = p.peek()
    if extra is not None:
        raise ExprError(f"unexpected {extra[1]!r} after a complete condition")
    return Expr(text, tree, frozenset(p.names))


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off", "none", "null")
    return bool(value)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip().replace(",", ""))
    except ValueError:
        return None


def _compare(op: str, a: Any, b: Any) -> bool:
    if op in ("in", "not in"):
        seq = b if isinstance(b, list | tuple) else [b]
        found = any(_compare("==", a, item) for item in seq) if isinstance(b, list | tuple) \
            else (a is not None and b is not None and str(a) in str(b))
        return found if op == "in" else not found
    if op == "startswith":
        return a is not None and b is not None and str(a).startswith(str(b))
    if a is None or b is None:
        same = a is None and b is None or (a is None and b == "") or (b is None and a == "")
        return same if op == "==" else (not same if op == "!=" else False)
    if isinstance(a, bool) or isinstance(b, bool):
        same = truthy(a) == truthy(b)
        return same if op == "==" else (not same if op == "!=" else False)
    na, nb = _num(a), _num(b)
    return _order(op, na, nb) if na is not None and nb is not None else _order(op, str(a), str(b))


_Ordered = TypeVar("_Ordered", float, str)


def _order(op: str, x: _Ordered, y: _Ordered) -> bool:
    """Two numbers compare as numbers, anything else as text."""
    return {"==": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _eval(tree: tuple[Any, ...], env: Mapping[str, Any]) -> Any:
    kind = tree[0]
    if kind == "lit":
        return tree[1]
    if kind == "var":
        return env.get(tree[1])
    if kind == "list":
        return [_eval(t, env) for t in tree[1]]
    if kind == "not":
        return not truthy(_eval(tree[1], env))
    if kind == "and":
        return truthy(_eval(tree[1], env)) and truthy(_eval(tree[2], env))
    if kind == "or":
        return truthy(_eval(tree[1], env)) or truthy(_eval(tree[2], env))
    return _compare(tree[1], _eval(tree[2], env), _eval(tree[3], env))
