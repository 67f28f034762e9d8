"""Routing knows which agents have a phone registered at the SIP edge (issue 15, must-have 3): a worker reads
Kamailio's location table over its admin-only JSON-RPC port (routing/phones.py), so an agent with no phone is
never offered a call (no INVITE for it reaches the edge), and one whose phone registers is offered the next call
at once. Real Kamailio (deploy/kamailio/kamailio.cfg), a real worker, baresip as the agent's phone, sipp callers."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sipp
from edge_proc import (
    AGENT_PASSWORDS,
    NEEDS_EDGE,
    Edge,
    Softphone,
    edge_stack,
    kamailio_cli,
)
from phones_helpers import agent_info, agent_states, phones_gauge, until
from worker_proc import WorkerProc

from callcenter.cdr.writer import open_store
from callcenter.cli import main as cli_main

pytestmark = NEEDS_EDGE
PASSWORDS = AGENT_PASSWORDS


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[tuple[WorkerProc, Edge]]:
    with edge_stack(tmp_path_factory.mktemp("edge-phones"), redis_server.url, "edge-phones-w1", rpc=True,
                    extra='edge: {registrations: ["{rpc_url}"], poll_every: 0.3s}\n') as both:
        yield both


def test_the_edge_serves_only_the_registrations_to_loopback(stack) -> None:
    """The RPC port answers ul.dump; any other RPC method is refused (403)."""
    _, edge = stack
    body = json.dumps({"jsonrpc": "2.0", "method": "ul.dump", "id": 1}).encode()
    with urllib.request.urlopen(urllib.request.Request(edge.rpc_url, body), timeout=5) as resp:
        assert "Domains" in json.loads(resp.read())["result"]
    other = json.dumps({"jsonrpc": "2.0", "method": "htable.delete", "params": ["ipban", "x"], "id": 1}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(edge.rpc_url, other), timeout=5)
    assert refused.value.code == 403


def test_no_phone_no_offer_a_phone_registers_and_gets_the_next_call_then_unregisters(stack, tmp_path: Path) -> None:
    """1001 and 1002 log in ready with no phone: both are paused no_phone by the edge's registrations (no
    offer was needed to learn it). 1001's phone registers: 1001 is available without pressing ready or waiting
    out the pause, and a sales caller (a queue of both) is offered to 1001 only: 1002 never gets an offer. The
    phone goes: 1001 is paused no_phone again, on the wallboard API and as an agent.state event, and the next
    caller is offered to nobody."""
    w, edge = stack
    w.login("1001", "1002")
    for agent in ("1001", "1002"):
        info = until(lambda a=agent: (x := agent_info(w, a))["pause_reason"] == "no_phone" and x)
        assert info and (info["state"], info["misses"]) == ("paused", 0), agent_info(w, agent)
    assert until(lambda: phones_gauge(w) == 0.0), phones_gauge(w)

    phone = Softphone(tmp_path, "1001", PASSWORDS["1001"], edge).start()
    try:
        phone.registered()
        assert until(lambda: agent_info(w, "1001")["state"] == "available"), agent_info(w, "1001")
        assert until(lambda: phones_gauge(w) == 1.0), phones_gauge(w)
        steps = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "1"), ("pause", 6000), ("hangup",)]
        caller = sipp.caller(edge.address, steps, number="0903000701")
        assert sipp.wait_all(caller, timeout=40) == [0], caller.errors() + "\n" + edge.tail()
    finally:
        phone.stop()
    cdr = w.call_from("0903000701")
    assert cdr.queue == "sales" and cdr.agent_id == "1001" and cdr.outcome == "answered", cdr
    store = open_store(w.store_url)
    try:
        offers = [(leg.agent_id, leg.result) for leg in store.legs(cdr.call_id) if leg.kind == "agent_offer"]
    finally:
        store.close()
    assert offers == [("1001", "answered")], offers
    assert "reserved" not in [s for s, _ in agent_states(w, "1002")], agent_states(w, "1002")
    assert agent_info(w, "1002")["pause_reason"] == "no_phone"

    # the phone is gone (unregistered on stop, or its registration removed as on expiry)
    assert "error" not in edge.kamcmd("ul.rm", "location", "s:1001")     # (s: the AoR as a string)
    assert until(lambda: agent_info(w, "1001")["pause_reason"] == "no_phone"), agent_info(w, "1001")
    assert agent_states(w, "1001")[-1] == ("paused", "no_phone"), agent_states(w, "1001")
    assert until(lambda: phones_gauge(w) == 0.0), phones_gauge(w)
    # no agent of the queue has a phone now: no offer is made to the next caller (nothing to ring)
    steps = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "1"), ("pause", 3000), ("hangup",)]
    caller = sipp.caller(edge.address, steps, number="0903000702")
    assert sipp.wait_all(caller, timeout=30) == [0], caller.errors() + "\n" + edge.tail()
    cdr = w.call_from("0903000702")
    store = open_store(w.store_url)
    try:
        offers = [(leg.agent_id, leg.result) for leg in store.legs(cdr.call_id) if leg.kind == "agent_offer"]
    finally:
        store.close()
    # (with every agent of the queue paused none staffs it: the queue's on_empty takes the caller, as for any pause)
    assert offers == [] and cdr.agent_id is None, (offers, cdr)
    w.logout("1001", "1002")


def test_kamailio_cli_writes_the_rpc_port(tmp_path: Path) -> None:
    base, out = kamailio_cli(tmp_path)
    assert cli_main(base) == 0
    assert "RPC_PORT" not in (out / "rpc.cfg").read_text()             # no port: the workers do not ask
    assert cli_main([*base, "--rpc", "10.0.0.2:5062"]) == 0
    assert (out / "rpc.cfg").read_text().endswith("#!define RPC_PORT 5062\nlisten=tcp:10.0.0.2:5062\n")
    assert cli_main([*base, "--rpc", "sip:10.0.0.2:5062"]) == 2
    assert cli_main([*base, "--rpc", "10.0.0.2"]) == 2

