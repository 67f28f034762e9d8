"""Overload: past its capacity a worker refuses new calls with 503 + Retry-After, counts them, and the
calls it took stay clean (answered, every digit heard, a CDR each). Real worker, real sipp callers."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
import sipp
from repo import REPO
from worker_proc import METRICS_TOKEN, WorkerProc, new_worker

from callcenter.config import load_config
from callcenter.exceptions import ConfigError
from callcenter.telephony.admission import Admission, Gate
from callcenter.telephony.settings import CapacitySettings

pytestmark = [pytest.mark.timeout(180)]

# The bench IVR: prompts loop and every digit is answered, so a caller stays as long as it likes.
FLOWS = REPO / "bench" / "flows"
# ~3.4 s in the IVR pressing 1 twice, then the caller hangs up.
STEPS: list[tuple] = [("pause", 500), ("dtmf", "1"), ("pause", 1500), ("dtmf", "1"), ("pause", 800), ("hangup",)]


def ivr_worker(tmp: Path, redis_url: str, capacity: str, max_calls: int = 1000) -> WorkerProc:
    w = new_worker(tmp, redis_url)
    flows = tmp / "flows"
    flows.mkdir()
    (flows / "bench_ivr.yaml").write_text((FLOWS / "bench_ivr.yaml").read_text())
    w.write_config(ivr_scripts=flows, routes={"default": "bench_ivr"}, extra=f"capacity: {{{capacity}}}")
    w.config.write_text(w.config.read_text().replace("max_calls: 1000", f"max_calls: {max_calls}"))
    return w.start()


def metric(w: WorkerProc, name: str, **labels: str) -> float:
    status, text = w.http("GET", "/metrics", token=METRICS_TOKEN)
    assert status == 200, text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} " if want else f"{name} "):
            return float(line.split()[-1])
    return 0.0


def wait_gate_open(w: WorkerProc, signal_name: str, timeout: float) -> None:
    """Until the worker's admission gauge for that signal says it takes calls again."""
    deadline = time.monotonic() + timeout
    while metric(w, "callcenter_admission_overloaded", signal=signal_name) != 0:
        assert time.monotonic() < deadline, w.tail()
        time.sleep(0.2)


def clean(rows: list, digits: int) -> list:
    """CDR rows of calls that were answered and heard every digit the caller pressed."""
    return [r for r in rows if r.answer and r.ivr_digits.count("=1") >= digits]


@pytest.mark.sip
def test_calls_beyond_the_limit_get_503_with_retry_after(tmp_path: Path, redis_url: str) -> None:
    """sip.max_calls 10 with 5 kept for agent legs: 10 callers arrive together, 5 are taken and finish
    clean, 5 get 503 with Retry-After: 7, counted as overload_calls; once they are gone a caller is taken."""
    w = ivr_worker(tmp_path, redis_url, "reserve_calls: 5, retry_after: 7, loop_lag_seconds: 10", max_calls=10)
    try:
        callers = sipp.caller(w.target, STEPS, number="0903000001", service="bench", calls=10, rate=100,
                              busy_ok=True)
        assert callers.wait(60) == 0, callers.errors()
        assert callers.refused() == ["7"] * 5
        assert metric(w, "callcenter_sip_refused_total", reason="overload_calls") == 5
        rows = w.calls(wait_for=5)
        assert len(rows) == 5 and len(clean(rows, 2)) == 5, rows
        # One log line when refusing started and one when it ended, not one per refused call.
        log = w.logs()
        on = [e for e in log if e.get("event") == "overload: refusing new calls"]
        assert len(on) == 1 and on[0]["signal"] == "calls" and on[0]["call_limit"] == 5, on
        wait_gate_open(w, "calls", 5)
        later = sipp.caller(w.target, STEPS, number="0903000002", service="bench")
        assert later.wait(30) == 0, later.errors()
        assert clean([w.call_from("0903000002")], 2)
        off = [e for e in w.logs() if e.get("event") == "overload over: taking new calls"]
        assert len(off) == 1 and off[0]["refused"] == 5, off
    finally:
        w.stop()


@pytest.mark.sip
def test_loop_lag_refuses_new_calls_until_it_recovers(tmp_path: Path, redis_url: str) -> None:
    """The worker's loop stalls for 0.6 s (the host stops the process: CPU steal, swapping; here
    SIGSTOP/SIGCONT, so the production timer measures a real lateness). Callers arriving right after
    get 503 (overload_lag) while three callers already in the IVR finish clean; the smoothed lag falls,
    refusing stops after hold_seconds and the next caller is taken."""
    w = ivr_worker(tmp_path, redis_url, "loop_lag_seconds: 0.05, hold_seconds: 1, loop_cpu: 0")
    assert w.proc is not None
    try:
        steps = [("pause", 500), ("dtmf", "1"), ("pause", 3500), ("dtmf", "1"), ("pause", 800), ("hangup",)]
        live = sipp.caller(w.target, steps, number="0903000003", service="bench", calls=3, rate=20)
        deadline = time.monotonic() + 10
        while sum(e.get("event") == "incoming call" for e in w.logs()) < 3:
            assert time.monotonic() < deadline, w.tail()
            time.sleep(0.1)
        time.sleep(1.0)    # past the first digit
        w.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.6)
        w.proc.send_signal(signal.SIGCONT)
        time.sleep(0.1)
        late = sipp.caller(w.target, STEPS, number="0903000004", service="bench", calls=4, rate=40, busy_ok=True)
        assert late.wait(30) == 0, late.errors()
        refused = late.refused()
        assert refused and set(refused) == {"5"}, refused
        assert metric(w, "callcenter_sip_refused_total", reason="overload_lag") == len(refused)
        assert live.wait(30) == 0, live.errors()
        # The stall is over: the gate opens after hold_seconds, a new caller is taken.
        wait_gate_open(w, "lag", 10)
        later = sipp.caller(w.target, STEPS, number="0903000005", service="bench")
        assert later.wait(30) == 0, later.errors()
        rows = w.calls(wait_for=4 + 4 - len(refused))
        assert len(clean([r for r in rows if r.caller == "0903000003"], 2)) == 3, rows
        assert len(clean([r for r in rows if r.caller == "0903000004"], 2)) == 4 - len(refused), rows
        assert clean([w.call_from("0903000005")], 2)
        log = w.logs()
        on = [e for e in log if e.get("event") == "overload: refusing new calls"]
        off = [e for e in log if e.get("event") == "overload over: taking new calls"]
        assert {e["signal"] for e in on} == {"lag"} and on[0]["loop_lag_ms"] > 50, on
        assert {e["signal"] for e in off} == {"lag"} and sum(e["refused"] for e in off) == len(refused), off
    finally:
        w.stop()


@pytest.mark.sip
def test_media_slots_refuse_before_rtp_ports_run_out(tmp_path: Path, redis_url: str) -> None:
    """An RTP range of 160 ports leaves the inbound account 40 port pairs; with 32 always kept free,
    callers beyond the first few get 503 overload_media instead of a 488/500 from pjsua, and the
    taken calls finish clean."""
    w = new_worker(tmp_path, redis_url)
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "bench_ivr.yaml").write_text((FLOWS / "bench_ivr.yaml").read_text())
    w.write_config(ivr_scripts=flows, routes={"default": "bench_ivr"}, extra="capacity: {retry_after: 9, loop_lag_seconds: 10}")
    w.config.write_text(w.config.read_text().replace("rtp_port_range: 2000", "rtp_port_range: 160"))
    w.start()
    try:
        callers = sipp.caller(w.target, STEPS, number="0903000006", service="bench", calls=20, rate=20,
                              busy_ok=True)
        assert callers.wait(60) == 0, callers.errors()
        refused = callers.refused()
        assert refused and set(refused) == {"9"}, refused
        assert metric(w, "callcenter_sip_refused_total", reason="overload_media") == len(refused)
        rows = w.calls(wait_for=20 - len(refused))
        assert len(rows) == 20 - len(refused) and len(clean(rows, 2)) == len(rows), rows
        assert 0 < len(rows) <= 10, len(rows)
    finally:
        w.stop()


# -- the decision, without a worker ---------------------------------------------------------------

def test_gate_hysteresis_holds_and_needs_the_low_mark() -> None:
    g = Gate("lag", enter=0.2, leave=0.1, hold=2.0)
    assert not g.update(0.19, 0.0) and not g.on
    assert g.update(0.25, 1.0) and g.on
    assert not g.update(0.05, 2.5) and g.on        # below the low mark but not held long enough
    assert not g.update(0.15, 3.5) and g.on        # held, but between the marks: still on
    assert g.update(0.09, 3.6) and not g.on


def test_admission_signals() -> None:
    live = [0]
    a = Admission(CapacitySettings(reserve_calls=2, loop_lag_seconds=0.1, loop_cpu=0.5, hold_seconds=0),
                  max_calls=10, live_calls=lambda: live[0], media_free=None)
    assert a.refusal() is None
    live[0] = 8
    assert a.refusal() == "calls"
    live[0] = 7
    assert a.refusal() is None
    # Lag: one very late tick moves the smoothed lag past the threshold.
    a.observe(100.0, 0.5, 0.0, 0.0)
    assert a.lag > 0.1 and a.refusal() == "lag"
    for i in range(1, 20):
        a.observe(100.0 + i * 0.05, 0.0, 0.0, 0.0)
    assert a.refusal() is None
    # The loop thread busy 80% of the last second.
    for i in range(21):
        a.observe(200.0 + i * 0.05, 0.0, i * 0.05 * 0.8, 0.0)
    assert a.refusal() == "cpu"
    # Media: fewer free slots than the reserve.
    b = Admission(CapacitySettings(), max_calls=1000, live_calls=lambda: 0, media_free=None)
    b.observe(1.0, 0.0, 0.0, 0.0, media_free=10)
    assert b.refusal() == "media"


def test_admission_rate_cap() -> None:
    a = Admission(CapacitySettings(max_new_calls_per_second=5, hold_seconds=0), max_calls=100,
                  live_calls=lambda: 0)
    answers = [a.refusal() for _ in range(8)]
    assert answers.count(None) == 5 and answers[5:] == ["rate"] * 3


def _config(tmp: Path, capacity: str) -> Path:
    p = tmp / "callcenter.yaml"
    text = (REPO / "callcenter.yaml").read_text()
    text = re.sub(r"\ncapacity:\n(  .*\n)+", "\n" + capacity, text)
    p.write_text(text.replace("ivr_scripts: ivr_scripts", f"ivr_scripts: {REPO / 'ivr_scripts'}")
                 .replace("sounds: sounds", f"sounds: {REPO / 'sounds'}")
                 .replace("routing_rules: routing_rules.yaml", f"routing_rules: {REPO / 'routing_rules.yaml'}")
                 .replace("campaigns: campaigns", f"campaigns: {REPO / 'campaigns'}"))
    return p


def test_shipped_config_spells_out_the_defaults() -> None:
    text = (REPO / "callcenter.yaml").read_text()
    shipped = load_config(REPO / "callcenter.yaml").sip.capacity
    assert shipped == CapacitySettings()
    for key in CapacitySettings.__dataclass_fields__:
        assert f"  {key}:" in text, key


@pytest.mark.parametrize(("capacity", "key"), [
    ("capacity:\n  loop_lag_seconds: 0\n", "capacity.loop_lag_seconds"),
    ("capacity:\n  loop_cpu: 1.5\n", "capacity.loop_cpu"),
    ("capacity:\n  reserve_calls: 900\n", "capacity.reserve_calls"),
    ("capacity:\n  retry_after: 0\n", "capacity.retry_after"),
    ("capacity:\n  max_new_calls_per_second: -1\n", "capacity.max_new_calls_per_second"),
    ("capacity:\n  colour: red\n", "capacity.colour"),
])
def test_config_errors_name_file_key_and_line(tmp_path: Path, capacity: str, key: str) -> None:
    path = _config(tmp_path, capacity)
    line = path.read_text().splitlines().index(capacity.splitlines()[1]) + 1
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert key in str(err.value) and f"callcenter.yaml:{line}" in str(err.value), str(err.value)
