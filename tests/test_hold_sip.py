"""Hold of a caller bridged to an agent, proved by tones on real SIP and RTP: the caller (sipp) sends tone
A, the agent's phone (sipp) tone B, the queue's music on hold is a WAV of tone C. Before hold the caller
hears B and the agent A; on hold the caller hears C and not B; after resuming B again. Hold comes from
the agent's phone (a re-INVITE with a=sendonly / a=inactive, then sendrecv) or from the API
(POST /calls/{call_id}/hold, /unhold). The CDR carries hold_seconds and hold_count, the queue log
HOLD / UNHOLD."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sipp
import tones
from worker_proc import WorkerProc, api_user, demo_rules, flow_dirs, flush, new_worker, queue_flow

from callcenter.auth.roles import AGENT, SUPERVISOR
from callcenter.cdr.writer import open_store

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

A, B, C = 600.0, 1000.0, 1400.0      # caller, agent, music on hold
ALL = [A, B, C]
AGENT_ID = "1003"                    # support only, in the demo rules

FLOW = queue_flow("holdtest", "support", "tone_c", max_wait="120", announce="{position: false, wait_time: false}")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[WorkerProc]:
    tmp = tmp_path_factory.mktemp("hold")
    flush(redis_server.url)
    sounds = tones.sounds_with_tone(tmp, "tone_c", C)
    scripts, campaigns = flow_dirs(tmp, {"holdtest": FLOW})
    w = new_worker(tmp, redis_server.url)
    rules = re.sub(r"wrapup: \d+", "wrapup: 0", demo_rules(w.agents_port))    # the next test's offer at once
    (tmp / "rules.yaml").write_text(re.sub(r"ring_timeout: \d+", "ring_timeout: 6", rules))
    w.write_config(rules=tmp / "rules.yaml", ivr_scripts=scripts, campaigns=campaigns, sounds=sounds,
                   routes={"hotline": "holdtest", "default": "holdtest"})
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


@pytest.fixture
def sniffer() -> Iterator[tones.Sniffer]:
    try:
        s = tones.Sniffer(set(), {"hold": b"53655765 2353687639", "resume": b"53655765 2353687640"})
    except PermissionError:
        pytest.skip("watching the loopback interface needs root (CAP_NET_RAW)")
    yield s
    s.close()


def _incoming_call(w: WorkerProc, number: str, timeout: float = 20.0) -> str:
    """The call id of the latest call from `number` (its "incoming call" log line; numbers are masked there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e["call_id"] for e in w.logs()
                 if e.get("event") == "incoming call" and str(e.get("caller", "")).endswith(number[-3:])]
        if found:
            return str(found[-1])
        time.sleep(0.1)
    raise AssertionError(f"no incoming call from {number}:\n{w.tail()}")


def _heard(s: tones.Sniffer, port: int, start: float, end: float) -> set[float]:
    pcm = s.pcm(port, start, end)
    assert len(pcm) >= 8000 * (end - start) * 0.5, f"too little audio at {port}: {len(pcm)} samples"
    return tones.detect(pcm, ALL)


def _hold_data(w: WorkerProc, call_id: str) -> list[tuple[str, dict]]:
    store = open_store(w.store_url)
    try:
        return [(e.event, e.data) for e in store.events(call_id) if e.event in ("HOLD", "UNHOLD")]
    finally:
        store.close()


@pytest.mark.parametrize("direction", ["sendonly", "inactive"])
def test_hold_from_the_agents_phone(worker: WorkerProc, sniffer: tones.Sniffer, direction: str) -> None:
    """The agent's phone holds (re-INVITE a=sendonly, or a=inactive) for 4 s and resumes (sendrecv)."""
    phone = sipp.agent(worker.agents_port, "answer", steps=[
        ("tone", B, 30_000), ("pause", 4000), ("reinvite", direction), ("pause", 4000),
        ("reinvite", "sendrecv")])
    sniffer.watch(phone.media_port)
    worker.login(AGENT_ID)
    number = "0901300001" if direction == "sendonly" else "0901300003"
    caller = sipp.caller(worker.target, [("tone", A, 30_000), ("pause", 14_000), ("hangup",)], number=number)
    sniffer.watch(caller.media_port)
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
    assert sniffer.marks["hold"] and sniffer.marks["resume"], "the phone's re-INVITEs were not seen"
    held, resumed = sniffer.marks["hold"][0], sniffer.marks["resume"][0]
    before, during, after = (held - 2.5, held - 0.3), (held + 0.7, resumed - 0.2), (resumed + 0.7, resumed + 3.0)
    assert _heard(sniffer, caller.media_port, *before) == {B}
    assert _heard(sniffer, phone.media_port, *before) == {A}
    assert _heard(sniffer, caller.media_port, *during) == {C}            # music, not the agent
    assert _heard(sniffer, caller.media_port, *after) == {B}
    assert _heard(sniffer, phone.media_port, *after) == {A}

    cdr = worker.call_from(number)
    assert cdr.agent_id == AGENT_ID and cdr.outcome == "answered"
    assert cdr.hold_count == 1
    assert 2.0 < cdr.hold_seconds < 8.0, cdr.hold_seconds                  # the 4 s span, loosely
    assert cdr.talk_seconds is not None and cdr.talk_seconds > 2.0
    assert [e for e, _ in _hold_data(worker, cdr.call_id)] == ["HOLD", "UNHOLD"]
    assert all(d["by"] == "phone" for _, d in _hold_data(worker, cdr.call_id))
    events = worker.events(cdr.call_id)
    assert events == ["ENTERQUEUE", "OFFER", "CONNECT", "HOLD", "UNHOLD", "COMPLETECALLER"], events


def test_hold_from_the_api(worker: WorkerProc, sniffer: tones.Sniffer) -> None:
    """A supervisor holds the call through the API, then the agent (its own call) resumes it; another
    agent may not touch it; a call still ringing an agent is 409, an unknown or ended one 404."""
    # rings 4 s (the queue's ring_timeout is 6): the window in which the call is queued, not yet bridged
    phone = sipp.agent(worker.agents_port, "answer", ring_ms=4000, steps=[("tone", B, 30_000)])
    sniffer.watch(phone.media_port)
    worker.login(AGENT_ID)
    caller = sipp.caller(worker.target, [("tone", A, 30_000), ("pause", 17_000), ("hangup",)],
                         number="0901300002")
    sniffer.watch(caller.media_port)
    supervisor = api_user(worker.redis_url, "sup-hold", [SUPERVISOR])
    mine = api_user(worker.redis_url, "agent-1003", [AGENT], agent=AGENT_ID)
    other = api_user(worker.redis_url, "agent-1004", [AGENT], agent="1004")
    started = time.time() - 1
    call_id = _incoming_call(worker, "0901300002")
    status, body = worker.http("POST", f"/calls/{call_id}/hold", {}, token=supervisor)
    assert status == 409, (status, body)                  # queued, the agent's phone still ringing
    deadline = time.monotonic() + 20
    while (status := worker.http("POST", f"/calls/{call_id}/unhold", {}, token=supervisor)[0]) != 200:
        assert status == 409 and time.monotonic() < deadline, status
        time.sleep(0.1)
    time.sleep(2.5)                                        # bridged: let it carry audio for a while
    bridged = time.monotonic()
    status, body = worker.http("POST", f"/calls/{call_id}/hold", {}, token=supervisor)
    assert status == 200 and body == {"call_id": call_id, "held": True, "changed": True}, body
    held = time.monotonic()
    assert worker.http("POST", f"/calls/{call_id}/hold", {}, token=supervisor)[1]["changed"] is False
    assert worker.http("POST", f"/calls/{call_id}/unhold?agent=1004", {}, token=other)[0] == 403
    assert worker.http("POST", f"/calls/{call_id}/unhold", {}, token=mine)[0] == 403     # own id missing
    time.sleep(3.5)
    status, body = worker.http("POST", f"/calls/{call_id}/unhold?agent={AGENT_ID}", {}, token=mine)
    assert status == 200 and body["changed"] is True, body
    resumed = time.monotonic()
    # the caller hangs up on its own a few seconds later
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()

    assert _heard(sniffer, caller.media_port, bridged - 2.0, bridged) == {B}
    assert _heard(sniffer, phone.media_port, bridged - 2.0, bridged) == {A}
    assert _heard(sniffer, caller.media_port, held + 0.5, held + 3.0) == {C}
    assert _heard(sniffer, caller.media_port, resumed + 0.5, resumed + 2.5) == {B}
    assert _heard(sniffer, phone.media_port, resumed + 0.5, resumed + 2.5) == {A}

    cdr = worker.call_from("0901300002", timeout=30)
    assert cdr.hold_count == 1 and 2.0 < cdr.hold_seconds < 10.0, (cdr.hold_count, cdr.hold_seconds)
    assert [(e, d["by"]) for e, d in _hold_data(worker, call_id)] == [("HOLD", "api:sup-hold"),
                                                                      ("UNHOLD", "api:agent-1003")]
    assert worker.http("POST", "/calls/nosuchcall/hold", {}, token=supervisor)[0] == 404
    audit = worker.http("GET", f"/admin/audit?action=/calls/&since={started}&limit=50")[1]["entries"]
    done = [(e["user"], e["action"], e["status"]) for e in audit]
    assert ("sup-hold", "POST /calls/{call_id}/hold", 200) in done
    assert ("agent-1003", "POST /calls/{call_id}/unhold", 200) in done
    assert ("agent-1004", "POST /calls/{call_id}/unhold", 403) in done          # refused: audited too
    assert worker.http("POST", f"/calls/{call_id}/hold", {}, token=supervisor)[0] == 404    # ended


def test_cdr_store_adds_the_hold_count_column_to_an_old_table(tmp_path: Path) -> None:
    """A store made before hold_count existed gets the column on open (CREATE TABLE IF NOT EXISTS keeps
    the old table); the count round-trips."""
    import sqlite3

    from callcenter.cdr.record import CallRecord
    from callcenter.cdr.sqlite_store import SqliteStore

    path = tmp_path / "old.db"
    store = SqliteStore(path)
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE cdr_calls DROP COLUMN hold_count")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    try:
        assert store.migrate() == []                       # added on open already
        store.put_call(CallRecord("c1", "inbound", "0901", "1900", 1.0, hold_seconds=12.5, hold_count=2))
        got = store.get_call("c1")
        assert got is not None and (got.hold_seconds, got.hold_count) == (12.5, 2)
    finally:
        store.close()
