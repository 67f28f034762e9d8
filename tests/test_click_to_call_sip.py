"""Agent click-to-call over real SIP: ``POST /agents/{id}/dial`` rings the agent's phone (sipp) first, then
the customer (a sipp UAS behind the worker's trunk), and bridges them: the customer sends tone A, the agent's
phone tone B, and each hears the other's (tests/tones.py). Numbers the dial policy or the caller-id list
refuse are never dialed, another agent may not dial for this one, and an agent who does not answer means
the customer is not dialed. Plus the pure rules: the calling window and the config section."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import ports
import pytest
import sipp
import tones
from recording_helpers import channels, tone_blocks
from worker_proc import WorkerProc, api_user, flush, new_worker

from callcenter.auth.roles import AGENT
from callcenter.config import ClickToCallSettings, load_config
from callcenter.dialer.keys import DialerKeys
from callcenter.exceptions import ConfigError
from callcenter.redisconn import connect_sync
from callcenter.timeofday import time_of_day

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

A, B = 600.0, 1000.0           # customer, agent
AGENT_ID = "1001"
CALLER_IDS = ["02873001234", "+842873009999"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[tuple[WorkerProc, int]]:
    tmp = tmp_path_factory.mktemp("c2c")
    flush(redis_server.url)
    campaigns = tmp / "campaigns"
    campaigns.mkdir()
    customer_port = ports.port()
    w = new_worker(tmp, redis_server.url)
    w.write_config(campaigns=campaigns, trunk=f"127.0.0.1:{customer_port}", extra=(
        f"click_to_call: {{caller_ids: {CALLER_IDS}, calling_hours: ['00:00-24:00'], agent_ring_timeout: 3s,"
        " ring_timeout: 10s, max_calls_per_number: 1, cap_window: 1h, cap_group: vn_advertising, wrapup: 5s}\n"
        "recording: {policy: always}\n"))
    w.start()
    yield w, customer_port
    assert w.stop() == 0, w.tail()


def _outbound(w: WorkerProc) -> list:
    return [c for c in w.calls(0, timeout=0.5) if c.direction == "outbound"]


def _state(w: WorkerProc, agent: str) -> str | None:
    c = connect_sync(w.redis_url)
    try:
        return c.hget(f"cc:rt:a:{agent}", "state")
    finally:
        c.close()


def _wait_log(w: WorkerProc, event: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in w.logs() if e.get("event") == event]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no {event!r} log line:\n{w.tail()}")


def _wait_state(w: WorkerProc, agent: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _state(w, agent) != state:
        assert time.monotonic() < deadline, (agent, _state(w, agent), w.tail())
        time.sleep(0.1)


def test_refused_numbers_caller_ids_and_agents_dial_nothing(setup: tuple[WorkerProc, int]) -> None:
    w, _customer_port = setup
    w.login(AGENT_ID)
    c = connect_sync(w.redis_url)
    c.sadd(DialerKeys("cc:").dnc_global(), "+84901110001")
    c.close()
    mine = api_user(w.redis_url, "agent-1001", [AGENT], agent=AGENT_ID)
    other = api_user(w.redis_url, "agent-1002", [AGENT], agent="1002")
    path = f"/agents/{AGENT_ID}/dial"
    ok_id = CALLER_IDS[0]

    st, body = w.http("POST", path, {"number": "0901110001", "caller_id": ok_id}, token=mine)
    assert st == 403 and body["detail"]["rule"] == "dnc" and "do-not-call" in body["error"], body
    st, body = w.http("POST", path, {"number": "19001234", "caller_id": ok_id}, token=mine)
    assert st == 403 and body["detail"]["rule"] == "premium", body
    st, body = w.http("POST", path, {"number": "+14155550100", "caller_id": ok_id}, token=mine)
    assert st == 403 and body["detail"]["rule"] == "international", body
    st, body = w.http("POST", path, {"number": "12ab", "caller_id": ok_id}, token=mine)
    assert st == 400 and body["detail"]["rule"] == "invalid", body
    st, body = w.http("POST", path, {"number": "0901110002", "caller_id": "0999999999"}, token=mine)
    assert st == 400 and body["detail"]["rule"] == "caller_id", body
    st, body = w.http("POST", path, {"number": "0901110002"}, token=mine)
    assert st == 400 and body["detail"]["rule"] == "caller_id", body
    # another agent may not dial for this one; an unknown agent is 404, a logged-out one 409
    assert w.http("POST", path, {"number": "0901110002", "caller_id": ok_id}, token=other)[0] == 403
    assert w.http("POST", "/agents/nosuch/dial", {"number": "0901110002", "caller_id": ok_id})[0] == 404
    w.logout("1002")
    st, body = w.http("POST", "/agents/1002/dial", {"number": "0901110002", "caller_id": ok_id})
    assert st == 409 and body["detail"]["rule"] == "agent_state", body

    assert _outbound(w) == []                                      # nothing was dialed
    assert not [e for e in w.logs() if e.get("event") == "click-to-call"]
    refused = [e for e in w.logs() if e.get("event") == "dial refused" and e.get("purpose") == "click_to_call"]
    assert sorted(e["reason"] for e in refused) == ["dnc", "international", "invalid", "premium"], refused
    assert _state(w, "1001") == "available"
    assert all("0901110001" not in str(e) for e in w.logs())       # numbers masked in the log
    assert _state(w, AGENT_ID) == "available"


def test_agent_not_answering_dials_no_customer(setup: tuple[WorkerProc, int]) -> None:
    w, customer_port = setup
    w.login(AGENT_ID)
    phone = sipp.agent(w.agents_port, "noanswer")
    st, body = w.http("POST", f"/agents/{AGENT_ID}/dial", {"number": "0901110003", "caller_id": CALLER_IDS[1]})
    assert st == 202 and body["state"] == "ringing_agent" and body["number"] == "0901110003", body
    assert _state(w, AGENT_ID) == "paused"                          # out of the ACD while it rings
    st, body = w.http("POST", f"/agents/{AGENT_ID}/dial", {"number": "0901110003", "caller_id": CALLER_IDS[1]})
    assert st == 409, body                                          # one click-to-call at a time
    line = _wait_log(w, "click-to-call: agent did not answer, customer not dialed")
    assert line["agent"] == AGENT_ID and line["result"] == "no_answer", line
    assert sipp.wait_all(phone, timeout=20) == [0], phone.errors()
    _wait_state(w, AGENT_ID, "available")                           # back in the ACD
    assert _outbound(w) == []                                       # the customer was never dialed


def test_agent_answers_customer_dialed_and_bridged(setup: tuple[WorkerProc, int]) -> None:
    w, customer_port = setup
    try:
        sniffer = tones.Sniffer(set())
    except PermissionError:
        pytest.skip("watching the loopback interface needs root (CAP_NET_RAW)")
    try:
        w.login(AGENT_ID)
        phone = sipp.agent(w.agents_port, "answer", ring_ms=300, steps=[("tone", B, 30_000)])
        customer = sipp.agent(customer_port, "answer_bye", ring_ms=300, talk_ms=7000, steps=[("tone", A, 10_000)])
        sniffer.watch(phone.media_port)
        sniffer.watch(customer.media_port)
        mine = api_user(w.redis_url, "agent-1001", [AGENT], agent=AGENT_ID)
        st, body = w.http("POST", f"/agents/{AGENT_ID}/dial", {"number": "0901110004", "caller_id": CALLER_IDS[0]},
                          token=mine)
        assert st == 202, body
        bridged_line = _wait_log(w, "click-to-call: bridged")
        bridged = time.monotonic()
        assert _state(w, AGENT_ID) == "paused"                      # no queue offer meanwhile
        time.sleep(4.0)
        assert sipp.wait_all(customer, phone, timeout=30) == [0, 0], customer.errors() + phone.errors()
        _wait_state(w, AGENT_ID, "wrap_up")     # after-call work, as after a queue call (click_to_call.wrapup 5 s)
        start, end = bridged + 0.7, bridged + 3.5
        heard_customer = tones.detect(sniffer.pcm(customer.media_port, start, end), [A, B])
        heard_agent = tones.detect(sniffer.pcm(phone.media_port, start, end), [A, B])
        assert len(sniffer.pcm(customer.media_port, start, end)) > 8000, "too little audio at the customer"
        assert heard_customer == {B}, heard_customer
        assert heard_agent == {A}, heard_agent
    finally:
        sniffer.close()

    rows = [r for r in w.calls(1, timeout=20) if r.direction == "outbound"]
    assert len(rows) == 1, rows
    r = rows[0]
    assert r.call_id == bridged_line["call_id"]
    assert (r.caller, r.called, r.agent_id, r.outcome) == (CALLER_IDS[0], "84901110004", AGENT_ID, "answered"), r
    assert r.hangup_side == "caller" and r.talk_seconds is not None and r.talk_seconds > 4.0, r
    # recorded (recording.policy always): the customer's tone on the left, the agent's on the right
    left, right = channels(Path(r.recording))
    assert sum(tone_blocks(left, A)) >= 20 and sum(tone_blocks(right, B)) >= 20
    assert not any(tone_blocks(left, B, 0.2)) and not any(tone_blocks(right, A, 0.2))
    _wait_state(w, AGENT_ID, "available")
    c = connect_sync(w.redis_url)
    assert c.hget(f"cc:rt:a:{AGENT_ID}", "calls") == "1"                  # counted as a handled call
    c.close()
    assert "0901110004" not in w.log.read_text()                    # masked in every log line
    metrics = w.http("GET", "/metrics", token=None, headers={"authorization": "Bearer test-metrics-token"})[1]
    assert 'callcenter_click_to_call_total{result="answered"} 1.0' in metrics
    assert 'callcenter_click_to_call_total{result="agent_no_answer"} 1.0' in metrics


def test_per_number_cap_shared_with_campaigns_of_the_group(setup: tuple[WorkerProc, int]) -> None:
    """click_to_call.max_calls_per_number 1 in cap group vn_advertising: the number bridged above is capped
    now, and so is one a vn_advertising campaign dialed (its reservation counts in the same zset)."""
    w, _customer_port = setup
    w.login(AGENT_ID)
    c = connect_sync(w.redis_url)
    c.zadd(DialerKeys("cc:").cap("vn_advertising", "+84901110005"), {"t_camp:1": time.time() - 60})
    c.close()
    for number in ("0901110004", "0901110005"):
        st, body = w.http("POST", f"/agents/{AGENT_ID}/dial", {"number": number, "caller_id": CALLER_IDS[0]})
        assert st == 403 and body["detail"]["rule"] == "number_cap", body
    assert _state(w, AGENT_ID) == "available"
    assert len(_outbound(w)) == 1                                   # still only the bridged call


# -- pure rules -----------------------------------------------------------------------------------


def test_calling_window_is_the_callees_local_time() -> None:
    from callcenter.calls.click_to_call import in_window

    s = ClickToCallSettings(calling_hours=((time_of_day("08:00"), time_of_day("21:00")),),
                            time_zone="America/New_York")    # for numbers whose country has many zones
    # 2026-06-01 00:30 UTC is 07:30 in Vietnam (closed) and 20:30 the evening before in New York (open)
    t = 1780273800.0
    assert not in_window(s, "+84901110001", t)
    assert in_window(s, "+12125550100", t)
    assert in_window(s, "+84901110001", t + 3600)             # 08:30 in Vietnam


def test_config_section(tmp_path: Path) -> None:
    base = Path(__file__).resolve().parent.parent / "callcenter.yaml"
    text = re.sub(r"(?m)^click_to_call:.*\n(?:  .*\n)*", "", base.read_text())   # the shipped section, replaced
    cfg = load_config(base)
    assert cfg.click_to_call == ClickToCallSettings()           # defaults: the campaigns' caller ids, 08-21
    bad = tmp_path / "callcenter.yaml"
    for section, needle in (("click_to_call: {caller_ids: [abc]}", "click_to_call.caller_ids[0]"),
                            ("click_to_call: {caller_ids: [2873001234]}", "click_to_call.caller_ids[0]"),
                            ("click_to_call: {calling_hours: ['21:00-08:00']}", "click_to_call.calling_hours[0]"),
                            ("click_to_call: {time_zone: Mars/Olympus}", "click_to_call.time_zone"),
                            ("click_to_call: {max_calls_per_number: -1}", "click_to_call.max_calls_per_number"),
                            ("click_to_call: {ring: 3}", "click_to_call.ring")):
        bad.write_text(text + "\n" + section + "\n")
        for entry in base.parent.iterdir():
            if entry.name != "callcenter.yaml" and not (tmp_path / entry.name).exists():
                (tmp_path / entry.name).symlink_to(entry)
        with pytest.raises(ConfigError) as exc:
            load_config(bad)
        assert needle in str(exc.value), str(exc.value)
