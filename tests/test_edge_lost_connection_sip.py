"""A phone's connection to the encrypted edge dies (issue 15): its binding goes with it at once, not at its
expiry, so routing pauses the agent no_phone and a caller waiting is not offered to a phone that cannot ring;
the phone registers again on a new connection and the caller is offered to it. Real Kamailio
(deploy/kamailio/kamailio.cfg: route[LOST_CONNECTION]), rtpengine, a worker reading the registrations, and a
browser phone's signalling (SIP over a secure WebSocket, tests/edge_proc.WsSip); its own module, so its worker
is the only one reading an edge on that Redis."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import sipp
from edge_proc import AGENT_PASSWORDS, NEEDS_ENCRYPTED_EDGE, Edge, WsSip, encrypted_edge_stack
from phones_helpers import agent_info, until
from worker_proc import WorkerProc

from callcenter.cdr.writer import open_store
from callcenter.routing import phones

pytestmark = [NEEDS_ENCRYPTED_EDGE, pytest.mark.sip, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[tuple[WorkerProc, Edge]]:
    with encrypted_edge_stack(tmp_path_factory.mktemp("edge-lost"), redis_server.url, "edge-lost-w1") as both:
        yield both


def _bound(edge: Edge, agent: str) -> bool:
    """Whether the agent has a live binding at the edge, as routing reads it."""
    return agent in phones.registered(edge.rpc_url)


def _kill(ws: WsSip, edge: Edge, side: str) -> None:
    """Abort the phone's TCP connection with ss -K: the edge's socket (the edge sees it fail under it) or the
    phone's (the edge gets a reset), as a dropped network or a closed laptop does sooner or later."""
    phone_port = ws.sock.getsockname()[1]
    where = (["sport", "=", f":{edge.wss_port}", "dport", "=", f":{phone_port}"] if side == "edge" else
             ["sport", "=", f":{phone_port}", "dport", "=", f":{edge.wss_port}"])
    killed = subprocess.run(["ss", "-K", "-t", *where], capture_output=True, text=True, check=False)
    assert f":{phone_port}" in killed.stdout, killed.stdout + killed.stderr


def _queued(w: WorkerProc, queue: str) -> bool:
    st, board = w.http("GET", "/wallboard")
    assert st == 200, board
    return any(q["queue"] == queue and q["waiting"] > 0 for q in board["queues"])


@pytest.mark.parametrize("side", ["edge", "phone"])
def test_a_dropped_connection_takes_the_binding_and_the_caller_waits_for_the_phone_to_come_back(
        secure, side: str) -> None:
    """1002's browser phone registers over WSS (60 s registration) and 1002 is available; its connection is
    killed: the edge drops the binding at once, routing pauses 1002 no_phone, and a support caller (1002 the only
    agent logged in) waits without an offer; the phone registers again on a new connection: 1002 is available,
    the caller's offer rings the new connection, and every offer of the call was made after that."""
    w, edge = secure
    if "skip" in subprocess.run(["ss", "-K", "-t", "sport", "=", ":1"], capture_output=True, text=True).stderr:
        pytest.skip("ss -K needs CAP_NET_ADMIN and a kernel with SOCK_DESTROY")
    number = "0903000801" if side == "edge" else "0903000802"
    w.login("1002")
    ws = WsSip(edge)
    again: WsSip | None = None
    try:
        assert ws.register("1002", AGENT_PASSWORDS["1002"]) == "SIP/2.0 200 OK"
        assert until(lambda: agent_info(w, "1002")["state"] == "available"), agent_info(w, "1002")
        _kill(ws, edge, side)
        # gone now, not in a minute (nothing else removes it: the phone sent no REGISTER with expires 0)
        assert until(lambda: not _bound(edge, "1002"), 10), edge.kamcmd("ul.dump")
        assert "binding of 1002 removed" in edge.tail(200)
        assert until(lambda: agent_info(w, "1002")["pause_reason"] == "no_phone"), agent_info(w, "1002")

        caller = sipp.caller(edge.address, [("pause", 600), ("dtmf", "2"), ("pause", 800), ("dtmf", "2"),
                                            ("pause", 14000), ("hangup",)], number=number)
        assert until(lambda: _queued(w, "support"), 20), w.http("GET", "/wallboard")
        time.sleep(1.0)                 # the caller waits: an agent with a phone would be rung within this
        assert agent_info(w, "1002")["pause_reason"] == "no_phone"

        again = WsSip(edge)
        assert again.register("1002", AGENT_PASSWORDS["1002"]) == "SIP/2.0 200 OK"
        registered = time.time()
        invite = ""
        deadline = time.monotonic() + 15
        while not invite.startswith("INVITE ") and time.monotonic() < deadline:
            invite = again.recv(timeout=max(0.1, deadline - time.monotonic()))
        assert invite.startswith("INVITE ") and "UDP/TLS/RTP/SAVPF" in invite, invite
        again.reply(invite, "486 Busy Here")
        assert sipp.wait_all(caller, timeout=40) == [0], caller.errors() + edge.tail()
    finally:
        ws.close()
        if again is not None:
            again.close()
    cdr = w.call_from(number)
    store = open_store(w.store_url)
    try:
        offers = [leg for leg in store.legs(cdr.call_id) if leg.kind == "agent_offer"]
    finally:
        store.close()
    assert offers and all(leg.agent_id == "1002" and leg.start >= registered - 0.5 for leg in offers), \
        [(leg.agent_id, leg.start - registered, leg.result) for leg in offers]
    assert offers[0].result == "busy", [(leg.agent_id, leg.result) for leg in offers]
    w.logout("1002")
