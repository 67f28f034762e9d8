"""YAML loading that remembers where every value came from, and the one reader of what was loaded.

Every config file (worker config, routing_rules.yaml, IVR scripts, campaigns) is read
through :func:`load`, which returns plain dicts/lists/scalars plus a :class:`Located`
index, and then through :class:`Reader`: typed getters with defaults and ranges, one duration
grammar (``30``, ``2.5``, ``"30s"``, ``"15m"``, ``"2h"``), unknown keys refused, nested sections,
problems raised at the first or collected (:class:`Issues`). Every problem names file, key path
and line, in one wording per kind, e.g.
``callcenter.yaml:12: sip.port: expected an integer 1-65535, got "abc"``.

Two guards against "billion laughs" documents, where a few hundred bytes of anchors and aliases
expand to billions of values: text from the network (``allow_aliases=False``) may not use anchors or
aliases at all, and every document is refused once it expands to more than ``max_values`` values
(files on disk are trusted to use aliases, not to be bombs). Nesting deeper than Python's recursion
limit is refused too. Callers on the event loop parse untrusted text in a thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import yaml

from callcenter.exceptions import ConfigError

# Far above any real config (the demo's files have a few hundred values; 10,000 agents in one
# routing_rules.yaml are ~150,000), far below a bomb's billions: refused after about a second.
MAX_VALUES = 1_000_000


@dataclass
class Located:
    """Line numbers (1-based) of every key path in one YAML document."""

    file: str
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, path: str) -> int | None:
        """Line of ``path`` or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, key=path or None, line=self.line(path))


def _join(prefix: str, key: object) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


def _key(prefix: str, key: object) -> str:
    """The path of a mapping's key: always dotted (``agents.1001``, ``options.1``), never an index."""
    return f"{prefix}.{key}" if prefix else str(key)


class _AliasRefused(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        self.line = mark.line + 1


class _NoAliases:
    """Refuses the first anchor or alias while composing, before anything is expanded."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[attr-defined]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasRefused(event.start_mark)
        return super().compose_node(parent, index)  # type: ignore[misc]


if yaml.__with_libyaml__:
    # libyaml's parser (events) under PyYAML's composer (hookable): about 5x faster than the
    # pure-Python scanner on a 1 MiB document, which matters for API input.
    from yaml._yaml import CParser

    class _NoAliasLoader(_NoAliases, yaml.composer.Composer, CParser, yaml.resolver.Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)
else:  # pragma: no cover - PyYAML without libyaml
    class _NoAliasLoader(_NoAliases, yaml.SafeLoader):  # type: ignore[no-redef]
        pass


class _Budget:
    """Counts the values a document expands to: an alias re-expands its anchor every time.
    Also carries the document's scalar constructor (one per document, not one per value)."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit
        self.scalars = yaml.constructor.SafeConstructor()

    def spend(self, node: yaml.Node, loc: Located) -> None:
        self.left -= 1
        if self.left < 0:
            raise ConfigError(f"document expands to more than {self.limit} values (anchors and aliases "
                              "re-used too often?)", file=loc.file, line=node.start_mark.line + 1)


def _construct(node: yaml.Node, path: str, loc: Located, budget: _Budget) -> Any:
    budget.spend(node, loc)
    loc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError("mapping keys must be scalars", loc.file, path or None,
                                  key_node.start_mark.line + 1)
            key = _scalar(key_node, budget)
            child = _key(path, key)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", loc.file, child, key_node.start_mark.line + 1)
            loc.lines[child] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, child, loc, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, _join(path, i), loc, budget) for i, item in enumerate(node.value)]
    return _scalar(node, budget)


def _scalar(node: yaml.Node, budget: _Budget) -> Any:
    return budget.scalars.construct_object(node, deep=True)


def _compose(text: str) -> yaml.Node | None:
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _compose_without_aliases(text: str) -> yaml.Node | None:
    loader = _NoAliasLoader(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def loads(text: str, file: str = "<string>", *, allow_aliases: bool = True,
          max_values: int = MAX_VALUES) -> tuple[Any, Located]:
    """Parse one YAML document; syntax errors become ConfigError with the line.

    ``allow_aliases=False`` for text that did not come from a trusted file (the HTTP API)."""
    loc = Located(file)
    try:
        node = _compose(text) if allow_aliases else _compose_without_aliases(text)
        if node is None:
            return None, loc
        return _construct(node, "", loc, _Budget(max_values)), loc
    except _AliasRefused as exc:
        raise ConfigError("anchors (&) and aliases (*) are not accepted here", file=file, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"invalid YAML: {exc.problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    except RecursionError:
        raise ConfigError("document is nested too deeply", file=file) from None


def load(path: str | Path) -> tuple[Any, Located]:
    """Read and parse a YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError("file is not UTF-8", file=str(p)) from None
    return loads(text, str(p))


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key path, value) pair of a loaded document, depth first."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, _key(path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, _join(path, i))


# ---------------------------------------------------------------- reading a loaded document

# One duration grammar for every file: plain seconds (30, 2.5) or a number with a unit.
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_FORMS = "30, 2.5, 30s, 15m, 2h"


def duration(value: object) -> float | None:
    """Seconds of ``30``, ``2.5``, ``"30s"``, ``"15m"``, ``"2h"`` (also ``ms``, ``min``, ``d``); None when
    ``value`` is not a duration. A negative number is returned as is (ranges refuse it, with its value)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(value) if isinstance(value, str) else None
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)] if m else None


def shown(value: object) -> str:
    """A value as an error message quotes it: ``"abc"``, ``12``, ``true``, ``a mapping``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 60 else value[:60] + "...", ensure_ascii=False)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _bounds(lo: float | None, hi: float | None, gt: float | None = None) -> str:
    if gt is not None:
        return f"> {gt:g}" + (f" and <= {hi:g}" if hi is not None else "")
    if lo is not None and hi is not None:
        return f"{lo:g}-{hi:g}" if lo >= 0 else f"{lo:g} to {hi:g}"
    if lo is not None:
        return f">= {lo:g}"
    return f"<= {hi:g}" if hi is not None else ""


def _within(value: float, lo: float | None, hi: float | None, gt: float | None = None) -> bool:
    return ((lo is None or value >= lo) and (hi is None or value <= hi) and (gt is None or value > gt)
            and value == value)   # NaN is never in range


class Issues:
    """Where a reader's problems go: raised at the first (the default), or all collected in ``found``
    (``collect=True``: the IVR checker lists every problem of every flow at once)."""

    def __init__(self, collect: bool = False) -> None:
        self.collect = collect
        self.found: list[ConfigError] = []

    def add(self, error: ConfigError) -> None:
        if not self.collect:
            raise error
        self.found.append(error)


class Reader:
    """Typed access to one mapping of a loaded document; every problem names file, key path and line.

    ``known`` refuses other keys at once; :meth:`finish` refuses the keys nothing read. Getters take the
    default when a key is absent (or null), and return it after reporting a bad value: in collect mode
    the reading goes on. ``strings`` rewrites every string read (the worker config expands ``${VAR}``).
    One wording per kind of problem::

        callcenter.yaml:12: sip.port: expected an integer 1-65535, got "abc"
        callcenter.yaml:3: sip.colour: unknown key (known: bind, port, ...)
    """

    def __init__(self, data: object, loc: Located, path: str = "", *, known: Collection[str] | None = None,
                 issues: Issues | None = None, strings: Callable[[str], str] | None = None) -> None:
        self.loc = loc
        self.path = path
        self.issues = issues if issues is not None else Issues()
        self.strings = strings
        self.used: set[str] = set()
        self.data: dict[str, object] = {}
        if isinstance(data, dict):
            self.data = {str(k): v for k, v in data.items()}
        elif data is not None:
            self.error(None, f"expected a mapping, got {shown(data)}")
        if known is not None:
            self.refuse_unknown(known)

    # ------------------------------------------------------------ where and what went wrong

    def key_path(self, key: str | None) -> str:
        return _key(self.path, key) if key else self.path

    def line(self, key: str | None = None) -> int | None:
        return self.loc.line(self.key_path(key))

    def fail(self, key: str | None, message: str) -> ConfigError:
        """The error for ``key`` (to raise when reading cannot go on, whatever the mode)."""
        return self.loc.error(self.key_path(key), message)

    def error(self, key: str | None, message: str) -> None:
        """Report a problem with ``key`` (None: the mapping itself): raised, or collected."""
        self.issues.add(self.fail(key, message))

    def refuse_unknown(self, known: Collection[str]) -> None:
        for key in self.data:
            if key not in known:
                self.error(key, f"unknown key (known: {', '.join(sorted(known))})")
        self.used |= set(self.data)

    def finish(self) -> None:
        """Report every key no getter asked for."""
        self.refuse_unknown(self.used)

    # ------------------------------------------------------------ structure

    def __contains__(self, key: str) -> bool:
        return self.data.get(key) is not None

    def keys(self) -> list[str]:
        return list(self.data)

    def raw(self, key: str, default: object = None, *, required: bool = False) -> object:
        """The value as loaded (None and absent read as ``default``)."""
        if self._missing(key, required):
            return default
        return self.data[key]

    def section(self, key: str, known: Collection[str] | None = None) -> Reader:
        """The nested mapping under ``key`` (empty when absent)."""
        self.used.add(key)
        return Reader(self.data.get(key), self.loc, self.key_path(key), known=known, issues=self.issues,
                      strings=self.strings)

    def sections(self) -> list[tuple[str, Reader]]:
        """Every key of this mapping with a reader of the mapping under it (``queues: {sales: {...}}``)."""
        self.used |= set(self.data)
        return [(key, Reader(value, self.loc, self.key_path(key), issues=self.issues, strings=self.strings))
                for key, value in self.data.items()]

    def _missing(self, key: str, required: bool) -> bool:
        self.used.add(key)
        if self.data.get(key) is not None:
            return False
        if required:
            self.error(key, "required, not given")
        return True

    # ------------------------------------------------------------ values

    @overload
    def text(self, key: str, default: str, *, choices: Collection[str] | None = None,
             required: bool = False) -> str: ...

    @overload
    def text(self, key: str, default: None = None, *, choices: Collection[str] | None = None,
             required: bool = False) -> str | None: ...

    def text(self, key: str, default: str | None = None, *, choices: Collection[str] | None = None,
             required: bool = False) -> str | None:
        """A string (a bare number is read as its digits: ``queue: 1001``)."""
        value: object = default if self._missing(key, required) else self.data[key]
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.error(key, f"expected a string, got {shown(value)}")
            return default
        if self.strings is not None:
            value = self.strings(value)
        if choices is not None and value not in choices:
            self.error(key, f"expected one of {', '.join(choices)}, got {shown(value)}")
            return default
        return value

    @overload
    def flag(self, key: str, default: bool) -> bool: ...

    @overload
    def flag(self, key: str, default: None = None) -> bool | None: ...

    def flag(self, key: str, default: bool | None = None) -> bool | None:
        if self._missing(key, False):
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            self.error(key, f"expected true or false, got {shown(value)}")
            return default
        return value

    @overload
    def integer(self, key: str, default: int, lo: int | None = None, hi: int | None = None, *,
                required: bool = False) -> int: ...

    @overload
    def integer(self, key: str, default: None = None, lo: int | None = None, hi: int | None = None, *,
                required: bool = False) -> int | None: ...

    def integer(self, key: str, default: int | None = None, lo: int | None = None, hi: int | None = None, *,
                required: bool = False) -> int | None:
        if self._missing(key, required):
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int) or not _within(value, lo, hi):
            self.error(key, f"expected an integer {_bounds(lo, hi)}".rstrip() + f", got {shown(value)}")
            return default
        return value

    @overload
    def number(self, key: str, default: float, lo: float | None = None, hi: float | None = None, *,
               gt: float | None = None) -> float: ...

    @overload
    def number(self, key: str, default: None = None, lo: float | None = None, hi: float | None = None, *,
               gt: float | None = None) -> float | None: ...

    def number(self, key: str, default: float | None = None, lo: float | None = None, hi: float | None = None,
               *, gt: float | None = None) -> float | None:
        """A number (an integer is read as a float); ``gt``: it must be above this, not equal."""
        if self._missing(key, False):
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not _within(value, lo, hi, gt):
            self.error(key, f"expected a number {_bounds(lo, hi, gt)}".rstrip() + f", got {shown(value)}")
            return default
        return float(value)

    @overload
    def duration(self, key: str, default: float, lo: float | None = 0, hi: float | None = None, *,
                 gt: float | None = None) -> float: ...

    @overload
    def duration(self, key: str, default: None = None, lo: float | None = 0, hi: float | None = None, *,
                 gt: float | None = None) -> float | None: ...

    def duration(self, key: str, default: float | None = None, lo: float | None = 0, hi: float | None = None,
                 *, gt: float | None = None) -> float | None:
        """Seconds, written ``30``, ``2.5``, ``"30s"``, ``"15m"`` or ``"2h"``."""
        if self._missing(key, False):
            return default
        value = self.data[key]
        seconds = duration(value)
        if seconds is None or not _within(seconds, lo, hi, gt):
            bounds = _bounds(None if lo == 0 and hi is None else lo, hi, gt)   # ">= 0" goes without saying
            self.error(key, f"expected a duration{f' of {bounds} seconds' if bounds else ''} "
                            f"({DURATION_FORMS}), got {shown(value)}")
            return default
        return seconds

    def items(self, key: str, default: Sequence[object] = (), *, required: bool = False) -> list[object]:
        """A list (a single value where a list is expected is an error, not a list of one)."""
        if self._missing(key, required):
            return list(default)
        value = self.data[key]
        if not isinstance(value, list):
            self.error(key, f"expected a list, got {shown(value)}")
            return list(default)
        return value

    def mapping(self, key: str, *, required: bool = False) -> dict[str, object]:
        """A mapping as loaded, keys as strings (for free-form ones: variables, headers)."""
        if self._missing(key, required):
            return {}
        value = self.data[key]
        if not isinstance(value, dict):
            self.error(key, f"expected a mapping, got {shown(value)}")
            return {}
        return {str(k): v for k, v in value.items()}
