"""routing_rules.yaml validation: the shipped file loads; errors name file, key and line."""

from __future__ import annotations

import pytest
from repo import REPO

from callcenter.exceptions import ConfigError
from callcenter.routing import rules as R


def test_shipped_rules_load():
    rules = R.load(REPO / "routing_rules.yaml")
    assert {"sales", "support", "vip"} <= set(rules.queues)
    assert sorted(rules.agents) == ["1001", "1002", "1003", "1004"]
    assert rules.agents["1001"].uri == "sip:1001@127.0.0.1:5070"
    assert rules.queues["sales"].escalation[1].overflow == ("support",)
    assert rules.queues["support"].wrapup == 15 and rules.queues["sales"].wrapup == 10   # defaults apply
    assert rules.queues["sales"].sl_target == 0.8                                      # the default target
    again = R.parse(rules.to_json(), R.yamlsrc.Located("<json>"))
    assert again.queues == rules.queues and again.agents == rules.agents


def test_sl_target_per_queue_or_from_defaults():
    rules = R.loads("defaults: {sl_target: 0.9}\nqueues:\n  sales: {}\n  vip: {sl_target: 0.95}\n")
    assert (rules.queues["sales"].sl_target, rules.queues["vip"].sl_target) == (0.9, 0.95)
    assert R.parse(rules.to_json(), R.yamlsrc.Located("<json>")).queues == rules.queues


@pytest.mark.parametrize("text, key, line, message", [
    ("queues:\n  sales:\n    strategy: random\n", "queues.sales.strategy", 3, "expected one of longest_idle"),
    ("queues:\n  sales:\n    skills: {sales: 11}\n", "queues.sales.skills.sales", 3, "between 1 and 10"),
    ("queues:\n  sales: {}\nagents:\n  a1: {uri: 'sip:a1@h', queues: {nope: 1}}\n",
     "agents.a1.queues.nope", 4, "unknown queue"),
    ("queues:\n  sales: {}\nagents:\n  a1:\n    uri: 'tel:123'\n", "agents.a1.uri", 5, "SIP URI"),
    ("queues:\n  sales:\n    escalation:\n      - {after: 10, overflow: [gone]}\n",
     "queues.sales.escalation[0].overflow", 4, "unknown queue"),
    ("queues:\n  sales:\n    escalation:\n      - after: 10\n", "queues.sales.escalation[0]", 4, "does nothing"),
    ("queues:\n  sales:\n    escalation:\n      - {after: 10, relax_by: 1}\n      - {after: 5, relax_by: 1}\n",
     "queues.sales.escalation[1].after", 5, "increasing"),
    ("queues:\n  sales:\n    on_timeout: {action: transfer}\n", "queues.sales.on_timeout", 3, "target"),
    ("queues:\n  sales:\n    sl_target: 80\n", "queues.sales.sl_target", 3, "expected a number 0-1, got 80"),
    ("defaults: {sl_target: -0.1}\nqueues:\n  sales: {}\n", "defaults.sl_target", 1, "expected a number 0-1"),
    ("queues:\n  sales:\n    colour: red\n", "queues.sales.colour", 3, "unknown key"),
    ("defaults: {wrapup: -1}\nqueues:\n  sales: {}\n", "defaults.wrapup", 1, "expected a duration of 0-3600 seconds"),
    ("queues:\n  sales: {\n", None, None, "invalid YAML"),
])
def test_errors_name_key_and_line(text, key, line, message):
    with pytest.raises(ConfigError) as exc:
        R.loads(text, "routing_rules.yaml")
    err = exc.value
    assert message in err.message
    if key is not None:
        assert (err.key, err.line) == (key, line), str(err)
    assert str(err).startswith("routing_rules.yaml:")
