import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from repo import REPO

from callcenter import yamlsrc
from callcenter.dialer.campaign import (
    PRESETS,
    in_calling_window,
    load_campaigns,
    next_window_open,
    parse_campaign,
)
from callcenter.exceptions import ConfigError

BASE = "id: x\ntype: telesales\ndial_mode: progressive\nqueue: sales\ncaller_id: '0280000000'\n"


def parse(text):
    return parse_campaign(*yamlsrc.loads(text, "x.yaml"))


def test_demo_campaigns_load():
    cs = load_campaigns(REPO / "campaigns")
    assert cs["telesales_demo"].compliance.max_calls_per_number == 1
    assert cs["debt_reminder_demo"].compliance.calling_hours == ((dt.time(7), dt.time(21)),)
    assert cs["debt_reminder_demo"].dial_mode == "agentless"


@pytest.mark.parametrize("extra,where", [
    ("dial_mode: turbo\n", "x.yaml:5: dial_mode: expected one of preview"),
    ("compliance: {preset: nope}\n", "x.yaml:6: compliance.preset"),
    ("compliance:\n  calling_hours: ['17:00-08:00']\n", "x.yaml:7: compliance.calling_hours[0]: window start"),
    ("attempts: {retry: {busy: soon}}\n", "attempts.retry.busy: expected a duration"),
    ("pacing: {target_abandon_rate: 0.05}\n", "pacing.target_abandon_rate: above the compliance limit"),
    ("colour: red\n", "x.yaml:6: colour: unknown key"),
    ("time_zone: Mars/Olympus\n", "time_zone: unknown IANA time zone"),
])
def test_validation_names_file_line_key(extra, where):
    text = BASE.replace("dial_mode: progressive\n", "") if extra.startswith("dial_mode") else BASE
    with pytest.raises(ConfigError) as exc:
        parse(text + extra)
    assert where in str(exc.value)


def test_agentless_needs_flow():
    with pytest.raises(ConfigError, match="ivr_flow"):
        parse("id: d\ntype: debt_reminder\ncaller_id: '0280000000'\n")


def test_windows_and_presets():
    p = PRESETS["vn_advertising"]
    vn = ZoneInfo("Asia/Ho_Chi_Minh")
    assert in_calling_window(p, dt.datetime(2026, 11, 24, 8, 0, tzinfo=vn))
    assert not in_calling_window(p, dt.datetime(2026, 11, 24, 17, 0, tzinfo=vn))
    assert next_window_open(p, dt.datetime(2026, 11, 24, 17, 0, tzinfo=vn)) == dt.datetime(2026, 11, 25, 8, 0,
                                                                                            tzinfo=vn)
    assert PRESETS["vn_debt_collection"].max_calls_per_number == 5
    assert PRESETS["us_tcpa"].max_abandon_rate == 0.03


def test_machine_action_is_a_flow_a_prompt_or_hangup():
    assert parse(BASE + "amd: {enabled: true, machine_prompt: debt/thanks_goodbye}\n").machine_prompt == \
        "debt/thanks_goodbye"
    c = parse(BASE + "amd: {enabled: true}\n")
    assert c.machine_flow is None and c.machine_prompt is None          # hang up on machines
    with pytest.raises(ConfigError, match="x.yaml:.*amd.machine_prompt"):
        parse(BASE + "amd:\n  machine_flow: f\n  machine_prompt: p\n")


def test_campaign_prompts_resolve_to_sound_files():
    from callcenter.calls.dialing import resolve_prompt

    sounds = REPO / "sounds"
    assert resolve_prompt("debt/calling_from", sounds) == str((sounds / "vi/debt/calling_from.wav").resolve())
    assert resolve_prompt("sounds/vi/debt/calling_from.wav", sounds).endswith("vi/debt/calling_from.wav")
    assert resolve_prompt("missing/prompt", sounds) == "missing/prompt"


def test_a_campaign_file_sets_its_own_recording_policy():
    from callcenter.calls.recording import ALWAYS, SAMPLE, Policy, parse_settings

    c = parse(BASE + "recording: {policy: always, retention_days: 365}\n")
    assert c.recording == Policy(ALWAYS, 0.0, 365)
    assert parse(BASE).recording is None
    with pytest.raises(ConfigError) as exc:
        parse(BASE + "recording: {sample: 250}\n")
    assert "x.yaml:6: recording.sample" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        parse(BASE + "recording: {keep: 3}\n")
    assert "recording.keep: unknown key" in str(exc.value)
    # the campaign file wins over the worker config's recording.campaigns entry; the consent prompt is inherited
    data, loc = yamlsrc.loads("recording: {consent_prompt: notice, campaigns: {x: {policy: never}, y: {sample: 5}}}",
                              "callcenter.yaml")
    s = parse_settings(yamlsrc.Reader(data, loc), REPO).with_campaigns({"x": c.recording})
    assert s.policy("sales", "x") == Policy(ALWAYS, 0.0, 365, "notice")
    assert s.policy("sales", "y").mode == SAMPLE
