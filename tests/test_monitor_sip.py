"""Supervisor monitoring over real SIP and RTP, proved by audio: the caller sends tone A, the agent tone B,
the supervisor tone C, and each party's received RTP is searched for the three tones (Goertzel,
tests/tones.py).

sipp does the signalling of all three phones; their SDP names a UDP socket of this test as the media
address, and that socket sends the party's tone (G.711 A-law, 20 ms packets) to the worker's RTP port it
hears from, and keeps every packet it receives. A mode is judged on packets received after the API has
answered the switch (counted in packets, not timed): the worker applies a mode before it answers.
"""

from __future__ import annotations

import math
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import ports
import pytest
import sipp
import tones
from repo import REPO
from worker_proc import METRICS_TOKEN, WorkerProc, api_user, flush, new_worker, queue_flow

from callcenter.cdr.writer import open_store

T = TypeVar("T")

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

A, B, C = 500.0, 1100.0, 1700.0        # caller, agent, supervisor
TONES = [A, B, C]
RATE, FRAME = tones.RATE, tones.FRAME
AGENT_PHONE = [0]                       # agent 1001's phone port, set by the worker fixture

DIRECT_FLOW = queue_flow("direct", "sales", "moh")


# -- audio --------------------------------------------------------------------------------------------

class Party:
    """One phone's media: sends its tone to whoever sends it RTP, keeps what it receives."""

    def __init__(self, hz: float) -> None:
        self.port = ports.block(2, media=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.005)
        self.received: list[bytes] = []       # A-law payloads in arrival order
        self.peer: tuple[str, int] | None = None
        # whole periods of the tone in whole packets, looped
        pcm = tones.tone_pcm(hz, FRAME * 1000 // math.gcd(int(hz), RATE), amplitude=0.25)
        self.payloads = [tones.encode(pcm[i:i + FRAME], tones.PCMA) for i in range(0, len(pcm), FRAME)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq, ts, n = 0, 0, 0
        next_send = time.monotonic()
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
                if len(data) > 12 and data[0] >> 6 == 2 and data[1] & 0x7F == 8:
                    self.received.append(data[12 + 4 * (data[0] & 0x0F):])
                    self.peer = addr
            except TimeoutError:
                pass
            now = time.monotonic()
            if self.peer is not None and now >= next_send:
                header = bytes([0x80, 8]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + b"\x00\x00\x51\x52"
                self.sock.sendto(header + self.payloads[n % len(self.payloads)], self.peer)
                seq, ts, n = (seq + 1) & 0xFFFF, (ts + FRAME) & 0xFFFFFFFF, n + 1
                next_send = max(next_send + 0.02, now - 0.1)

    def heard(self, skip: int = 15, count: int = 60, timeout: float = 30.0) -> set[float]:
        """The tones in the `count` packets that arrive after the next `skip` (jitter buffers drain)."""
        first = len(self.received) + skip
        deadline = time.monotonic() + timeout
        while len(self.received) < first + count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.received) - first + skip} RTP packets arrived")
            time.sleep(0.05)
        return tones.detect([x for p in self.received[first:first + count] for x in tones.decode(p, tones.PCMA)], TONES)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


# -- phones -------------------------------------------------------------------------------------------

HOLD, RESUME = "2353687639", "2353687640"   # the SDP versions of a phone's own re-INVITEs (sipp.agent)


def phone(media_port: int, mode: str = "answer", port: int | None = None) -> sipp.Sipp:
    """A phone (an agent's or a supervisor's) whose RTP is the test's `media_port`. mode: 'answer' (waits for
    the worker's BYE), 'busy' (486), 'hangup' (answers, hangs up itself 1.5 s later), 'reinvite' (answers,
    6 s later holds with a re-INVITE a=sendonly, 2 s later resumes, then waits for the BYE). Every message
    it sends or receives is kept (the offer's X-Callcenter-Call-Id)."""
    steps = [("pause", 6000), ("reinvite", "sendonly"), ("pause", 2000), ("reinvite", "sendrecv")] \
        if mode == "reinvite" else None
    sipp_mode = {"busy": "486", "hangup": "answer_bye"}.get(mode, "answer")
    return sipp.agent(port or ports.port(), sipp_mode, ring_ms=100, talk_ms=1500, timeout_s=180, codecs="8",
                      trace=True, steps=steps, media_port=media_port)


def bridged_call(w: WorkerProc, caller: Party, agent: Party, agent_phone: sipp.Sipp, pause_ms: int,
                 phones: list[sipp.Sipp]) -> str:
    """Agent 1001 logs in and a caller whose RTP is `caller` calls (its sipp added to `phones`), hanging up
    after pause_ms; once caller and agent hear each other and nobody else: the call id, which the agent's
    phone learns from the offer's X-Callcenter-Call-Id."""
    w.login("1001")
    phones.append(sipp.caller(w.target, [("pause", pause_ms), ("hangup",)], codecs="8", media_port=caller.port))
    found = _wait_for(lambda: re.search(r"X-Callcenter-Call-Id: (\w+)", agent_phone.messages()), "the agent's offer")
    assert caller.heard() == {B} and agent.heard() == {A}
    return found.group(1)


def connected(w: WorkerProc, call_id: str, token: str) -> None:
    _wait_for(lambda: w.http("GET", f"/calls/{call_id}/monitor", token=token)[1].get("state") == "connected",
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


def _wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def set_phone(w: WorkerProc, name: str, port: int) -> None:
    status, answer = w.http("PATCH", f"/admin/users/{name}", {"sip_uri": f"sip:{name}@127.0.0.1:{port}"})
    assert status == 200, answer


def legs(w: WorkerProc, call_id: str, kind: str, n: int, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    found: list = []
    while time.monotonic() < deadline:
        store = open_store(w.store_url)
        try:
            found = [leg for leg in store.legs(call_id) if leg.kind == kind]
        except Exception:  # noqa: BLE001 - the writer has not created the store yet
            found = []
        finally:
            store.close()
        if len(found) >= n:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{len(found)} {kind} legs of {call_id}:\n{w.tail()}")


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
        _wait_for(lambda: worker.http("GET", f"/calls/{call_id}/monitor", token=ana)[0] == 404, "the session's end")
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
        _wait_for(lambda: RESUME in agent_sipp.messages(), "the phone's resume")
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
