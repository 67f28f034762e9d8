"""`callcenter ivr check`: every error class names file, line and node."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest
from repo import REPO

from callcenter.ivr import announce, prompts
from callcenter.ivr.checker import check, load_scripts
from callcenter.ivr.cli import check_command
from callcenter.ivr.model import IvrCheckError, split_prompt
from callcenter.ivr.saynumber import prompt_names

GOOD = """\
name: demo
languages: [vi, en]
start: welcome
nodes:
  welcome:
    type: play
    prompts: [hello]
    next: menu
  menu:
    type: menu
    prompts: [menu]
    options: {1: bye, 9: menu}
    default: bye
  bye:
    type: hangup
    prompts: [bye]
"""


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    d = tmp_path / "ivr"
    d.mkdir(exist_ok=True)
    (d / name).write_text(textwrap.dedent(text))
    return d


def errors(d: Path, sounds: Path | None = None) -> list[str]:
    return [str(i) for i in check(d, sounds) if i.severity == "error"]


def only(d: Path, needle: str, sounds: Path | None = None) -> str:
    errs = errors(d, sounds)
    hits = [e for e in errs if needle in e]
    assert len(hits) == 1, errs
    return hits[0]


def test_good_script_is_clean(tmp_path):
    d = write(tmp_path, GOOD)
    assert errors(d) == []
    assert set(load_scripts(d).scripts) == {"demo"}


def test_unknown_node_type_names_file_line_node(tmp_path):
    d = write(tmp_path, GOOD.replace("type: hangup", "type: hang_up"))
    msg = only(d, 'got "hang_up"')
    assert msg.startswith(f"{d / 'demo.yaml'}:15: bye: type: expected one of play, say, menu")


def test_unknown_field(tmp_path):
    d = write(tmp_path, GOOD.replace("    next: menu\n", "    nxt: menu\n"))
    assert only(d, "unknown key").startswith(f"{d / 'demo.yaml'}:8: welcome: nxt: unknown key (known: barge_in, ")


def test_dangling_references(tmp_path):
    d = write(tmp_path, GOOD.replace("options: {1: bye, 9: menu}", "options: {1: byee, 9: menu}")
              .replace("default: bye", "default: nowhere"))
    errs = errors(d)
    assert any(":12: menu: options.1: no node named 'byee'" in e for e in errs), errs
    assert any(":13: menu: default: no node named 'nowhere'" in e for e in errs), errs
    assert not any("loop" in e for e in errs)   # no cascade from the dangling references


def test_dangling_goto_and_start(tmp_path):
    d = write(tmp_path, GOOD.replace("start: welcome", "start: welcom"))
    assert ":3: start: no node named 'welcom'" in only(d, "start:")
    d = write(tmp_path, GOOD + "  other:\n    type: goto\n    script: nope\n"
              .replace("  bye:\n", "  bye:\n"))
    assert "other: goto: no script named 'nope'" in only(d, "goto:")


def test_unreachable_node(tmp_path):
    d = write(tmp_path, GOOD + "  orphan:\n    type: hangup\n")
    assert only(d, "unreachable").startswith(f"{d / 'demo.yaml'}:17: orphan: unreachable")


def test_bad_digits(tmp_path):
    d = write(tmp_path, GOOD.replace("options: {1: bye, 9: menu}", "options: {10: bye, a: menu, '#': bye}"))
    errs = errors(d)
    assert any("menu: options.10: bad digit '10'" in e for e in errs), errs
    assert any("menu: options.a: bad digit 'a'" in e for e in errs), errs
    assert not any("options.#" in e for e in errs)


def test_bad_collect_terminator_pattern_and_condition(tmp_path):
    d = write(tmp_path, """\
        start: ask
        nodes:
          ask:
            type: collect
            variable: pin
            terminator: "x"
            pattern: "[0-9"
            next: check
          check:
            type: branch
            cases:
              - {when: "pin == ", next: done}
            default: done
          done: {type: hangup}
        """)
    errs = errors(d)
    assert any(":6: ask: terminator: bad digit 'x'" in e for e in errs), errs
    assert any(":7: ask: pattern: bad regular expression" in e for e in errs), errs
    assert any(":12: check: cases[0].when: bad condition" in e for e in errs), errs


def test_loop_without_exit(tmp_path):
    d = write(tmp_path, """\
        start: a
        nodes:
          a: {type: play, prompts: [x], next: b}
          b: {type: set, variables: {n: 1}, next: a}
        """)
    msg = only(d, "loop without an exit")
    assert "a: loop without an exit" in msg and "(nodes a, b)" in msg


def test_menu_loop_with_an_exit_is_fine(tmp_path):
    d = write(tmp_path, """\
        start: m
        nodes:
          m: {type: menu, prompts: [x], options: {1: out, 9: m}, default: m}
          out: {type: hangup}
        """)
    assert errors(d) == []


def test_menu_whose_every_path_loops_is_an_error(tmp_path):
    d = write(tmp_path, """\
        start: m
        nodes:
          m: {type: menu, prompts: [x], options: {1: p, 9: m}, default: p}
          p: {type: play, prompts: [x], next: m}
        """)
    assert "loop without an exit" in only(d, "loop")


def test_lookup_needs_fallback(tmp_path):
    d = write(tmp_path, """\
        start: crm
        nodes:
          crm: {type: lookup, url: "http://127.0.0.1:1/x", next: done}
          done: {type: hangup}
        """)
    assert "crm: a lookup needs on_error" in only(d, "on_error")


def test_yaml_syntax_error_has_line(tmp_path):
    d = write(tmp_path, "start: a\nnodes:\n  a: {type: hangup\n  b: [\n")
    errs = errors(d)
    assert len(errs) == 1 and "invalid YAML" in errs[0] and f"{d / 'demo.yaml'}:" in errs[0]


def test_missing_prompt_files_per_language(tmp_path):
    d = write(tmp_path, GOOD)
    sounds = tmp_path / "sounds"
    for lang in ("vi", "en"):
        for name in ("hello", "menu", "bye", *announce.SYSTEM_PROMPTS):
            (sounds / lang / f"{name}.wav").parent.mkdir(parents=True, exist_ok=True)
            (sounds / lang / f"{name}.wav").write_bytes(b"RIFF")
    assert errors(d, sounds) == []
    (sounds / "en" / "menu.wav").unlink()
    msg = only(d, "missing", sounds)
    assert msg.startswith(f"{d / 'demo.yaml'}:11: menu: prompts: prompt file(s) missing in {sounds / 'en'}: menu")


def test_say_requires_number_words(tmp_path):
    d = write(tmp_path, """\
        languages: [vi]
        start: s
        nodes:
          s: {type: say, say: currency, value: "{amount}", next: done}
          done: {type: hangup}
        """)
    sounds = tmp_path / "sounds"
    (sounds / "vi" / "system").mkdir(parents=True)
    for n in announce.SYSTEM_PROMPTS:
        (sounds / "vi" / f"{n}.wav").write_bytes(b"RIFF")
    assert "built-in prompt file(s) missing" in only(d, "built-in", sounds)


def test_calendar_reference(tmp_path):
    d = write(tmp_path, GOOD.replace("start: welcome", "start: welcome\ncalendar: nope"))
    assert "calendar: no calendar 'nope'" in only(d, "calendar")


def test_load_raises_with_every_error(tmp_path):
    d = write(tmp_path, GOOD.replace("type: hangup", "type: hang_up") + "  orphan:\n    type: hangup\n")
    with pytest.raises(IvrCheckError) as exc:
        load_scripts(d)
    assert len(exc.value.issues) >= 2
    assert 'type: expected one of play' in str(exc.value) and "unreachable" in str(exc.value)


def test_cli_exit_codes(tmp_path, capsys):
    d = write(tmp_path, GOOD)
    assert check_command(argparse.Namespace(directory=str(d), sounds="x", no_prompts=True)) == 0
    write(tmp_path, GOOD.replace("type: hangup", "type: nope"))
    assert check_command(argparse.Namespace(directory=str(d), sounds="x", no_prompts=True)) == 1
    assert "ERROR:" in capsys.readouterr().out


def test_shipped_flows_are_valid():
    issues = check(REPO / "ivr_scripts", None)
    assert [str(i) for i in issues] == []
    assert {"hotline", "debt_reminder", "telesales", "csat_survey"} <= set(load_scripts(REPO / "ivr_scripts").scripts)


def test_shipped_flows_have_every_prompt_text():
    """Every prompt the demo flows can play has a text in sounds/prompts.yaml, in each of their languages,
    so scripts/make_prompts.py produces a complete sounds/ tree."""
    texts = prompts.load_texts(REPO / "sounds" / "prompts.yaml")
    sset = load_scripts(REPO / "ivr_scripts")
    missing = []
    for script in sset.scripts.values():
        for lang in script.languages:
            needed = {*announce.SYSTEM_PROMPTS, *announce.QUEUE_PROMPTS, *prompt_names(lang)}
            for node in script.nodes.values():
                needed |= {f"{p.name}" for _, p in node.prompt_items() if p.name}
            for name in needed:
                plang, plain = split_prompt(name, lang)
                if plang not in texts.get(plain, {}):
                    missing.append(f"{script.name}/{plang}: {plain}")
    assert not missing, missing


def warnings(d: Path) -> list[str]:
    return [str(i) for i in check(d) if i.severity == "warning"]


VARS = """\
name: demo
start: ask
variables: {greeting_name: ""}
nodes:
  ask:
    type: collect
    variable: account
    max_digits: 6
    next: crm
  crm:
    type: lookup
    url: "http://127.0.0.1:1/x"
    params: {acct: "{account}", who: "{caller}"}
    result: {balance: data.balance}
    on_error: bye
    next: check
  check:
    type: branch
    cases:
      - {when: "balance > 0 and vip_level == 'gold' and hour < 18", next: say}
    default: bye
  say:
    type: play
    prompts: [hello, {say: text, value: "{greeting_name}"}, {say: currency, value: "{balanse}"}]
    next: ev
  ev:
    type: event
    name: told
    data: {acct: "{account_raw}", when: "{today} {call_id}"}
    next: bye
  bye:
    type: hangup
"""


def test_unset_variables_are_warnings_naming_node_and_line(tmp_path):
    d = write(tmp_path, VARS)
    warns = warnings(d)
    assert len(warns) == 3, warns
    f = d / "demo.yaml"
    assert any(w.startswith(f"{f}:20: check: cases[0].when: variable 'vip_level' is never set") for w in warns)
    assert any(w.startswith(f"{f}:24: say: prompts[2]: variable 'balanse' is never set") for w in warns)
    # a collect sets `<variable>_raw` only when it validates a date
    assert any(w.startswith(f"{f}:29: ev: data.acct: variable 'account_raw' is never set") for w in warns)
    assert not any("'account'" in w or "balance'" in w or "'caller'" in w or "'today'" in w for w in warns)
    assert errors(d) == []                       # warnings never stop a worker from starting
    assert set(load_scripts(d).scripts) == {"demo"}


def test_variables_of_the_flow_that_jumps_in_are_known(tmp_path):
    write(tmp_path, """\
        start: a
        nodes:
          a: {type: set, variables: {ticket: "T1"}, next: b}
          b: {type: goto, script: survey}
        """, "main.yaml")
    d = write(tmp_path, """\
        name: survey
        start: a
        nodes:
          a: {type: play, prompts: [{say: digits, value: "{ticket}"}, {say: number, value: "{score}"}]}
        """, "survey.yaml")
    warns = warnings(d)
    assert len(warns) == 1 and "'score'" in warns[0], warns


@pytest.mark.parametrize("item, message", [
    ('{say: number, value: "{n}", le: lẻ}', 'prompts[0].le: expected one of le, linh, got "lẻ"'),
    ('{say: number, value: "{n}", tu: "yes"}', 'prompts[0].tu: expected true or false, got "yes"'),
    ('{say: number, value: "{n}", mung: true}', "mung: only for say: date"),
    ('{say: digits, value: "{n}", le: linh}', "le: no effect when saying digits"),
    ('{say: number, value: "{n}", lee: linh}', "prompts[0].lee: unknown key (known: currency, le, mung"),
])
def test_say_wording_options_are_validated(tmp_path, item, message):
    d = write(tmp_path, f"""\
        start: a
        variables: {{n: 105}}
        nodes:
          a: {{type: play, prompts: [{item}]}}
        """)
    assert message in only(d, message)


def test_say_wording_options_parse(tmp_path):
    d = write(tmp_path, """\
        start: a
        variables: {n: 105, d: "2026-12-05"}
        nodes:
          a:
            type: play
            prompts: [{say: number, value: "{n}", le: linh, tu: true}, {say: date, value: "{d}", mung: true}]
            next: b
          b: {type: say, say: number, value: 24, tu: true, le: linh}
        """)
    assert errors(d) == []
    nodes = load_scripts(d).scripts["demo"].nodes
    first, second = nodes["a"].prompts
    assert (first.le, first.tu, first.mung) == ("linh", True, False)
    assert (second.le, second.tu, second.mung) == ("le", False, True)
    (said,) = nodes["b"].prompts
    assert (said.say, said.value, said.le, said.tu) == ("number", "24", "linh", True)
