"""The ``wrapup`` section of callcenter.yaml (callcenter/wrapup.py): disposition codes per queue and per
campaign, required or optional; a campaign's codes win over its queue's, a queue's over the default; errors
name file, key and line."""

from __future__ import annotations

import pytest

from callcenter.exceptions import ConfigError
from callcenter.wrapup import WrapupCodes, WrapupSettings, parse
from callcenter.yamlsrc import Reader, loads


def read(text: str) -> WrapupSettings:
    data, loc = loads(text, "callcenter.yaml")
    return parse(Reader(data, loc))


def test_codes_per_queue_and_campaign() -> None:
    s = read("""
wrapup:
  default: {codes: [info, other]}
  queues:
    support: {codes: [info, complaint], required: true}
  campaigns:
    renewals: {codes: [renewed, declined]}
""")
    assert s.for_call("support", None) == WrapupCodes(("info", "complaint"), True)
    assert s.for_call("support", "renewals") == WrapupCodes(("renewed", "declined"), False)
    assert s.for_call("sales", None) == WrapupCodes(("info", "other"), False)
    assert s.as_dict()["queues"]["support"] == {"codes": ["info", "complaint"], "required": True}
    assert read("{}") == WrapupSettings()          # no section: no codes, nothing required


# each mistake -> where the error says it is (file:line: key)
MISTAKES = {
    "wrapup:\n  queues:\n    support: {codes: [Info]}\n": "callcenter.yaml:3: wrapup.queues.support.codes[0]",
    "wrapup:\n  queues:\n    support: {codes: [a, a]}\n": "callcenter.yaml:3: wrapup.queues.support.codes[1]",
    "wrapup:\n  default: {required: true}\n": "callcenter.yaml:2: wrapup.default.required",
    "wrapup:\n  campaigns:\n    x: {codes: [a], colour: red}\n": "callcenter.yaml:3: wrapup.campaigns.x.colour",
    "wrapup:\n  queue: {}\n": "callcenter.yaml:2: wrapup.queue",
}


@pytest.mark.parametrize("text", list(MISTAKES))
def test_errors_name_file_key_and_line(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        read(text)
    assert str(err.value).startswith(MISTAKES[text]), str(err.value)
