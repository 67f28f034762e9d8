"""Supervisor monitoring over real SIP and RTP, proved by audio: the caller sends tone A, the agent tone B,
the supervisor tone C, and each party's received RTP is searched for the three tones (Goertzel,
tests/tones.py).

sipp does the signalling of all three phones; their SDP names a UDP socket of this test as the media
address, and that socket sends the party's tone (G.711 A-law, 20 ms packets) to the worker's RTP port it
hears from, and keeps every packet it receives. A mode is judged on packets received after the API has
answered the switch (counted in packets, not timed): the worker applies a mode before it answers.
"""

from __future__ import annotations

import re

import ports
import pytest
import sipp
from repo import REPO
from tone_parties import HOLD, RESUME, Party, bridged_call, legs, phone, wait_for
from worker_proc import METRICS_TOKEN, WorkerProc, api_user, flush, new_worker, queue_flow

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

A, B, C = 500.0, 1100.0, 1700.0        # caller, agent, supervisor
AGENT_PHONE = [0]                       # agent 1001's phone port, set by the worker fixture

DIRECT_FLOW = queue_flow("direct", "sales", "moh")


def connected(w: WorkerProc, call_id: str, token: str) -> None:
    wait_for(lambda: w.http("GET", f"/calls/{call_id}/monitor", token=token)[1].get("state") == "connected",
             "the supervisor's answer")


# -- the worker ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> WorkerProc:
    tmp = tmp_path_factory.mktemp("monitor")
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url)
    rules = (REPO / "routing_rules.yaml").read_text()
    AGENT_PHONE[0] = ports.port()
    rules = rules.replace("sip:1001@127.0.0.1:5070", f"sip:1001@127.0.0.1:{AGENT_PHONE[0]}")
    rules = re.sub(r"ring_timeout: \d+", "ring_timeout: 6", rules)
    rules = re.sub(r"wrapup: \d+", "wrapup: 0", rules)
    (tmp / "rules.yaml").write_text(rules)
    flows = tmp / "flows"
    flows.mkdir()
    (flows / "direct.yaml").write_text(DIRECT_FLOW)
    w.write_config(rules=tmp / "rules.yaml", ivr_scripts=flows, routes={"default": "direct"},
                   extra="monitor: {ring_timeout: 10}")
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


def supervisor(w: WorkerProc, name: str, phone_port: int | None, queues: list[str]) -> str:
    token = api_user(w.redis_url, name, ["supervisor"])
    body: dict[str, object] = {"queues": queues}
    if phone_port is not None:
        body["sip_uri"] = f"sip:{name}@127.0.0.1:{phone_port}"
    status, answer = w.http("PATCH", f"/admin/users/{name}", body)
    assert status == 200, answer
    return token


def set_phone(w: WorkerProc, name: str, port: int) -> None:
    status, answer = w.http("PATCH", f"/admin/users/{name}", {"sip_uri": f"sip:{name}@127.0.0.1:{port}"})
    assert status == 200, answer


def test_listen_whisper_barge_by_tones_and_the_call_goes_on(worker: WorkerProc) -> None:
    caller, agent, sup = Party(A), Party(B), Party(C)
    phones: list[sipp.Sipp] = []
    try:
        agent_sipp = phone(agent.port, port=AGENT_PHONE[0])
        sup_sipp = phone(sup.port)
        busy_sipp = phone(ports.block(2, media=True), "busy")
        phones += [agent_sipp, sup_sipp, busy_sipp]
        ana = supervisor(worker, "sup-ana", sup_sipp.port, ["sales"])
        bob = supervisor(worker, "sup-bob", None, ["support"])
        cy = supervisor(worker, "sup-cy", busy_sipp.port, [])
        call_id = bridged_call(worker, caller, agent, agent_sipp, 90000, phones)
        call = phones[-1]

        # a supervisor of other queues may not listen in
        status, answer = worker.http("POST", f"/calls/{call_id}/monitor", {"mode": "listen"}, token=bob)
        assert status == 403, answer

        status, answer = worker.http("POST", f"/calls/{call_id}/monitor", {"mode": "listen"}, token=ana)
        assert status == 202 and answer["state"] == "ringing", answer
        connected(worker, call_id, ana)
        assert sup.heard() == {A, B}
        assert caller.heard() == {B} and agent.heard() == {A}       # nobody hears the supervisor

        assert worker.http("POST", f"/calls/{call_id}/monitor/mode", {"mode": "whisper"}, token=ana)[0] == 200
        assert agent.heard() == {A, C}
        assert caller.heard() == {B}
        assert sup.heard() == {A, B}

        assert worker.http("POST", f"/calls/{call_id}/monitor/mode", {"mode": "barge"}, token=ana)[0] == 200
        assert agent.heard() == {A, C} and caller.heard() == {B, C}

        assert worker.http("POST", f"/calls/{call_id}/monitor/mode", {"mode": "listen"}, token=ana)[0] == 200
        assert caller.heard() == {B} and agent.heard() == {A}

        status, answer = worker.http("DELETE", f"/calls/{call_id}/monitor", token=ana)
        assert status == 200, answer
        assert sup_sipp.wait(30) == 0, sup_sipp.errors()           # its phone got the BYE
        assert caller.heard() == {B} and agent.heard() == {A}       # the call goes on as it was
        monitor = legs(worker, call_id, "monitor", 1)
        assert monitor[0].result == "listen,whisper,barge,listen" and monitor[0].answer is not None

        # a supervisor whose phone is busy: the session ends, the call is not disturbed
        status, answer = worker.http("POST", f"/calls/{call_id}/monitor", {"mode": "barge"}, token=cy)
        assert status == 202, answer
        busy = {leg.result for leg in legs(worker, call_id, "monitor", 2)}
        assert busy == {"listen,whisper,barge,listen", "busy"}
        assert worker.http("GET", f"/calls/{call_id}/monitor", token=cy)[0] == 404
        assert caller.heard() == {B} and agent.heard() == {A}

        # the supervisor hangs up: the session ends, the call goes on
        leaving = phone(sup.port, "hangup")
        phones.append(leaving)
        set_phone(worker, "sup-ana", leaving.port)
        assert worker.http("POST", f"/calls/{call_id}/monitor", {"mode": "whisper"}, token=ana)[0] == 202
        assert leaving.wait(60) == 0, leaving.errors()          # answered, then hung up
        wait_for(lambda: worker.http("GET", f"/calls/{call_id}/monitor", token=ana)[0] == 404, "the session's end")
        assert caller.heard() == {B} and agent.heard() == {A}
        assert len(legs(worker, call_id, "monitor", 3)) == 3

        # the call ends while a supervisor listens: the supervisor's phone is hung up too
        last = phone(sup.port)
        phones.append(last)
        set_phone(worker, "sup-ana", last.port)
        assert worker.http("POST", f"/calls/{call_id}/monitor", {"mode": "listen"}, token=ana)[0] == 202
        connected(worker, call_id, ana)
        assert sup.heard() == {A, B}
        assert call.wait(150) == 0, call.errors()               # the caller hangs up at the end of its pause
        assert last.wait(30) == 0, last.errors()                # and the supervisor's phone got a BYE
        assert agent_sipp.wait(30) == 0, agent_sipp.errors()
        assert busy_sipp.wait(30) == 0, busy_sipp.errors()
        results = sorted(leg.result for leg in legs(worker, call_id, "monitor", 4))
        assert results == ["busy", "listen", "listen,whisper,barge,listen", "whisper"], results
        status, text = worker.http("GET", "/metrics", token=METRICS_TOKEN)
        assert status == 200
        assert 'callcenter_monitor_sessions_total{result="answered"} 3.0' in text
        assert 'callcenter_monitor_sessions_total{result="busy"} 1.0' in text

        status, audit = worker.http("GET", "/admin/audit?action=monitor&limit=100")
        assert status == 200, audit
        mine = [(e["user"], e["action"], e["target"].get("mode"), e["target"].get("result"))
                for e in reversed(audit["entries"])
                if e["action"].startswith("monitor ") and e["target"].get("call_id") == call_id]
        assert mine == [("sup-ana", "monitor start", "listen", None), ("sup-ana", "monitor mode", "whisper", None),
                        ("sup-ana", "monitor mode", "barge", None), ("sup-ana", "monitor mode", "listen", None),
                        ("sup-ana", "monitor end", "listen", "stopped"),
                        ("sup-cy", "monitor start", "barge", None), ("sup-cy", "monitor end", "barge", "busy"),
                        ("sup-ana", "monitor start", "whisper", None),
                        ("sup-ana", "monitor end", "whisper", "supervisor_hangup"),
                        ("sup-ana", "monitor start", "listen", None),
                        ("sup-ana", "monitor end", "listen", "call_ended")], mine
        requests = [e["action"] for e in audit["entries"] if e["user"] == "sup-ana"
                    and e["action"].startswith(("POST /calls", "DELETE /calls"))]
        assert len(requests) == 7, requests
    finally:
        for p in phones:
            p.stop()
        for party in (caller, agent, sup):
            party.close()


def test_a_phone_re_invite_keeps_the_supervisor_s_taps(worker: WorkerProc) -> None:
    """The agent's phone holds and resumes (re-INVITEs: pjsua may give its stream a new bridge port)
    while a supervisor whispers: afterwards the supervisor still hears both, the agent still hears it."""
    caller, agent, sup = Party(A), Party(B), Party(C)
    phones: list[sipp.Sipp] = []
    try:
        agent_sipp = phone(agent.port, "reinvite", port=AGENT_PHONE[0])
        sup_sipp = phone(sup.port)
        phones += [agent_sipp, sup_sipp]
        ana = supervisor(worker, "sup-ana", sup_sipp.port, [])
        call_id = bridged_call(worker, caller, agent, agent_sipp, 40000, phones)
        call = phones[-1]
        assert worker.http("POST", f"/calls/{call_id}/monitor", {"mode": "whisper"}, token=ana)[0] == 202
        connected(worker, call_id, ana)
        assert HOLD not in agent_sipp.messages(), "the phone held before the supervisor joined"
        assert agent.heard() == {A, C}
        wait_for(lambda: RESUME in agent_sipp.messages(), "the phone's resume")
        assert sup.heard() == {A, B}
        assert agent.heard() == {A, C} and caller.heard() == {B}
        assert worker.http("DELETE", f"/calls/{call_id}/monitor", token=ana)[0] == 200
        assert call.wait(120) == 0, call.errors()
        assert agent_sipp.wait(30) == 0 and sup_sipp.wait(30) == 0, agent_sipp.errors() + sup_sipp.errors()
    finally:
        for p in phones:
            p.stop()
        for party in (caller, agent, sup):
            party.close()
