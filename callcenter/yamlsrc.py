"""YAML loading that remembers where every value came from.

Every config file (worker config, routing_rules.yaml, IVR scripts, campaigns) is read
through :func:`load`, which returns plain dicts/lists/scalars plus a :class:`Located`
index so validation errors can name file, key path and line, e.g.
``routing_rules.yaml:14: queues.sales.strategy: unknown strategy 'random'``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from callcenter.exceptions import ConfigError


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


def _construct(node: yaml.Node, path: str, loc: Located) -> Any:
    loc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError("mapping keys must be scalars", loc.file, path or None,
                                  key_node.start_mark.line + 1)
            key = _scalar(key_node)
            child = _join(path, key)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", loc.file, child, key_node.start_mark.line + 1)
            loc.lines[child] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, child, loc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, _join(path, i), loc) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def loads(text: str, file: str = "<string>") -> tuple[Any, Located]:
    """Parse one YAML document; syntax errors become ConfigError with the line."""
    loc = Located(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"invalid YAML: {exc.problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if node is None:
        return None, loc
    return _construct(node, "", loc), loc


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
