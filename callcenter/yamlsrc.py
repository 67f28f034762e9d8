"""YAML loading that remembers where every value came from.

Every config file (worker config, routing_rules.yaml, IVR scripts, campaigns) is read
through :func:`load`, which returns plain dicts/lists/scalars plus a :class:`Located`
index so validation errors can name file, key path and line, e.g.
``routing_rules.yaml:14: queues.sales.strategy: unknown strategy 'random'``.

Two guards against "billion laughs" documents, where a few hundred bytes of anchors and aliases
expand to billions of values: text from the network (``allow_aliases=False``) may not use anchors or
aliases at all, and every document is refused once it expands to more than ``max_values`` values
(files on disk are trusted to use aliases, not to be bombs). Nesting deeper than Python's recursion
limit is refused too. Callers on the event loop parse untrusted text in a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
            child = _join(path, key)
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


def loads(text: str, file: str = "<string>", *, allow_aliases: bool = True,
          max_values: int = MAX_VALUES) -> tuple[Any, Located]:
    """Parse one YAML document; syntax errors become ConfigError with the line.

    ``allow_aliases=False`` for text that did not come from a trusted file (the HTTP API)."""
    loc = Located(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader if allow_aliases else _NoAliasLoader)
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
            yield from walk(v, _join(path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, _join(path, i))
