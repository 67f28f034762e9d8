"""Call-scoped requests reach the worker that holds the call (api/forward.py): two real workers on one Redis,
a sipp caller on worker B bridged to agent 1001's phone; hold, monitoring and the recording's range fetch are
all asked of worker A, and proved as on one worker (tones: tests/tone_parties.py; the recording's bytes).
The owner believes only a signed, fresh, unseen assertion of who asked; one audit entry per action, naming
the worker that acted."""

from __future__ import annotations

import re
import signal
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace

import ports
import pytest
import sipp
from repo import REPO
from tone_parties import Party, bridged_call, legs, phone, wait_for
from worker_proc import METRICS_TOKEN, WorkerProc, admin_token, api_user, fetch, flush, new_worker, queue_flow

from callcenter.api.forward import ASSERTION_TTL, Claims, ForwardKeys, body_digest, sign
from callcenter.redisconn import connect_sync

pytestmark = [pytest.mark.sip, pytest.mark.timeout(300)]

A, B, C = 500.0, 1100.0, 1700.0        # caller, agent, supervisor
AGENT_PHONE = [0]
VOICEMAIL = """name: vm
languages: [vi]
default_language: vi
start: message
nodes:
  message: {type: record, variable: voicemail, max_seconds: 3, silence_seconds: 2, next: bye}
  bye: {type: hangup}
"""


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[tuple[WorkerProc, WorkerProc]]:
    flush(redis_server.url)
    AGENT_PHONE[0] = ports.port()
    rules = (REPO / "routing_rules.yaml").read_text()
    rules = rules.replace("sip:1001@127.0.0.1:5070", f"sip:1001@127.0.0.1:{AGENT_PHONE[0]}")
    rules = re.sub(r"ring_timeout: \d+", "ring_timeout: 6", rules)
    rules = re.sub(r"wrapup: \d+", "wrapup: 0", rules)
    started: list[WorkerProc] = []
    for name in ("wa", "wb"):
        tmp = tmp_path_factory.mktemp(f"forward-{name}")
        w = new_worker(tmp, redis_server.url, name)
        (tmp / "rules.yaml").write_text(rules)
        flows = tmp / "flows"
        flows.mkdir()
        (flows / "direct.yaml").write_text(queue_flow("direct", "sales", "moh"))
        (flows / "vm.yaml").write_text(VOICEMAIL)
        w.write_config(rules=tmp / "rules.yaml", ivr_scripts=flows, routes={"vm": "vm", "default": "direct"},
                       extra=f"monitor: {{ring_timeout: 10}}\n"
                             f"recording: {{dir: {tmp / 'rec'}, retention_days: 30, queues: {{sales: {{sample: 100}}}}}}\n")
        # a stopped owner's silence is a 504 after this (shorter than routing's dead_after: its calls live on)
        w.config.write_text(w.config.read_text().replace(f"metrics_token: {METRICS_TOKEN}}}",
                                                         f"metrics_token: {METRICS_TOKEN}, forward_timeout: 3s}}"))
        started.append(w)
    wa, wb = started
    # one CDR store, written by B's writer (A reads the recording's CDR from it, as it would a shared database)
    wa.config.write_text(wa.config.read_text().replace(f'store: "{wa.store_url}", writer: true',
                                                       f'store: "{wb.store_url}", writer: false'))
    wb.start()
    wa.start()
    yield wa, wb
    for w in (wa, wb):
        w.stop()


def audit(w: WorkerProc, action: str) -> list[dict]:
    status, body = w.http("GET", f"/admin/audit?action={urllib.parse.quote(action)}&limit=50")
    assert status == 200, body
    return list(body["entries"])


def forwarded(w: WorkerProc, route: str, result: str = "answered") -> float:
    _, _, text = fetch(w, "/metrics", METRICS_TOKEN)
    for line in text.decode().splitlines():
        if line.startswith("callcenter_http_forwarded_requests_total{") and f'route="{route}"' in line \
                and f'result="{result}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def assertion(w: WorkerProc, to: str, method: str, target: str, body: bytes = b"", **changes: object) -> str:
    """A forwarding header as a worker would sign it (with the deployment's key from Redis), claims changed."""
    r = connect_sync(w.redis_url)
    key = str(r.get(ForwardKeys("cc:").secret())).encode()
    r.close()
    claims = Claims(user="test-admin", roles=["admin"], agent=None, via="token", only_agent=None, client="127.0.0.1",
                    origin="wa", to=to, method=method, target=target, body=body_digest(body), at=time.time(),
                    nonce=f"n{time.monotonic_ns()}")
    return sign(key, replace(claims, **changes))   # type: ignore[arg-type]


def test_a_voice_message_saved_by_another_worker_is_fetched_through_it(
        workers: tuple[WorkerProc, WorkerProc]) -> None:
    wa, wb = workers
    caller = sipp.caller(wb.target, [("pause", 500), ("tone", 700.0, 3000), ("wait_bye", 30000)],
                         number="0901500077", service="vm")
    assert caller.wait(60) == 0, caller.errors() + wb.tail()
    call_id = wb.call_from("0901500077").call_id
    vm = wait_for(lambda: next((v for v in wa.http("GET", "/voicemails")[1]["voicemails"] if v["call_id"] == call_id),
                               None), "the message in the inbox")
    token = admin_token(wa.redis_url)
    status, _, whole = fetch(wb, f"/voicemails/{vm['id']}/audio", token)
    assert status == 200 and whole.startswith(b"RIFF")
    status, headers, part = fetch(wa, f"/voicemails/{vm['id']}/audio", token, {"range": "bytes=0-43"})
    assert status == 206 and part == whole[:44] and headers["content-range"] == f"bytes 0-43/{len(whole)}"
    assert fetch(wa, f"/voicemails/{vm['id']}/audio", token)[2] == whole
    assert forwarded(wa, "GET /voicemails/{id}/audio") == 2
    entries = [e for e in audit(wa, "/audio") if e["target"].get("id") == vm["id"]]
    assert sorted((e["target"]["worker"], e["target"].get("forwarded_by", "")) for e in entries) == \
        [("wb", ""), ("wb", "wa"), ("wb", "wa")], entries


def test_hold_monitor_and_recording_asked_of_another_worker(workers: tuple[WorkerProc, WorkerProc]) -> None:
    wa, wb = workers
    caller, agent, sup = Party(A), Party(B), Party(C)
    phones: list[sipp.Sipp] = []
    try:
        agent_sipp = phone(agent.port, port=AGENT_PHONE[0])
        sup_sipp = phone(sup.port)
        phones += [agent_sipp, sup_sipp]
        agent_token = api_user(wa.redis_url, "agent-1001", ["agent"], agent="1001")
        other_agent = api_user(wa.redis_url, "agent-1002", ["agent"], agent="1002")
        ana = api_user(wa.redis_url, "sup-ana", ["supervisor"])
        status, answer = wa.http("PATCH", "/admin/users/sup-ana",
                                 {"queues": ["sales"], "sip_uri": f"sip:sup-ana@127.0.0.1:{sup_sipp.port}"})
        assert status == 200, answer
        call_id = bridged_call(wb, caller, agent, agent_sipp, 60000, phones)     # the call is on worker B
        call = phones[-1]

        # hold and unhold, asked of A by the agent on the call: done on B, proved by tones
        status, answer = wa.http("POST", f"/calls/{call_id}/hold?agent=1001", {}, token=agent_token)
        assert status == 200 and answer == {"call_id": call_id, "held": True, "changed": True}, answer
        assert B not in caller.heard()                      # the caller hears music, not the agent
        status, answer = wa.http("POST", f"/calls/{call_id}/unhold?agent=1001", {}, token=agent_token)
        assert status == 200 and answer["changed"] is True, answer
        assert caller.heard() == {B} and agent.heard() == {A}
        # another agent's request is authorised on A for its own id, then refused on B: not its call
        status, answer = wa.http("POST", f"/calls/{call_id}/hold?agent=1002", {}, token=other_agent)
        assert status == 403 and answer["error"] == "not a call of yours", answer
        # ... and an agent naming someone else's id never leaves A
        status, answer = wa.http("POST", f"/calls/{call_id}/hold?agent=1001", {}, token=other_agent)
        assert status == 403, answer

        # a supervisor monitors from A: B rings the supervisor's phone and taps it into the call
        status, answer = wa.http("POST", f"/calls/{call_id}/monitor", {"mode": "listen"}, token=ana)
        assert status == 202 and answer["state"] == "ringing", answer
        wait_for(lambda: wa.http("GET", f"/calls/{call_id}/monitor", token=ana)[1].get("state") == "connected",
                 "the supervisor's answer")
        assert sup.heard() == {A, B}
        assert caller.heard() == {B} and agent.heard() == {A}
        assert wa.http("POST", f"/calls/{call_id}/monitor/mode", {"mode": "barge"}, token=ana)[0] == 200
        assert agent.heard() == {A, C} and caller.heard() == {B, C}
        status, answer = wa.http("DELETE", f"/calls/{call_id}/monitor", token=ana)
        assert status == 200, answer
        assert sup_sipp.wait(30) == 0, sup_sipp.errors()
        assert caller.heard() == {B} and agent.heard() == {A}

        # forged, unsigned, expired and replayed assertions are refused by the owner
        path = f"/calls/{call_id}/hold"
        for header in ("garbage", assertion(wb, "wb", "POST", path, b"{}") + "0",
                       assertion(wb, "wb", "POST", path, b"{}", at=time.time() - ASSERTION_TTL - 5),
                       assertion(wb, "wa", "POST", path, b"{}"),                      # meant for another worker
                       assertion(wb, "wb", "POST", f"/calls/{call_id}/unhold", b"{}")):  # for another request
            status, answer = wb.http("POST", path, {}, token=None, headers={"x-callcenter-forwarded": header})
            assert status == 403 and "forwarded request refused" in answer["error"], (header, answer)
        good = assertion(wb, "wb", "POST", path, b"{}")
        status, answer = wb.http("POST", path, {}, token=None, headers={"x-callcenter-forwarded": good})
        assert status == 200 and answer["held"] is True, answer
        status, answer = wb.http("POST", path, {}, token=None, headers={"x-callcenter-forwarded": good})
        assert status == 403 and "replayed" in answer["error"], answer
        assert wa.http("POST", f"/calls/{call_id}/unhold", {})[0] == 200        # the admin, through A
        # a forwarded request is never forwarded again: A answers one for itself (the call is not here)
        loop = assertion(wa, "wa", "POST", path, b"{}")
        status, answer = wa.http("POST", path, {}, token=None, headers={"x-callcenter-forwarded": loop})
        assert status == 404 and answer["error"] == "no such call on this worker", answer

        assert call.wait(120) == 0, call.errors()          # the caller hangs up at the end of its pause
        assert agent_sipp.wait(30) == 0, agent_sipp.errors()
        monitor = legs(wb, call_id, "monitor", 1)
        assert monitor[0].result == "listen,barge" and monitor[0].answer is not None
    finally:
        for p in phones:
            p.stop()
        for party in (caller, agent, sup):
            party.close()

    # one audit entry per action, written by the worker that acted and naming both workers
    holds = [e for e in audit(wa, "/hold") if e["target"].get("call_id") == call_id]
    # acted on B for A (the agent, the signed test request; 1002 refused there: not its call); 1002 naming 1001
    # refused on A; the loop answered by A itself
    assert sorted((e["status"], e["target"]["worker"], e["target"].get("forwarded_by", "")) for e in holds) == \
        [(200, "wb", "wa"), (200, "wb", "wa"), (403, "wa", ""), (403, "wb", "wa"), (404, "wa", "wa")], holds
    assert [e["user"] for e in audit(wa, "/monitor") if e["target"].get("call_id") == call_id].count("sup-ana") == 3
    assert forwarded(wa, "POST /calls/{call_id}/hold") == 2
    assert forwarded(wa, "GET /calls/{call_id}/monitor") >= 1

    # the recording is on B's disk: a range fetched from A streams through (206), the same bytes as B's
    cdr = wait_for(lambda: next((c for c in wb.calls(1) if c.call_id == call_id), None), "the call's CDR")
    assert cdr.worker_id == "wb" and cdr.recording, cdr
    token = api_user(wa.redis_url, "sup-rec", ["supervisor"])
    status, headers, whole = fetch(wb, f"/recordings/{call_id}", token)
    assert status == 200 and len(whole) > 44
    status, headers, part = fetch(wa, f"/recordings/{call_id}", token, {"range": "bytes=100-4195"})
    assert status == 206, part
    assert headers["content-range"] == f"bytes 100-4195/{len(whole)}" and headers["content-length"] == "4096"
    assert part == whole[100:4196]
    status, headers, body = fetch(wa, f"/recordings/{call_id}", token)
    assert status == 200 and body == whole and headers["content-length"] == str(len(whole))
    assert forwarded(wa, "GET /recordings/{call_id}") == 2

    # B does not answer (stopped for a moment): 504 after http.forward_timeout; then B dies: 410, not a 404
    assert wb.proc is not None
    wb.proc.send_signal(signal.SIGSTOP)
    try:
        status, _, body = fetch(wa, f"/recordings/{call_id}", token)
    finally:
        wb.proc.send_signal(signal.SIGCONT)
    assert status == 504 and b"did not answer in 3 s" in body, body
    assert forwarded(wa, "GET /recordings/{call_id}", "timeout") == 1
    assert wb.stop(signal.SIGKILL) is not None
    status, _, body = wait_for(lambda: (got := fetch(wa, f"/recordings/{call_id}", token))[0] == 410 and got,
                               "the owner's death", timeout=30)
    assert b"stopped" in body
    assert forwarded(wa, "GET /recordings/{call_id}", "gone") >= 1

