"""A browser phone whose network goes away without a FIN or a reset (issue 15): nothing tells the edge, so its
WebSocket ping finds out (one unanswered ping closes the connection) and usrloc's sweep drops the binding, long
before the registration's expiry; routing pauses the agent no_phone. The silence is made with iptables (every
packet of the phone's connection dropped); the edge pings after 2 s of silence here (WS_KEEPALIVE, 30 s shipped).
Its own module: its edge pings that often, and its worker is the only one reading an edge on that Redis."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
from edge_proc import AGENT_PASSWORDS, NEEDS_ENCRYPTED_EDGE, Edge, WsSip, encrypted_edge_stack
from phones_helpers import agent_info, until
from worker_proc import WorkerProc

from callcenter.routing import phones

pytestmark = [NEEDS_ENCRYPTED_EDGE, pytest.mark.sip, pytest.mark.timeout(120),
              pytest.mark.skipif(shutil.which("iptables") is None, reason="iptables makes the silence")]


@pytest.fixture(scope="module")
def pinging(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[tuple[WorkerProc, Edge]]:
    with encrypted_edge_stack(tmp_path_factory.mktemp("edge-silent"), redis_server.url, "edge-silent-w1",
                              defines={"WS_KEEPALIVE": 2}) as both:
        yield both


def test_a_browser_gone_silent_is_found_by_the_ping_and_its_binding_dropped(pinging) -> None:
    """1002's browser phone registers for 10 minutes and is available; then every packet of its connection is
    dropped: the edge's ping goes unanswered, the edge closes the connection and the binding goes (well before
    its 10 minutes), 1002 is paused no_phone."""
    w, edge = pinging
    w.login("1002")
    ws = WsSip(edge)
    port = ws.sock.getsockname()[1]
    rules = [["-p", "tcp", "--sport", str(port), "-j", "DROP"], ["-p", "tcp", "--dport", str(port), "-j", "DROP"]]
    added: list[list[str]] = []
    try:
        assert ws.register("1002", AGENT_PASSWORDS["1002"], expires=600) == "SIP/2.0 200 OK"
        assert until(lambda: agent_info(w, "1002")["state"] == "available"), agent_info(w, "1002")
        for rule in rules:
            if subprocess.run(["iptables", "-I", "INPUT", *rule], capture_output=True).returncode != 0:
                pytest.skip("iptables: no permission to drop packets")
            added.append(rule)
        assert until(lambda: "1002" not in phones.registered(edge.rpc_url), 40), edge.kamcmd("ul.dump")
        assert until(lambda: agent_info(w, "1002")["pause_reason"] == "no_phone"), agent_info(w, "1002")
        assert "forcibly closing connection" in edge.tail(300)
    finally:
        for rule in added:
            subprocess.run(["iptables", "-D", "INPUT", *rule], check=True)
        ws.close()
    w.logout("1002")
