"""The event stream of a real worker (GET /events, Server-Sent Events) while a sipp caller goes through a
queue to a sipp agent phone: each user sees what its role and queues allow, the agent on the call gets the
whole screen pop with the number in clear, others get it masked or not at all, and a page that reconnects
with Last-Event-ID gets exactly what it missed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import sipp
from sse_client import SseClient
from tone_parties import wait_for
from worker_proc import WorkerProc, api_user, flow_worker, queue_flow

from callcenter.auth.roles import ADMIN, AGENT, SUPERVISOR
from callcenter.events.bus import encode
from callcenter.events.keys import EventKeys
from callcenter.redisconn import connect_sync

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

CALLER = "0901234567"
AGENT_A, AGENT_B = "1003", "1001"       # support only; vip + sales
FLOW = queue_flow("evtest", "support", "moh", max_wait="120", announce="{position: false, wait_time: false}")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[WorkerProc]:
    tmp = tmp_path_factory.mktemp("events")
    w = flow_worker(tmp, redis_server.url, {"evtest": FLOW}, "evtest")
    # users checked again each second; a user may hold 3 streams at once
    w.config.write_text(w.config.read_text() + "events: {heartbeat: 1s, max_streams_per_user: 3}\n")
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


def _supervisor(w: WorkerProc, name: str, queue: str) -> str:
    token = api_user(w.redis_url, name, [SUPERVISOR])
    status, body = w.http("PATCH", f"/admin/users/{name}", {"queues": [queue]})
    assert status == 200, body
    return token


def test_each_user_sees_its_share_and_a_reconnect_resumes(worker: WorkerProc) -> None:
    w = worker
    status, _ = w.http("GET", "/events", token=None)
    assert status == 401
    sup_token = _supervisor(w, "sup-support", "support")
    a_token = api_user(w.redis_url, "agent-a", [AGENT], agent=AGENT_A)
    streams = {
        "a": SseClient(w.http_port, a_token),
        "b": SseClient(w.http_port, api_user(w.redis_url, "agent-b", [AGENT], agent=AGENT_B)),
        "sup_support": SseClient(w.http_port, sup_token),
        "sup_sales": SseClient(w.http_port, _supervisor(w, "sup-sales", "sales")),
        "admin": SseClient(w.http_port, api_user(w.redis_url, "ev-admin", [ADMIN])),
    }
    a, b, sup_x, sup_y, admin = streams.values()
    assert a.status == 200 and a.content_type.startswith("text/event-stream")
    try:
        w.login(AGENT_A)
        phone = sipp.agent(w.agents_port, mode="answer_bye", ring_ms=300, talk_ms=1500)
        caller = sipp.caller(w.target, [("wait_bye", 60_000)], number=CALLER)
        assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()

        ended = a.wait_for(lambda m: m.type == "call.ended")
        call_id = ended.data["call_id"]
        assert ended.data["agent"] == AGENT_A and ended.data["queue"] == "support"
        assert ended.data["cause"] == "agent_hangup" and ended.data["talk_s"] > 0 and "hold_s" in ended.data
        # the agent: its own state changes and the call offered to it, with the whole screen pop
        assert [t for t in a.types(call_id) if t.startswith("call.")] == ["call.offered", "call.answered",
                                                                          "call.ended"]
        offered = a.wait_for(lambda m: m.type == "call.offered")
        assert offered.data["caller"] == CALLER and offered.data["agent"] == AGENT_A
        assert offered.data["data"]["ivr_path"].startswith("evtest.") and offered.data["wait_s"] >= 0
        states = [m.data["state"] for m in a.messages if m.type == "agent.state" and m.data["agent"] == AGENT_A]
        assert states[:4] == ["available", "reserved", "on_call", "available"], states
        assert all(isinstance(m.data["ts"], float) and m.id for m in a.messages)

        # the supervisor of support: the queue join and the offer, the number masked; the agent's states
        sup_x.wait_for(lambda m: m.type == "call.ended" and m.data["call_id"] == call_id)
        assert "call.queued" in sup_x.types(call_id) and "call.offered" in sup_x.types(call_id)
        masked = sup_x.wait_for(lambda m: m.type == "call.offered").data["caller"]
        assert masked != CALLER and masked.endswith(CALLER[-3:])
        sup_x.wait_for(lambda m: m.type == "agent.state" and m.data["agent"] == AGENT_A)

        # the agent's wrap-up reaches its page and its supervisor's
        body = {"disposition": "complaint", "resolved": False, "notes": "call back tomorrow"}
        path = f"/calls/{call_id}/wrapup?agent={AGENT_A}"
        wait_for(lambda: w.http("POST", path, body, token=a_token)[0] == 200, "the wrap-up saved (the CDR stored)")
        for s in (a, sup_x):
            wrap = s.wait_for(lambda m: m.type == "call.wrapup")
            assert (wrap.data["call_id"], wrap.data["agent"], wrap.data["disposition"], wrap.data["resolved"],
                    wrap.data["notes"]) == (call_id, AGENT_A, "complaint", False, "call back tomorrow")

        # agent B and the sales supervisor: nothing of that call or of agent A. Their own agent's pause
        # comes after everything above on the same stream: once they have it, they had their chance.
        w.login(AGENT_B)
        status, _ = w.http("POST", f"/agents/{AGENT_B}/pause", {"reason": "break"})
        assert status == 200
        for s in (b, sup_y):
            s.wait_for(lambda m: m.type == "agent.state" and m.data["agent"] == AGENT_B
                       and m.data["state"] == "paused")
            assert s.types(call_id) == [], s.types(call_id)
            assert not [m for m in s.messages if m.data.get("agent") == AGENT_A]
            assert not [m for m in s.messages if m.data.get("caller") == CALLER]
        assert admin.wait_for(lambda m: m.type == "call.offered").data["caller"] == CALLER

        # a reconnect after the supervisor's first event gets the rest, in order, nothing twice
        seen = list(sup_x.messages)
        again = SseClient(w.http_port, sup_token, last_event_id=seen[0].id)
        try:
            again.wait_for(lambda m: m.id == seen[-1].id)
            got = [m.id for m in again.messages]
            assert got[:len(seen) - 1] == [m.id for m in seen[1:]]
            assert len(set(got)) == len(got)
        finally:
            again.close()
        status, body = w.http("GET", "/events", token=None, headers={"Last-Event-ID": "x"})
        assert status == 401
    finally:
        for s in streams.values():
            s.close()


def test_a_bad_last_event_id_is_refused(worker: WorkerProc) -> None:
    token = api_user(worker.redis_url, "agent-c", [AGENT], agent="1002")
    s = SseClient(worker.http_port, token, last_event_id="yesterday")
    assert s.status == 400


def test_a_page_that_stops_reading_is_dropped_not_buffered(worker: WorkerProc) -> None:
    """Events for a client that does not read pile up in the worker only up to a bound; then the stream is
    closed (the page reconnects with Last-Event-ID and catches up from Redis)."""
    token = api_user(worker.redis_url, "slow-admin", [ADMIN])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", worker.http_port))
    sock.sendall(f"GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    sent = 0
    r = connect_sync(worker.redis_url)
    try:
        head = b""
        while b": connected" not in head:      # the stream is open; from here on nothing is read
            head += sock.recv(1)
        pad = "x" * 1000
        pipe = r.pipeline(transaction=False)
        for i in range(20000):      # more than the kernel buffers on loopback hold (several MB)
            pipe.xadd(EventKeys("cc:").stream(), encode({"type": "queue.stats", "ts": time.time(), "queue": "q", "pad": pad,
                                              "n": i}))
            sent += 1100
        pipe.execute()
        got, deadline = 0, time.monotonic() + 60
        sock.settimeout(5)
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"stream neither closed nor sending: {got} bytes read") from None
            if not data:
                break
            got += len(data)
        else:
            raise AssertionError("the stream was never closed")
        assert got < sent / 2, (got, sent)
        assert any(e.get("event") == "event stream dropped: the client is not reading" for e in worker.logs())
    finally:
        sock.close()
        r.close()


def test_a_disabled_users_stream_is_closed_and_a_changed_supervisor_sees_its_new_queues(worker: WorkerProc) -> None:
    """A stream is one long request: its user is checked again every heartbeat (1 s here)."""
    w = worker
    sup = SseClient(w.http_port, _supervisor(w, "sup-moving", "sales"))
    gone = SseClient(w.http_port, api_user(w.redis_url, "agent-gone", [AGENT], agent="1004"))
    try:
        assert w.http("PATCH", "/admin/users/sup-moving", {"queues": ["support"]})[0] == 200
        assert w.http("PATCH", "/admin/users/agent-gone", {"disabled": True})[0] == 200
        with gone.cond:
            assert gone.cond.wait_for(lambda: gone.closed, 20), "the disabled user's stream is still open"
        # two heartbeats later the supervisor's stream shows support's agents, not sales' any more
        beats = sup.comments
        with sup.cond:
            assert sup.cond.wait_for(lambda: sup.comments >= beats + 2, 20)
            since = len(sup.messages)
        for agent in ("1001", "1003"):                    # sales and vip; support only
            w.logout(agent)
            w.login(agent)
        sup.wait_for(lambda m: m.type == "agent.state" and m.data["agent"] == "1003" and m.data["state"] == "available")
        assert not [m for m in sup.messages[since:] if m.data.get("agent") == "1001"]
    finally:
        sup.close()
        gone.close()


def test_a_user_holds_a_bounded_number_of_streams(worker: WorkerProc) -> None:
    token = api_user(worker.redis_url, "many-tabs", [SUPERVISOR])
    tabs = [SseClient(worker.http_port, token) for _ in range(3)]
    try:
        assert [t.status for t in tabs] == [200, 200, 200]
        assert SseClient(worker.http_port, token).status == 429
        tabs.pop().close()

        def reopened() -> SseClient | None:
            s = SseClient(worker.http_port, token)
            return s if s.status == 200 else None

        tabs.append(wait_for(reopened, "a stream once one closed"))
    finally:
        for t in tabs:
            t.close()
