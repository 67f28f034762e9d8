"""Behind the SIP edge: Kamailio (deploy/kamailio/kamailio.cfg) in front of a worker, agents on baresip
softphones that REGISTER with digest auth, callers (sipp) that dial the edge, not the worker."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import ports
import pytest
import sipp
from edge_proc import (
    AGENT_PASSWORDS,
    NEEDS_EDGE,
    Edge,
    Softphone,
    edge_stack,
    register,
    sip_options,
)
from repo import REPO
from worker_proc import WorkerProc

from callcenter.cdr.writer import open_store
from callcenter.cli import main as cli_main

pytestmark = NEEDS_EDGE
PASSWORDS = AGENT_PASSWORDS


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[tuple[WorkerProc, Edge]]:
    with edge_stack(tmp_path_factory.mktemp("edge"), redis_server.url, "edge-w1") as both:
        yield both


def test_kamailio_cli_writes_ha1s_never_passwords(tmp_path: Path) -> None:
    creds = tmp_path / "agents.secrets.yaml"
    creds.write_text('"1001": correct-horse\n"1003": battery-staple\n')
    out = tmp_path / "edge"
    assert cli_main(["kamailio", "--rules", str(REPO / "routing_rules.yaml"), "--credentials", str(creds),
                     "--worker", "10.0.0.5:5060", "--worker", "sip:10.0.0.6:5060", "--out", str(out)]) == 0
    subscriber = (out / "subscriber").read_text()
    assert "correct-horse" not in subscriber and "battery-staple" not in subscriber
    assert "1001:callcenter::" in subscriber and (out / "subscriber").stat().st_mode & 0o077 == 0
    assert (out / "dispatcher.list").read_text().splitlines()[1:] == ["1 sip:10.0.0.5:5060", "1 sip:10.0.0.6:5060"]
    creds.write_text('"1001": short\n')
    assert cli_main(["kamailio", "--rules", str(REPO / "routing_rules.yaml"), "--credentials", str(creds),
                     "--worker", "10.0.0.5:5060", "--out", str(out)]) == 2
    creds.write_text('"9999": long-enough-password\n')
    assert cli_main(["kamailio", "--rules", str(REPO / "routing_rules.yaml"), "--credentials", str(creds),
                     "--worker", "10.0.0.5:5060", "--out", str(out)]) == 2


def test_wrong_password_is_refused_and_the_right_one_registers(stack, tmp_path: Path) -> None:
    _, edge = stack
    # from its own address: a phone that keeps answering challenges with a wrong password gets that
    # address banned (tests/test_edge_security.py), which must not silence the other tests' phones
    wrong = Softphone(tmp_path, "1002", "not-the-password", edge, ip="127.0.0.30").start()
    try:
        deadline = time.monotonic() + 15
        while "127.0.0.30" not in edge.kamcmd("htable.dump", "ipban") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "127.0.0.30" in edge.kamcmd("htable.dump", "ipban"), wrong.text()[-2000:] + edge.tail()
        assert "200 OK" not in wrong.text()
    finally:
        wrong.stop()
    assert "1002" not in edge.kamcmd("ul.dump")
    right = Softphone(tmp_path, "1002", PASSWORDS["1002"], edge).start()
    try:
        right.registered()
        assert re.search(r"AoR: 1002\b", edge.kamcmd("ul.dump"))   # in the edge's location table
    finally:
        right.stop()


def test_caller_through_the_edge_reaches_a_registered_agent(stack, tmp_path: Path) -> None:
    """sipp dials the edge; the edge's dispatcher hands the call to the worker; the worker's offer to
    sip:1001@edge is routed to the baresip phone registered as 1001, which answers; audio flows."""
    w, edge = stack
    phone = Softphone(tmp_path, "1001", PASSWORDS["1001"], edge).start()
    try:
        phone.registered()
        w.login("1001")
        steps = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "1"), ("pause", 12000), ("hangup",)]
        caller = sipp.caller(edge.address, steps, number="0903000001")
        assert sipp.wait_all(caller) == [0], caller.errors() + "\n" + edge.tail()
        phone.wait_for(r"Call established", timeout=5)
        phone.wait_for(r"audio=[1-9]\d*/[1-9]\d*", timeout=5)     # RTP both ways through the worker's bridge
    finally:
        phone.stop()
    store = open_store(w.store_url)
    try:
        cdr = w.call_from("0903000001")
        assert cdr.queue == "sales" and cdr.agent_id == "1001" and cdr.outcome == "answered", cdr
        assert cdr.talk_seconds and cdr.talk_seconds > 1.0
        legs = [leg for leg in store.legs(cdr.call_id) if leg.kind == "agent_offer"]
        assert legs and legs[-1].result == "answered"
    finally:
        store.close()


def test_an_agent_hanging_up_reaches_the_worker_through_the_edge(stack) -> None:
    """The agent's leg in the other direction: the phone's BYE (an in-dialog request from an untrusted
    address) is relayed to the worker of its dialog, which answers it."""
    w, edge = stack
    agent_port = ports.port()
    assert register(edge.port, "1001", PASSWORDS["1001"], f"sip:1001@127.0.0.1:{agent_port}") == ["SIP/2.0 200 OK"]
    agent = sipp.agent(agent_port, "answer_bye", ring_ms=300, talk_ms=1500, routed=True)
    try:
        w.login("1001")
        steps = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "1"), ("pause", 9000), ("hangup",)]
        caller = sipp.caller(edge.address, steps, number="0903000021")
        assert sipp.wait_all(agent, caller) == [0, 0], agent.errors() + caller.errors() + "\n" + edge.tail()
    finally:
        agent.stop()
    cdr = w.call_from("0903000021")
    assert cdr.agent_id == "1001" and cdr.outcome == "answered", cdr


def test_only_workers_may_ring_an_agent_and_unregistered_agents_fail_fast(stack, tmp_path: Path) -> None:
    w, edge = stack
    phone = Softphone(tmp_path, "1001", PASSWORDS["1001"], edge).start()
    try:
        phone.registered()
        # a stranger (not in the dispatcher list) dialing the agent's address is a caller like any other:
        # a worker answers (the same answer as for a number that is nobody's), the phone never rings
        intruder = sipp.caller(edge.address, [("pause", 300), ("hangup",)], service="1001", number="0903000099")
        assert sipp.wait_all(intruder) == [0], intruder.errors()
        assert w.call_from("0903000099").worker_id == "edge-w1"
        assert not re.search(r"(?i)incoming call", phone.text()), phone.text()[-2000:]
    finally:
        phone.stop()
    assert (sip_options(edge.port) or "").endswith("200 OK")


def test_a_dead_worker_is_skipped_by_the_edge(stack, tmp_path: Path) -> None:
    """Two workers in the dispatcher list, one of them down: every caller still reaches the live one
    (failover on timeout, then the OPTIONS pings mark the dead one inactive)."""
    w, _ = stack
    dead = f"127.0.0.1:{ports.port()}"          # nothing listens there
    edge = Edge(tmp_path, ports.port(), PASSWORDS, [dead, w.target]).start()
    try:
        for n in range(2):
            number = f"090300001{n}"
            steps = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "1"), ("pause", 1500), ("hangup",)]
            caller = sipp.caller(edge.address, steps, number=number)
            assert sipp.wait_all(caller) == [0], caller.errors() + "\n" + edge.tail()
            assert w.call_from(number).worker_id == "edge-w1"
    finally:
        edge.stop()

