"""Routing's view of the edge's registrations with phones of every kind (issue 15, must-have 3): a TLS desk phone
and a browser's WebSocket count as a phone like a LAN one. Real Kamailio with TLS and WSS, rtpengine, a worker,
baresip; its own module, so its worker is the only one reading an edge on that Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_proc import AGENT_PASSWORDS, NEEDS_ENCRYPTED_EDGE, Edge, Softphone, WsSip, encrypted_edge_stack
from phones_helpers import agent_info, phones_gauge, until
from worker_proc import WorkerProc

pytestmark = NEEDS_ENCRYPTED_EDGE
PASSWORDS = AGENT_PASSWORDS


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[tuple[WorkerProc, Edge]]:
    with encrypted_edge_stack(tmp_path_factory.mktemp("edge-phones-tls"), redis_server.url, "edge-phones-w2") as both:
        yield both


def test_phones_on_tls_and_websocket_count_too(secure, tmp_path: Path) -> None:
    """Agents mix phones: 1001 on a TLS desk phone (SRTP), 1002 on a browser's WebSocket; each, paused no_phone
    while it had none, is available once its phone registers; the browser's goes (its registration removed)
    and 1002 is paused no_phone again while 1001 stays available."""
    w, edge = secure
    w.login("1001", "1002")
    for agent in ("1001", "1002"):
        assert until(lambda a=agent: agent_info(w, a)["pause_reason"] == "no_phone"), agent_info(w, agent)
    phone = Softphone(tmp_path, "1001", PASSWORDS["1001"], edge, tls=True).start()
    ws = WsSip(edge)
    try:
        phone.registered()
        assert ws.register("1002", PASSWORDS["1002"]) == "SIP/2.0 200 OK"
        for agent in ("1001", "1002"):
            assert until(lambda a=agent: agent_info(w, a)["state"] == "available"), agent_info(w, agent)
        assert until(lambda: phones_gauge(w) == 2.0), phones_gauge(w)
        assert "error" not in edge.kamcmd("ul.rm", "location", "s:1002")     # (s: the AoR as a string)
        assert until(lambda: agent_info(w, "1002")["pause_reason"] == "no_phone"), agent_info(w, "1002")
        assert agent_info(w, "1001")["state"] == "available"
    finally:
        ws.close()
        phone.stop()
    w.logout("1001", "1002")
