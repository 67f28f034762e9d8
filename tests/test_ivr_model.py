"""The IVR model: one parse function per node type, each producing that type's frozen options object, and
the ivr package's modules import one another without a cycle (the model is below the parser and checker)."""

from __future__ import annotations

import ast
import dataclasses
import textwrap
from pathlib import Path

import pytest

from callcenter.ivr import model
from callcenter.ivr.checker import load_scripts
from callcenter.ivr.script import NODE_TYPES, PARSERS

REPO = Path(__file__).resolve().parent.parent

FLOW = """\
start: play
languages: [vi, en]
nodes:
  play: {type: play, prompts: [hello], next: say}
  say: {type: say, say: number, value: 105, le: linh, next: menu}
  menu: {type: menu, options: {1: lang, 2: {next: ask, set: {dept: sales}}}, timeout: 7s, default: lang}
  lang: {type: language, options: {1: vi, 2: en}, default: en, next: ask}
  ask: {type: collect, variable: pin, max_digits: 4, terminator: "", sensitive: true, next: check}
  check:
    type: branch
    cases: [{when: "pin == '1234'", next: setq}]
    default: setq
  setq: {type: set, variables: {x: "{pin}"}, queue: sales, skills: [billing], next: rec}
  rec: {type: record, max_seconds: 2m, beep: [beep], next: look}
  look: {type: lookup, url: "http://crm/{caller}", result: {vip: data.vip}, on_error: poll, next: poll}
  poll: {type: survey, questions: [{id: q1, prompts: [rate], max: 9}], next: ev}
  ev: {type: event, name: done, data: {who: "{caller}"}, next: opt}
  opt: {type: dnc, scope: campaign, next: q}
  q:
    type: queue
    queue: sales
    max_wait: 10m
    announce: {position: false, every: 1m}
    on_timeout: away
    on_full: out
  away: {type: goto, script: demo, node: bye}
  bye: {type: hangup}
  out: {type: transfer, uri: "sip:100@pbx"}
"""


def test_every_node_type_has_one_parser_and_its_own_options():
    assert set(PARSERS) == set(NODE_TYPES) and len(NODE_TYPES) == 16


def test_nodes_carry_typed_frozen_options(tmp_path: Path) -> None:
    d = tmp_path / "ivr"
    d.mkdir()
    (d / "demo.yaml").write_text(textwrap.dedent(FLOW))
    nodes = load_scripts(d).scripts["demo"].nodes
    expected = {"play": model.Options, "say": model.Options, "menu": model.MenuOptions,
                "lang": model.LanguageOptions, "ask": model.CollectOptions, "check": model.BranchOptions,
                "setq": model.SetOptions, "rec": model.RecordOptions, "look": model.LookupOptions,
                "poll": model.SurveyOptions, "ev": model.EventOptions, "opt": model.DncOptions,
                "q": model.QueueOptions, "away": model.GotoOptions, "bye": model.Options,
                "out": model.TransferOptions}
    for nid, kind in expected.items():
        assert type(nodes[nid].opts) is kind, nid
    menu = nodes["menu"].options(model.MenuOptions)
    assert menu.timeout == 7.0 and menu.options["2"] == model.MenuOption("ask", {"dept": "sales"})
    assert menu.options["1"].next == "lang" and menu.default == "lang"
    ask = nodes["ask"].options(model.CollectOptions)
    assert (ask.variable, ask.max_digits, ask.terminator, ask.sensitive) == ("pin", 4, None, True)
    assert nodes["setq"].options(model.SetOptions).skills == {"billing": 1}
    assert nodes["rec"].options(model.RecordOptions).max_seconds == 120.0
    q = nodes["q"].options(model.QueueOptions)
    assert q.max_wait == 600.0 and q.announce == model.QueueAnnounce(position=False, wait_time=True, every=60.0)
    assert nodes["say"].prompts[0].value == "105" and nodes["say"].prompts[0].le == "linh"
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.max_wait = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError, match="MenuOptions"):
        nodes["q"].options(model.MenuOptions)
    assert ("on_timeout", "away") in nodes["q"].refs() and ("options.2", "ask") in nodes["menu"].refs()
    assert [k for k, _ in nodes["poll"].prompt_items()] == ["questions.q1"]


def test_shipped_flows_parse_into_typed_options():
    sset = load_scripts(REPO / "ivr_scripts")
    attribute = "anything"
    for script in sset.scripts.values():
        for node in script.nodes.values():
            assert isinstance(node.opts, model.Options)
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(node.opts, attribute, True)


def _ivr_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for f in (REPO / "callcenter" / "ivr").glob("*.py"):
        name = f.stem
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "callcenter.ivr":
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("callcenter.ivr."):
                deps.add((node.module or "").split(".")[2])
        graph[name] = deps - {name}
    return graph


def test_no_import_cycles_in_ivr():
    graph = _ivr_imports()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
    assert "checker" not in graph["script"] and "script" not in graph["model"]
