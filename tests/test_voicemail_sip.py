"""The voicemail inbox over real SIP: a sipp caller waits in the sales queue with nobody logged in, the
queue gives up, the flow's record node takes the message (the caller sends a 700 Hz tone), and the inbox
lists it; its audio, fetched over HTTP (whole and by range), holds that tone; a supervisor marks it
handled; agents and strangers are refused, a supervisor sees only its own queues, every audio fetch is in
the audit log. The message then becomes a callback task for the support queue: when agent 1003 logs in,
its phone rings and the trunk (a sipp UAS) gets the INVITE for the caller's number in E.164."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import time
import wave
from collections.abc import Callable
from typing import Any

import ports
import pytest
import sipp
import tones
from repo import REPO
from worker_proc import WorkerProc, admin_token, api_user, fetch, flush, new_worker

from callcenter.auth import Auth
from callcenter.calls.voicemail import VoicemailIndex
from callcenter.redisconn import connect

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

TONE_HZ = 700.0
FLOW = """name: vm
languages: [vi]
default_language: vi
start: queue
nodes:
  queue:
    type: queue
    queue: sales
    max_wait: 2
    announce: {position: false, wait_time: false}
    on_failure: voicemail
  voicemail:
    type: record
    beep: [system/beep]
    variable: voicemail
    max_seconds: 4
    silence_seconds: 2
    next: bye
  bye:
    type: hangup
"""


@pytest.fixture(scope="module")
def trunk_port() -> int:
    return ports.port()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server: Any, trunk_port: int) -> Any:
    tmp = tmp_path_factory.mktemp("voicemail")
    ivr = tmp / "ivr"
    shutil.copytree(REPO / "ivr_scripts", ivr)
    (ivr / "vm.yaml").write_text(FLOW)
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url)
    w.write_config(ivr_scripts=ivr, routes={"vm": "vm", "default": "hotline"}, trunk=f"127.0.0.1:{trunk_port}")
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


def supervisor(w: WorkerProc, name: str, queues: list[str]) -> str:
    token = api_user(w.redis_url, name, ["supervisor"])

    async def go() -> None:
        r = connect(w.redis_url)
        await Auth.connect(r, "cc:").users.set_monitoring(name, queues=queues)
        await r.aclose()

    asyncio.run(go())
    return token


def pcm(data: bytes) -> list[int]:
    with wave.open(io.BytesIO(data)) as f:
        assert f.getframerate() == 8000 and f.getsampwidth() == 2
        frames = f.readframes(f.getnframes())
    return [int.from_bytes(frames[i:i + 2], "little", signed=True) for i in range(0, len(frames), 2)]


def test_a_message_left_in_a_queue_without_agents_is_in_the_inbox(worker: WorkerProc, trunk_port: int) -> None:
    worker.logout("1001", "1002", "1003", "1004")
    caller = sipp.caller(worker.target, [("pause", 1500), ("tone", TONE_HZ, 8000),
                                         ("wait_bye", 30000)], number="0901500001", service="vm")
    assert caller.wait(60) == 0, caller.errors() + worker.tail()
    cdr = worker.call_from("0901500001")
    assert cdr.queue == "sales" and cdr.outcome == "voicemail", (cdr.queue, cdr.outcome)

    status, body = worker.http("GET", "/voicemails?queue=sales&state=new")
    assert status == 200, body
    [vm] = [v for v in body["voicemails"] if v["call_id"] == cdr.call_id]
    assert vm["queue"] == "sales" and vm["state"] == "new" and vm["caller"] == "0901500001"
    assert vm["seconds"] >= 3.5 and vm["path"].endswith(f"{cdr.call_id}-vm-voicemail.wav")
    status, one = worker.http("GET", f"/voicemails/{vm['id']}")
    assert status == 200 and one == vm

    # the audio: the caller's tone is in it; ranges served like recordings; each fetch audited
    admin = admin_token(worker.redis_url)
    since = time.time() - 1
    status, headers, data = fetch(worker, f"/voicemails/{vm['id']}/audio", admin)
    assert status == 200 and headers["accept-ranges"] == "bytes" and data.startswith(b"RIFF")
    assert tones.detect(pcm(data), [TONE_HZ, 1300.0]) == {TONE_HZ}
    status, headers, part = fetch(worker, f"/voicemails/{vm['id']}/audio", admin, {"range": "bytes=0-43"})
    assert status == 206 and part == data[:44] and headers["content-range"] == f"bytes 0-43/{len(data)}"

    # roles: no credentials 401, an agent 403, a supervisor of other queues does not see it
    assert fetch(worker, f"/voicemails/{vm['id']}/audio", "nonsense")[0] == 401
    agent = api_user(worker.redis_url, "vm-agent", ["agent"], agent="1001")
    assert fetch(worker, f"/voicemails/{vm['id']}/audio", agent)[0] == 403
    assert worker.http("GET", "/voicemails", token=agent)[0] == 403
    other = supervisor(worker, "vm-sup-support", ["support"])
    assert fetch(worker, f"/voicemails/{vm['id']}/audio", other)[0] == 404
    status, body = worker.http("GET", "/voicemails", token=other)
    assert status == 200 and body["voicemails"] == []
    mine = supervisor(worker, "vm-sup-sales", ["sales"])
    status, body = worker.http("GET", "/voicemails", token=mine)
    assert status == 200 and [v["id"] for v in body["voicemails"]] == [vm["id"]]
    assert fetch(worker, f"/voicemails/{vm['id']}/audio", mine)[0] == 200
    assert worker.http("GET", "/voicemails?state=bogus")[0] == 400
    assert worker.http("GET", "/voicemails?limit=100000")[0] == 400

    # handled, by whom; then it lists as handled, not new
    assert worker.http("POST", f"/voicemails/{vm['id']}/handled", {}, token=other)[0] == 404
    status, done = worker.http("POST", f"/voicemails/{vm['id']}/handled", {}, token=mine)
    assert status == 200 and done["state"] == "handled" and done["handled_by"] == "vm-sup-sales", done
    assert worker.http("GET", "/voicemails?state=new")[1]["voicemails"] == []
    assert [v["id"] for v in worker.http("GET", "/voicemails?state=handled")[1]["voicemails"]] == [vm["id"]]

    status, body = worker.http("GET", f"/admin/audit?action=GET%20/voicemails/%7Bid%7D/audio&since={since}")
    assert status == 200, body
    fetched = [(e["user"], e["status"]) for e in body["entries"]]
    assert ("test-admin", 200) in fetched and ("test-admin", 206) in fetched and ("vm-sup-sales", 200) in fetched
    assert ("vm-agent", 403) in fetched, fetched
    status, body = worker.http("GET", f"/admin/audit?action=POST%20/voicemails/%7Bid%7D/handled&since={since}")
    assert ("vm-sup-sales", 200) in [(e["user"], e["status"]) for e in body["entries"]], body
    # the caller's full number is in no log line
    assert "0901500001" not in worker.log.read_text()

    # a callback task for the support queue: only to a queue the supervisor sees, once per message
    assert worker.http("POST", f"/voicemails/{vm['id']}/callback", {"queue": "support"}, token=mine)[0] == 403
    assert worker.http("POST", f"/voicemails/{vm['id']}/callback", {"queue": "support"}, token=agent)[0] == 403
    assert worker.http("POST", f"/voicemails/{vm['id']}/callback", {"queue": "nosuch"})[0] == 404
    assert worker.http("POST", f"/voicemails/{vm['id']}/callback", {"queue": 5})[0] == 400
    status, cb = worker.http("POST", f"/voicemails/{vm['id']}/callback", {"queue": "support"})
    assert status == 202 and cb["callback_id"] == f"vmcb-{vm['id']}" and cb["callback_queue"] == "support", cb
    assert cb["state"] == "handled" and cb["handled_by"] == "vm-sup-sales"      # handled before: kept
    assert worker.http("POST", f"/voicemails/{vm['id']}/callback", {"queue": "support"})[0] == 409
    assert callback_rings(worker, trunk_port) == f"sip:+84901500001@127.0.0.1:{trunk_port}"
    assert "CALLBACK" in worker.events(cb["callback_id"]) or wait_event(worker, cb["callback_id"], "CALLBACK")


def callback_rings(w: WorkerProc, trunk_port: int, start: Callable[[], None] | None = None) -> str:
    """Agent 1003 logs in (after `start`, if given, made the callback) and a callback rings its phone, then the
    trunk: the request-URI of the trunk's INVITE."""
    far_end = sipp.agent(trunk_port, "answer", ring_ms=300, talk_ms=0, timeout_s=60, trace=True)
    phone = sipp.agent(w.agents_port, "answer_bye", talk_ms=2000, timeout_s=60)
    try:
        w.login("1003")
        if start is not None:
            start()
        assert sipp.wait_all(phone, far_end, timeout=60) == [0, 0], phone.errors() + far_end.errors() + w.tail()
    finally:
        far_end.stop()
        phone.stop()
        w.logout("1003")
    invite = re.search(r"^INVITE (\S+) SIP/2.0", far_end.messages(), re.M)
    assert invite, far_end.messages()[:2000]
    return invite.group(1)


def saved_message(w: WorkerProc, call_id: str, number: str) -> str:
    """A message indexed as the record node would (its WAV is nowhere): its id."""
    async def save() -> str:
        r = connect(w.redis_url)
        vm = await VoicemailIndex(r).saved(call_id, "sales", number, f"/nowhere/{call_id}.wav", 3.0)
        await r.aclose()
        return vm.id

    return asyncio.run(save())


def wait_event(w: WorkerProc, call_id: str, event: str) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if event in w.events(call_id):
            return True
        time.sleep(0.3)
    raise AssertionError(f"no {event} for {call_id}: {w.events(call_id)}")


def test_a_number_the_dial_policy_refuses_is_never_called_back(worker: WorkerProc) -> None:
    """A message from a premium number (a spoofed From): the callback is refused (422) and nothing queued."""
    vm_id = saved_message(worker, "c-premium", "19001234")
    status, body = worker.http("POST", f"/voicemails/{vm_id}/callback", {"queue": "support"})
    assert status == 422 and "premium" in str(body), body
    status, one = worker.http("GET", f"/voicemails/{vm_id}")
    assert status == 200 and one["callback_id"] == "" and one["state"] == "new", one
    assert "CALLBACK_REFUSED" in worker.events(f"vmcb-{vm_id}") or wait_event(worker, f"vmcb-{vm_id}",
                                                                                "CALLBACK_REFUSED")
    assert worker.http("GET", f"/voicemails/{vm_id}/audio")[0] == 404     # a path outside the recordings
    log = worker.log.read_text()
    assert "0901500001" not in log and "84901500001" not in log and "19001234" not in log   # masked


def test_a_callback_made_while_an_agent_is_free_rings_at_once(worker: WorkerProc, trunk_port: int) -> None:
    """Agent 1003 is ready before the callback is made: the queued task may match it at once (an offer the
    router made before the task became a callback is withdrawn by the worker and made again as a
    callback); the agent's phone rings, then the trunk gets the INVITE."""
    vm_id = saved_message(worker, "c-ready", "0901500002")

    def make_callback() -> None:
        status, cb = worker.http("POST", f"/voicemails/{vm_id}/callback", {"queue": "support"})
        assert status == 202, cb

    assert callback_rings(worker, trunk_port, make_callback) == f"sip:+84901500002@127.0.0.1:{trunk_port}"
