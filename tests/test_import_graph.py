"""The dependency direction of callcenter/, read from its source: every module is parsed (imports inside
functions and under `if TYPE_CHECKING:` count too), relative imports are resolved, and importing
`a.b.c` counts as importing the packages `a` and `a.b` as well (Python runs their __init__ first).

The layers (HACKING.md): routing, cdr, api and config never load pjsua2 (telephony's softswitch and leg,
and the doctor, do), not even through another module; routing knows nothing of the IVR; nothing but an
entry point imports the composition root `callcenter.worker`; metrics.py imports nothing of the package;
and no module is imported back, at run time, by what it imports (directly or round a loop)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from repo import REPO

PACKAGE = REPO / "callcenter"


@dataclass(frozen=True)
class Import:
    module: str        # the importing module
    target: str        # a callcenter module, or the top-level name of an outside one ("pjsua2")
    line: int
    runtime: bool      # False under `if TYPE_CHECKING:` (never executed)


@cache
def sources() -> dict[str, Path]:
    """Module name -> its file, for every module of the package."""
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(p.relative_to(REPO).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _with_packages(name: str) -> Iterator[str]:
    """a.b.c -> a, a.b, a.b.c: importing a module runs its packages' __init__ first."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    known = sources()
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        prefix = node.module or ""
        if node.level:
            # relative to the module's package (a package's __init__ is its own package)
            package = module.split(".") if known[module].name == "__init__.py" else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            prefix = ".".join(package + ([prefix] if prefix else []))
        # `from pkg import mod` imports the module pkg.mod; `from mod import name` only mod
        names = [prefix] + [f"{prefix}.{a.name}" for a in node.names if f"{prefix}.{a.name}" in known]
    for name in names:
        if name == "callcenter" or name.startswith("callcenter."):
            yield from (n for n in _with_packages(name) if n in known)
        else:
            yield name.split(".")[0]


@cache
def imports() -> tuple[Import, ...]:
    out: list[Import] = []
    for module, file in sources().items():
        tree = ast.parse(file.read_text(), str(file))
        type_only = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(module, node):
                    if target != module:
                        out.append(Import(module, target, node.lineno, id(node) not in type_only))
    return tuple(out)


def graph(runtime_only: bool = False) -> dict[str, set[str]]:
    g: dict[str, set[str]] = {m: set() for m in sources()}
    for imp in imports():
        if imp.runtime or not runtime_only:
            g[imp.module].add(imp.target)
    return g


def reach(start: str, g: dict[str, set[str]]) -> dict[str, str]:
    """Every name reachable from start -> the module it was first reached from (for the path back)."""
    seen = {start: ""}
    todo = [start]
    while todo:
        m = todo.pop()
        for t in sorted(g.get(m, ())):
            if t not in seen:
                seen[t] = m
                todo.append(t)
    return seen


def path(seen: dict[str, str], end: str) -> str:
    hops = [end]
    while seen[hops[-1]]:
        hops.append(seen[hops[-1]])
    return " -> ".join(reversed(hops))


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_is_read_whole() -> None:
    """The reader finds imports at every level, relative ones resolved, and the packages they run."""
    mods = sources()
    assert len(mods) > 50 and "callcenter.telephony.softswitch" in mods and "callcenter.routing" in mods
    g = graph()
    assert "pjsua2" in g["callcenter.telephony.softswitch"]
    assert "callcenter.telephony" in g["callcenter.telephony.softswitch"] or \
        any(in_package(t, "callcenter.telephony") for t in g["callcenter.telephony.softswitch"])
    assert "pjsua2" in reach("callcenter.worker", graph(runtime_only=True)), "the worker runs the softswitch"
    assert any(imp.runtime and imp.target == "callcenter.worker" for imp in imports()
               if imp.module == "callcenter.cli"), "cli runs the worker: a lazy import inside a function"


def test_routing_cdr_api_config_never_load_pjsua2() -> None:
    """Only the media layer needs the SIP stack: these packages stay importable (and testable) without it."""
    g = graph(runtime_only=True)
    bad = []
    for module in sorted(g):
        if any(in_package(module, f"callcenter.{p}") for p in ("routing", "cdr", "api", "config")):
            seen = reach(module, g)
            if "pjsua2" in seen:
                bad.append(path(seen, "pjsua2"))
    assert not bad, "loads pjsua2:\n" + "\n".join(bad)


def test_routing_knows_nothing_of_the_ivr() -> None:
    bad = [f"{i.module}:{i.line} imports {i.target}" for i in imports()
           if in_package(i.module, "callcenter.routing") and in_package(i.target, "callcenter.ivr")]
    assert not bad, "\n".join(bad)


def test_metrics_imports_nothing_of_the_package() -> None:
    """Every layer records into metrics.py; it reads none (its collector gets callables from worker.py)."""
    bad = [f"{i.module}:{i.line} imports {i.target}" for i in imports()
           if i.module == "callcenter.metrics" and in_package(i.target, "callcenter")]
    assert not bad, "\n".join(bad)


# The entry points that run a worker: `callcenter worker` and `callcenter demo` (agent phones, then a worker).
ENTRY_POINTS = {"callcenter.cli", "callcenter.demo"}


def test_nothing_imports_the_worker() -> None:
    """worker.py is the composition root: it imports the packages, and only an entry point runs it."""
    bad = [f"{i.module}:{i.line}" for i in imports() if i.target == "callcenter.worker" and i.module not in ENTRY_POINTS]
    assert not bad, "imports callcenter.worker: " + ", ".join(bad)


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    """No module is imported back by what it imports, directly or round a loop (counting what Python runs:
    imports under `if TYPE_CHECKING:` are annotations only; a module importing its own package's __init__,
    which Python runs first anyway, is no loop of design either)."""
    g = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph(runtime_only=True).items()}
    found = cycles(g)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_ivr_checker_and_script_do_not_import_each_other() -> None:
    """At most one of the two knows the other, not even for annotations or inside a function."""
    pairs = {("callcenter.ivr.checker", "callcenter.ivr.script"), ("callcenter.ivr.script", "callcenter.ivr.checker")}
    found = [f"{i.module}:{i.line} imports {i.target}" for i in imports() if (i.module, i.target) in pairs]
    assert len({f.split(":")[0] for f in found}) < 2, "\n".join(found)
