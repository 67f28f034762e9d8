"""yamlsrc.Reader: the one reader every YAML file goes through (worker config, routing rules, campaigns,
IVR scripts). Each kind of value, ranges, the one duration grammar, unknown keys, nested sections, and the
two modes: raise at the first problem, or collect them all. Every problem names file, key path and line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from callcenter import yamlsrc
from callcenter.exceptions import ConfigError
from callcenter.yamlsrc import Issues, Reader


def reader(text: str, **kwargs: Any) -> Reader:
    data, loc = yamlsrc.loads(text, "cc.yaml")
    return Reader(data, loc, **kwargs)


def problem(text: str, read: Callable[[Reader], object]) -> str:
    """The error message of ``read`` on a reader of ``text``."""
    with pytest.raises(ConfigError) as exc:
        read(reader(text))
    return str(exc.value)


def test_values_and_defaults():
    r = reader("name: hotline\nport: 5060\nratio: 2\nloud: true\nitems: [a, b]\nvars: {a: 1}\nqueue: 1001\n")
    assert r.text("name") == "hotline" and r.text("missing", "x") == "x" and r.text("missing") is None
    assert r.text("queue") == "1001"                     # a bare number where a name is expected
    assert r.integer("port", 1, 1, 65535) == 5060 and r.integer("missing", 7) == 7
    assert r.number("ratio", 1.0) == 2.0 and isinstance(r.number("ratio", 1.0), float)
    assert r.flag("loud", False) is True and r.flag("missing", False) is False
    assert r.items("items") == ["a", "b"] and r.items("missing", ["x"]) == ["x"]
    assert r.mapping("vars") == {"a": 1} and r.mapping("missing") == {}
    assert r.text("name", choices=("hotline", "sales")) == "hotline"


def test_null_reads_as_absent():
    r = reader("port:\nname: ~\n")
    assert r.integer("port", 5060) == 5060 and r.text("name", "x") == "x" and "port" not in r


@pytest.mark.parametrize("text, read, message", [
    ("sip:\n  port: abc\n", lambda r: r.section("sip").integer("port", 5060, 1, 65535),
     'cc.yaml:2: sip.port: expected an integer 1-65535, got "abc"'),
    ("sip:\n  port: 70000\n", lambda r: r.section("sip").integer("port", 5060, 1, 65535),
     "cc.yaml:2: sip.port: expected an integer 1-65535, got 70000"),
    ("n: true\n", lambda r: r.integer("n", 1), "cc.yaml:1: n: expected an integer, got true"),
    ("n: 0\n", lambda r: r.integer("n", 1, 1), "cc.yaml:1: n: expected an integer >= 1, got 0"),
    ("x: 1.5\n", lambda r: r.number("x", 0.0, 0, 1), "cc.yaml:1: x: expected a number 0-1, got 1.5"),
    ("x: 0\n", lambda r: r.number("x", 1.0, gt=0), "cc.yaml:1: x: expected a number > 0, got 0"),
    ("x: .nan\n", lambda r: r.number("x", 1.0, 0, 1), "cc.yaml:1: x: expected a number 0-1, got nan"),
    ("b: yes please\n", lambda r: r.flag("b", False), 'cc.yaml:1: b: expected true or false, got "yes please"'),
    ("s: [1]\n", lambda r: r.text("s"), "cc.yaml:1: s: expected a string, got a list"),
    ("s: red\n", lambda r: r.text("s", choices=("udp", "tcp")), 'cc.yaml:1: s: expected one of udp, tcp, got "red"'),
    ("l: a\n", lambda r: r.items("l"), 'cc.yaml:1: l: expected a list, got "a"'),
    ("m: [1]\n", lambda r: r.mapping("m"), "cc.yaml:1: m: expected a mapping, got a list"),
    ("a: 1\n", lambda r: r.text("s", required=True), "cc.yaml:1: s: required, not given"),
    ("q:\n  x: 1\n", lambda r: r.section("q").integer("n", required=True), "cc.yaml:1: q.n: required, not given"),
])
def test_one_wording_per_kind_with_file_key_and_line(text, read, message):
    assert problem(text, read) == message


@pytest.mark.parametrize("value, seconds", [
    ("30", 30.0), ("2.5", 2.5), ('"30s"', 30.0), ('"15m"', 900.0), ('"2h"', 7200.0), ('"1.5h"', 5400.0),
    ('"250ms"', 0.25), ('"2min"', 120.0), ('"1d"', 86400.0), ('" 45 s "', 45.0),
])
def test_one_duration_grammar(value, seconds):
    assert reader(f"t: {value}\n").duration("t", 0.0) == seconds


@pytest.mark.parametrize("value, read, message", [
    ("soon", lambda r: r.duration("t", 1.0), 'expected a duration (30, 2.5, 30s, 15m, 2h), got "soon"'),
    ("true", lambda r: r.duration("t", 1.0), "expected a duration (30, 2.5, 30s, 15m, 2h), got true"),
    ("-5", lambda r: r.duration("t", 1.0), "expected a duration (30, 2.5, 30s, 15m, 2h), got -5"),
    ("3h", lambda r: r.duration("t", 1.0, 1, 7200), 'expected a duration of 1-7200 seconds (30, 2.5, 30s, 15m, 2h), got "3h"'),
    ("0", lambda r: r.duration("t", 1.0, gt=0), "expected a duration of > 0 seconds (30, 2.5, 30s, 15m, 2h), got 0"),
])
def test_bad_durations(value, read, message):
    assert problem(f"t: {value}\n", read) == f"cc.yaml:1: t: {message}"


def test_duration_function():
    assert yamlsrc.duration(90) == 90.0 and yamlsrc.duration("15m") == 900.0
    assert yamlsrc.duration("15 minutes") is None and yamlsrc.duration(False) is None
    assert yamlsrc.duration(None) is None


def test_unknown_keys_are_refused_with_the_known_ones():
    with pytest.raises(ConfigError) as exc:
        reader("sip:\n  port: 5060\n  colour: red\n").section("sip", ("port", "bind"))
    assert str(exc.value) == "cc.yaml:3: sip.colour: unknown key (known: bind, port)"
    with pytest.raises(ConfigError) as exc:
        reader("x: 1\n", known=("y",))
    assert str(exc.value) == "cc.yaml:1: x: unknown key (known: y)"


def test_finish_refuses_what_nothing_read():
    r = reader("type: play\nnxt: menu\n")
    r.text("type")
    r.text("next")
    with pytest.raises(ConfigError, match=r"cc.yaml:2: nxt: unknown key \(known: next, type\)"):
        r.finish()


def test_nested_sections_carry_the_key_path_and_line():
    r = reader("queues:\n  sales:\n    announce:\n      every: 2m\n      ewt: maybe\n  1001: {}\n")
    queues = r.section("queues")
    names = [name for name, _ in queues.sections()]
    assert names == ["sales", "1001"]
    announce = queues.section("sales").section("announce")
    assert announce.path == "queues.sales.announce" and announce.duration("every", 0.0) == 120.0
    with pytest.raises(ConfigError) as exc:
        announce.flag("ewt", False)
    assert (exc.value.key, exc.value.line) == ("queues.sales.announce.ewt", 5)
    assert queues.section("1001").line() == 6      # a number as a key is a dotted path too, with its line
    assert r.section("missing").keys() == []
    with pytest.raises(ConfigError, match="cc.yaml:1: queues: expected a mapping, got a list"):
        reader("queues: [a]\n").section("queues")


def test_collect_mode_reports_every_problem_and_reads_on_with_defaults():
    issues = Issues(collect=True)
    r = reader("port: abc\nratio: 9\nmode: turbo\nextra: 1\nwait: soon\n", issues=issues,
               known=("port", "ratio", "mode", "wait"))
    assert r.integer("port", 5060, 1, 65535) == 5060
    assert r.number("ratio", 0.5, 0, 1) == 0.5
    assert r.text("mode", "fast", choices=("fast", "slow")) == "fast"
    assert r.duration("wait", 30.0) == 30.0
    r.text("name", required=True)
    assert [(e.key, e.line) for e in issues.found] == [("extra", 4), ("port", 1), ("ratio", 2), ("mode", 3),
                                                       ("wait", 5), ("name", 1)]
    assert str(issues.found[1]) == 'cc.yaml:1: port: expected an integer 1-65535, got "abc"'


def test_raise_mode_stops_at_the_first_problem():
    r = reader("port: abc\nratio: 9\n")
    with pytest.raises(ConfigError, match="port"):
        r.integer("port", 5060, 1, 65535)


def test_a_document_that_is_not_a_mapping():
    with pytest.raises(ConfigError, match=r"^cc.yaml:1: expected a mapping, got a list$"):
        reader("- a\n- b\n")
    assert reader("").keys() == []                                   # an empty file reads as all defaults


def test_strings_are_rewritten_by_the_callers_function():
    r = reader("url: ${X}\n", strings=lambda s: s.replace("${X}", "redis://h"))
    assert r.text("url") == "redis://h" and r.text("other", "${X}") == "redis://h"
    assert r.section("s").strings is r.strings
