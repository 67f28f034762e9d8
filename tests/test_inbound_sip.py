"""The inbound path end to end, on real SIP and RTP: sipp callers dial the hotline, press keys
(RFC 2833 and SIP INFO), wait in queue, and sipp agent phones answer, ring out, or refuse.
Every scenario is checked against the CDR rows and queue events it leaves in the store."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import ports
import pytest
import sipp
from repo import REPO
from worker_proc import WorkerProc, flush, new_worker

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

AGENTS = ("1001", "1002", "1003", "1004")
PHONES: dict[str, int] = {}     # each agent's phone on a port of its own (given by the worker fixture)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> WorkerProc:
    tmp = tmp_path_factory.mktemp("inbound")
    flush(redis_server.url)   # the module owns the session's database: no other test's agents or calls
    w = new_worker(tmp, redis_server.url)
    # Each agent's phone on its own port so a scenario can make one answer and another refuse.
    first = ports.block(len(AGENTS))
    PHONES.update({agent: first + i for i, agent in enumerate(AGENTS)})
    rules = (REPO / "routing_rules.yaml").read_text()
    for agent in AGENTS:
        rules = rules.replace(f"sip:{agent}@127.0.0.1:5070", f"sip:{agent}@127.0.0.1:{agent_port(w, agent)}")
    rules = re.sub(r"ring_timeout: \d+", "ring_timeout: 4", rules)
    rules = re.sub(r"wrapup: \d+", "wrapup: 0", rules)
    # One miss pauses the agent (reason missed_offers), so a phone that rang out is not offered again.
    rules = re.sub(r"miss_limit: \d+", "miss_limit: 1", rules)
    (tmp / "rules.yaml").write_text(rules)
    w.write_config(rules=tmp / "rules.yaml")
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


@pytest.fixture(autouse=True)
def nobody_logged_in(worker: WorkerProc):
    worker.logout(*AGENTS)
    yield


def agent_port(w: WorkerProc, agent: str) -> int:
    return PHONES[agent]


def agent_state(w: WorkerProc, agent: str) -> dict:
    from callcenter.redisconn import connect
    from callcenter.routing.router import Router

    async def go() -> dict:
        r = connect(w.redis_url)
        info = await Router(r, "test").agent_info(agent)
        await r.aclose()
        return info or {}

    return asyncio.run(go())


def menu(choice: str) -> list[tuple]:
    """Language 1 (Vietnamese) during the welcome prompt, then the menu choice, then the 5 s
    "connecting you to an agent" prompt before the caller is queued."""
    return [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", choice), ("pause", 5200)]


def test_menu_choice_reaches_the_right_agent(worker: WorkerProc) -> None:
    """Caller presses 2 (support); the only support agent, 1003, answers; the caller hangs up."""
    phone = sipp.agent(agent_port(worker, "1003"), "answer")
    sales = sipp.agent(agent_port(worker, "1001"), "answer", timeout_s=30)
    worker.login("1001", "1003")
    caller = sipp.caller(worker.target, [*menu("2"), ("pause", 5000), ("hangup",)], number="0901000001")
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
    sales.stop()
    cdr = worker.call_from("0901000001")
    assert cdr.queue == "support" and cdr.agent_id == "1003"
    assert "hotline.menu>hotline.support>hotline.queue" in cdr.ivr_path
    assert "hotline.menu=2" in cdr.ivr_digits
    assert cdr.outcome == "answered" and cdr.hangup_side == "caller"
    assert cdr.talk_seconds and cdr.talk_seconds > 0.5
    assert cdr.wait_seconds is not None and cdr.wait_seconds < 5
    assert worker.events(cdr.call_id) == ["ENTERQUEUE", "OFFER", "CONNECT", "COMPLETECALLER"]


def test_sip_info_dtmf_works_like_rfc2833(worker: WorkerProc) -> None:
    phone = sipp.agent(agent_port(worker, "1001"), "answer")
    worker.login("1001")
    steps = [("pause", 600), ("info", "1"), ("pause", 800), ("info", "1"), ("pause", 9000), ("hangup",)]
    caller = sipp.caller(worker.target, steps, number="0901000002")
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
    cdr = worker.call_from("0901000002")
    assert cdr.queue == "sales" and cdr.agent_id == "1001"


def test_menu_timeout_retries_then_default_queue(worker: WorkerProc) -> None:
    """No key in the menu: three timeouts, then the default (support)."""
    phone = sipp.agent(agent_port(worker, "1004"), "answer")
    worker.login("1004")
    caller = sipp.caller(worker.target, [("pause", 600), ("dtmf", "1"), ("pause", 62000), ("hangup",)],
                         number="0901000003")
    assert sipp.wait_all(caller, phone, timeout=120) == [0, 0], caller.errors() + phone.errors()
    cdr = worker.call_from("0901000003")
    assert cdr.ivr_digits.count("hotline.menu=") == 3 and "hotline.menu=1" not in cdr.ivr_digits
    assert cdr.queue == "support" and cdr.agent_id == "1004"


def _offers(w: WorkerProc, call_id: str) -> list[tuple[str, str | None]]:
    from callcenter.cdr.writer import open_store

    store = open_store(w.store_url)
    try:
        return [(e.event, e.agent_id) for e in store.events(call_id)]
    finally:
        store.close()


def _second_agent_after(w: WorkerProc, first: sipp.Sipp) -> None:
    """Once the first agent's phone has done its part (rung out / refused), 1001 is auto-paused
    (miss_limit 1) and 1002 arrives: the call, back at its place in the queue, must go to 1002."""
    assert first.wait(60) == 0, first.errors()
    w.login("1002")
    state = agent_state(w, "1001")
    assert state["state"] == "paused" and state["pause_reason"] == "missed_offers", state


def test_agent_no_answer_then_another_agent(worker: WorkerProc) -> None:
    """1001 rings out (4 s ring timeout, then CANCEL); the call goes back to its place; 1002 gets it."""
    ringing = sipp.agent(agent_port(worker, "1001"), "noanswer")
    phone = sipp.agent(agent_port(worker, "1002"), "answer")
    worker.login("1001")
    caller = sipp.caller(worker.target, [*menu("1"), ("pause", 12000), ("hangup",)], number="0901000004")
    _second_agent_after(worker, ringing)
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
    cdr = worker.call_from("0901000004")
    assert cdr.agent_id == "1002" and cdr.outcome == "answered"
    events = _offers(worker, cdr.call_id)
    assert events == [("ENTERQUEUE", None), ("OFFER", "1001"), ("RINGNOANSWER", "1001"), ("OFFER", "1002"),
                      ("CONNECT", "1002"), ("COMPLETECALLER", "1002")], events


@pytest.mark.parametrize("code", ["486", "480"])
def test_agent_refuses_then_another_agent(worker: WorkerProc, code: str) -> None:
    refusing = sipp.agent(agent_port(worker, "1001"), code)
    phone = sipp.agent(agent_port(worker, "1002"), "answer")
    worker.login("1001")
    number = f"090100001{code[-1]}"
    caller = sipp.caller(worker.target, [*menu("1"), ("pause", 8000), ("hangup",)], number=number)
    _second_agent_after(worker, refusing)
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
    cdr = worker.call_from(number)
    assert cdr.agent_id == "1002"
    events = _offers(worker, cdr.call_id)
    assert events[:3] == [("ENTERQUEUE", None), ("OFFER", "1001"), ("RINGNOANSWER", "1001")], events
    assert events[-3:] == [("OFFER", "1002"), ("CONNECT", "1002"), ("COMPLETECALLER", "1002")], events


def test_caller_abandons_while_queued(worker: WorkerProc) -> None:
    """Nobody is logged in: the caller hears music, then hangs up."""
    caller = sipp.caller(worker.target, [*menu("1"), ("pause", 3000), ("hangup",)], number="0901000005")
    assert caller.wait(60) == 0, caller.errors()
    cdr = worker.call_from("0901000005")
    assert cdr.outcome == "abandoned" and cdr.agent_id is None and cdr.hangup_side == "caller"
    assert worker.events(cdr.call_id) == ["ENTERQUEUE", "ABANDON"]


def test_caller_abandons_while_agent_rings_cancels_the_agent(worker: WorkerProc) -> None:
    ringing = sipp.agent(agent_port(worker, "1003"), "noanswer")   # passes only if it gets a CANCEL
    worker.login("1003")
    caller = sipp.caller(worker.target, [*menu("2"), ("pause", 2500), ("hangup",)], number="0901000006")
    assert sipp.wait_all(caller, ringing) == [0, 0], caller.errors() + ringing.errors()
    cdr = worker.call_from("0901000006")
    assert cdr.outcome == "abandoned" and cdr.agent_id is None
    assert worker.events(cdr.call_id) == ["ENTERQUEUE", "OFFER", "ABANDON"]


def test_agent_hangs_up_first_then_survey(worker: WorkerProc) -> None:
    """Agent hangs up after 1 s; the caller stays for the CSAT survey and rates 5, 4, 1."""
    phone = sipp.agent(agent_port(worker, "1002"), "answer_bye", talk_ms=1000)
    worker.login("1002")
    steps = [*menu("1"), ("pause", 4500), ("dtmf", "5"), ("pause", 2500), ("dtmf", "4"), ("pause", 2500),
             ("dtmf", "1"), ("wait_bye", 15000)]
    caller = sipp.caller(worker.target, steps, number="0901000007")
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
    cdr = worker.call_from("0901000007")
    assert cdr.hangup_side == "agent" and cdr.agent_id == "1002"
    events = worker.events(cdr.call_id)
    assert events[:4] == ["ENTERQUEUE", "OFFER", "CONNECT", "COMPLETEAGENT"], events
    assert "SURVEY" in events[4:]      # the survey answers, on the same call
    assert "csat_survey" in cdr.ivr_path
    assert cdr.survey.get("csat") == 5


def test_invite_without_usable_codec_gets_488(worker: WorkerProc) -> None:
    caller = sipp.caller(worker.target, [], number="0901000008", codecs="18", expect_code=488)
    assert caller.wait(30) == 0, caller.errors()


def _udp_exchange(target: tuple[str, int], payload: bytes, wait: float = 2.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(wait)
        s.sendto(payload, target)
        try:
            return s.recv(65535)
        except TimeoutError:
            return b""


def test_bye_for_unknown_dialog_gets_481_and_garbage_is_ignored(worker: WorkerProc) -> None:
    target = ("127.0.0.1", worker.sip_port)
    bye = (b"BYE sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bKnodialog1\r\n"
           b"From: <sip:x@127.0.0.1>;tag=a\r\nTo: <sip:hotline@127.0.0.1>;tag=b\r\nCall-ID: nosuchdialog@x\r\n"
           b"CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    assert _udp_exchange(target, bye).startswith(b"SIP/2.0 481")
    for junk in (b"\x00\xff" * 300, b"INVITE\r\n\r\n", b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\nv=0",
                 "INVITE sip:hotline@127.0.0.1 SIP/2.0\r\nVia: ???\r\nFrom: ä\r\n\r\n".encode()):
        _udp_exchange(target, junk, wait=0.3)
    assert worker.proc is not None and worker.proc.poll() is None
    # ...and it still takes calls.
    caller = sipp.caller(worker.target, [("pause", 1500), ("hangup",)], number="0901000009")
    assert caller.wait(30) == 0, caller.errors()


def test_invalid_config_is_refused_naming_file_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("worker:\n  drain_seconds: 30\nsip:\n  port: 99999\n")
    res = subprocess.run([sys.executable, "-m", "callcenter", "worker", "--config", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert f"{bad}:4: sip.port: expected an integer 1-65535, got 99999" in res.stderr


def test_caller_over_tcp(worker: WorkerProc) -> None:
    """SIP over TCP (one connection per call) reaches an agent like UDP does."""
    phone = sipp.agent(agent_port(worker, "1003"), "answer")
    worker.login("1003")
    caller = sipp.caller(worker.target, [*menu("2"), ("pause", 3000), ("hangup",)], number="0901000020",
                         extra=["-t", "t1"])
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
    cdr = worker.call_from("0901000020")
    assert cdr.agent_id == "1003" and cdr.outcome == "answered"


def test_agent_session_over_http_lands_in_the_queue_log_and_reports(worker: WorkerProc) -> None:
    """An agent's day through the HTTP API: login, lunch, ready, logout; each step is a queue-log event
    (occupancy is computed from them), and the wallboard and the report are served over real HTTP."""
    assert worker.http("POST", "/agents/1004/login", {"ready": True})[0] == 200
    status, body = worker.http("POST", "/agents/1004/pause", {"reason": "lunch"})
    assert status == 200 and body["agent"]["state"] == "paused"
    assert worker.http("POST", "/agents/1004/pause", {"reason": "nap"})[0] == 400
    assert worker.http("POST", "/agents/1004/ready")[0] == 200
    assert worker.http("POST", "/agents/1004/logout")[0] == 200
    assert worker.http("POST", "/agents/9999/login", {})[0] == 404
    from callcenter.cdr.writer import open_store

    deadline = time.monotonic() + 10
    seen: list[str] = []
    while time.monotonic() < deadline:
        store = open_store(worker.store_url)
        seen = [e.event for e in store.events(agent_id="1004")
                if e.event in ("AGENTLOGIN", "PAUSE", "UNPAUSE", "AGENTLOGOFF")]
        store.close()
        if seen[-4:] == ["AGENTLOGIN", "PAUSE", "UNPAUSE", "AGENTLOGOFF"]:
            break
        time.sleep(0.2)
    assert seen[-4:] == ["AGENTLOGIN", "PAUSE", "UNPAUSE", "AGENTLOGOFF"], seen
    status, board = worker.http("GET", "/wallboard")
    assert status == 200 and {q["queue"] for q in board["queues"]} >= {"sales", "support"}
    status, report = worker.http("GET", "/reports/queue?interval=day&format=json")
    assert status == 200 and isinstance(report, (dict, list))
