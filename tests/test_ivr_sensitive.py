"""A `collect` node with `sensitive: true` (a PIN): the flow can use the digits, nothing that
outlives the call keeps them (CDR digits, events, variables, traces, error messages)."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
from repo import REPO

from callcenter.ivr.checker import load_scripts
from callcenter.ivr.model import IvrCheckError, ScriptSet
from callcenter.ivr.runner import HIDDEN, IvrRunner
from callcenter.ivr.services import SimulatedServices
from callcenter.ivr.simulate import ScriptedLeg

PIN = "4321"

FLOW = """\
    name: bank
    start: pin
    nodes:
      pin:
        type: collect
        prompts: [hotline/menu_main]
        variable: pin
        sensitive: true
        max_digits: 4
        min_digits: 4
        next: copy
      copy: {type: set, variables: {pin_copy: "{pin}", greeting: hello}, next: check}
      check:
        type: branch
        cases: [{when: 'pin == "4321"', next: ok}]
        default: wrong
      ok: {type: event, name: pin_ok, data: {pin: "{pin}", again: "{pin_copy}", node: ok}, next: menu}
      menu:
        type: menu
        prompts: [hotline/menu_main]
        options: {1: bye}
      wrong: {type: hangup, prompts: [system/goodbye]}
      bye: {type: hangup, prompts: [system/goodbye]}
    """


def _flow(tmp_path: Path, text: str = FLOW) -> ScriptSet:
    d = tmp_path / "ivr"
    d.mkdir(exist_ok=True)
    (d / "bank.yaml").write_text(textwrap.dedent(text))
    return load_scripts(d)


def _run(sset: ScriptSet, inputs: list[str]) -> tuple[Any, SimulatedServices, list[tuple[str, str, dict]]]:
    trace: list[tuple[str, str, dict]] = []
    services = SimulatedServices()
    runner = IvrRunner(sset, services, REPO / "sounds", trace=lambda e, n, d: trace.append((e, n, d)))
    result = asyncio.run(runner.run(ScriptedLeg(inputs), "bank"))
    return result, services, trace


def test_the_flow_uses_the_pin_and_nothing_keeps_it(tmp_path: Path) -> None:
    result, services, trace = _run(_flow(tmp_path), [PIN, "1"])
    assert result.path[-2:] == ["bank.menu", "bank.bye"]           # the branch compared the real digits
    fields = result.cdr_fields()
    assert fields["ivr_digits"] == f"bank.pin={HIDDEN},bank.menu=1"   # other nodes' keys stay
    assert services.events == [("pin_ok", {"pin": HIDDEN, "again": HIDDEN, "node": "ok"})]
    assert result.variables["pin"] == result.variables["pin_copy"] == HIDDEN
    assert result.variables["greeting"] == "hello"
    kept = [t for t in trace if t[0] != "branch"]                      # the condition text is the flow's own
    assert PIN not in repr((fields, services.events, result.variables, kept, result.errors))


def test_a_wrong_pin_and_a_timeout_are_told_apart_without_digits(tmp_path: Path) -> None:
    result, _, _ = _run(_flow(tmp_path), ["", "9999"])
    assert result.cdr_fields()["ivr_digits"] == f"bank.pin=,bank.pin={HIDDEN}"
    assert result.path[-1] == "bank.wrong"


def test_an_error_message_does_not_repeat_the_pin(tmp_path: Path) -> None:
    result, _, trace = _run(_flow(tmp_path, """\
        name: bank
        start: pin
        nodes:
          pin: {type: collect, variable: pin, sensitive: true, max_digits: 4, next: read}
          read: {type: say, say: number, value: "x{pin}", on_error: bye}
          bye: {type: hangup}
        """), [PIN])
    assert result.errors and result.path[-1] == "bank.bye"
    assert PIN not in repr((result.errors, trace)), result.errors


def test_sensitive_must_be_true_or_false(tmp_path: Path) -> None:
    with pytest.raises(IvrCheckError, match='sensitive: expected true or false, got "yes please"'):
        _flow(tmp_path, FLOW.replace("sensitive: true", "sensitive: yes please"))
