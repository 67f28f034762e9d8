"""Transfers over real SIP and RTP, proved by audio (tests/tone_parties.py: sipp signals, the test's sockets
carry the media): the caller sends tone A, agent 1001 tone B, agent 1002 tone C, agent 1003 tone D, the trunk's
phone tone E, and the queue's music on hold is a WAV of tone M. Each party's received RTP is searched for them.

Attended: during the consult the caller hears the music only (neither its agent nor the target), agent and
target hear each other; after completion the caller and the target hear each other; cancel, a target that
refuses, and a consult turned three-way go back to (or add) the caller. Blind: to a queue (another agent of it
answers), to an agent, to a number through the trunk (a premium number refused by the dial policy). The CDR's
legs, the queue log and the handle time (talk + hold = the time the call was with agents) are checked.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import sipp
from recording_helpers import channels, tone_blocks
from tone_parties import Party, bridged_call, close_all, legs, phone, sounds_with_music, tone_worker, wait_for
from worker_proc import METRICS_TOKEN, WorkerProc, api_user, fetch, queue_flow

from callcenter.auth.roles import AGENT, SUPERVISOR
from callcenter.cdr.record import CallRecord
from callcenter.cdr.writer import open_store

pytestmark = [pytest.mark.sip, pytest.mark.timeout(300)]

A, B, C, D, E, M = 500.0, 1100.0, 1700.0, 2300.0, 2900.0, 800.0   # caller, 1001, 1002, 1003, trunk, music
ALL = [A, B, C, D, E, M]
PHONES: dict[str, int] = {}            # agent id (and "trunk") -> its phone's SIP port, set by the worker fixture


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> WorkerProc:
    tmp = tmp_path_factory.mktemp("transfer")
    flow = queue_flow("direct", "sales", "tone_m", max_wait="300", announce="{position: false, wait_time: false}")
    recorded = "{policy: always}"
    w = tone_worker(tmp, redis_server.url, PHONES, ("1001", "1002", "1003"), flow, sounds_with_music(tmp, "tone_m", M),
                    extra=f"recording: {{dir: {tmp / 'rec'}, queues: {{sales: {recorded}, support: {recorded}}}}}")
    yield w
    assert w.stop() == 0, w.tail()


def talking(w: WorkerProc, caller: Party, agent: Party, pause_ms: int, phones: list[sipp.Sipp],
            more: Sequence[tuple[str, Party]] = ()) -> tuple[str, sipp.Sipp, sipp.Sipp, list[sipp.Sipp]]:
    """The caller put through to agent 1001 (tone_parties.bridged_call), then the `more` agents logged in with
    their phones up: the call id, the caller's, the agent's and the other agents' sipp."""
    agent_sipp = phone(agent.port, port=PHONES["1001"])
    phones.append(agent_sipp)
    call_id = bridged_call(w, caller, agent, agent_sipp, pause_ms, phones)
    call = phones[-1]
    others = [phone(party.port, port=PHONES[agent_id]) for agent_id, party in more]
    phones += others
    if more:
        w.login(*(agent_id for agent_id, _ in more))
    return call_id, call, agent_sipp, others


def consult_state(w: WorkerProc, call_id: str) -> str:
    status, body = w.http("GET", f"/calls/{call_id}/transfer")
    return body.get("state", "") if status == 200 else ""


def hears(party: Party, expected: set[float]) -> bool:
    return party.heard() == expected


def events(w: WorkerProc, call_id: str, until: str, timeout: float = 30.0) -> list:
    """The call's queue log once ``until`` is in it."""
    deadline = time.monotonic() + timeout
    while True:
        store = open_store(w.store_url)
        try:
            found = store.events(call_id)
        finally:
            store.close()
        if any(e.event == until for e in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def transfers_counted(w: WorkerProc) -> dict[str, float]:
    """callcenter_queue_transfers_total by queue, from the worker's /metrics."""
    status, text = w.http("GET", "/metrics", token=METRICS_TOKEN)
    assert status == 200, text
    return {q: float(n) for q, n in re.findall(r'^callcenter_queue_transfers_total\{queue="(\w+)"\} ([\d.]+)', text, re.M)}


def notified_at(phone_sipp: sipp.Sipp, status: int) -> float:
    """When (wall clock, as sipp's message trace stamps it) the phone got the NOTIFY whose sipfrag is ``status``."""
    for stamp, message in re.findall(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\r?\n[^\n]*received[^\n]*\n\s*"
                                     r"(NOTIFY .*?)(?=^-{20,} |\Z)", phone_sipp.messages(), re.M | re.S):
        if re.search(rf"^SIP/2\.0 {status} ", message, re.M):
            return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()   # local time, as sipp's
    raise AssertionError(f"no NOTIFY {status}:\n{phone_sipp.messages()[-3000:]}")


def call_record(w: WorkerProc, call_id: str, timeout: float = 30.0) -> CallRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = open_store(w.store_url)
        try:
            rec = store.get_call(call_id)
        finally:
            store.close()
        if rec is not None and rec.end is not None:
            return rec
        time.sleep(0.2)
    raise AssertionError(f"no CDR of {call_id}:\n{w.tail()}")


def test_attended_transfer_consult_then_complete(worker: WorkerProc) -> None:
    caller, agent, target = Party(A, ALL), Party(B, ALL), Party(C, ALL)
    phones: list[sipp.Sipp] = []
    try:
        call_id, call, agent_sipp, (target_sipp,) = talking(worker, caller, agent, 50000, phones, [("1002", target)])
        mine = api_user(worker.redis_url, "agent-1001", [AGENT], agent="1001")

        # a consult of the support queue: its free agent (1002, the only one logged in) rings
        status, answer = worker.http("POST", f"/calls/{call_id}/transfer?agent=1001",
                                     {"queue": "support", "mode": "attended"}, token=mine)
        assert status == 202 and answer["state"] == "ringing" and answer["to"] == "agent:1002", answer
        wait_for(lambda: consult_state(worker, call_id) == "consulting", "1002's answer")
        # the consult: the caller hears the music, neither its agent nor the target
        assert caller.heard() == {M} and agent.heard() == {C} and target.heard() == {B}

        status, answer = worker.http("POST", f"/calls/{call_id}/transfer/complete?agent=1001", {}, token=mine)
        assert status == 200, answer
        assert agent_sipp.wait(30) == 0, agent_sipp.errors()        # the first agent is released
        wait_for(lambda: hears(caller, {C}), "the caller hearing the target")
        assert target.heard() == {A}

        assert call.wait(90) == 0, call.errors()
        assert target_sipp.wait(30) == 0, target_sipp.errors()
        rec = call_record(worker, call_id)
        assert rec.agent_id == "1001" and rec.transferred_to == "agent:1002", rec
        assert rec.hold_count == 1 and rec.hold_seconds > 0, rec
        # AHT's parts: the time with agents is talk plus hold (the consult's hold included)
        assert rec.talk_seconds > 0 and abs(rec.talk_seconds + rec.hold_seconds - (rec.end - rec.agent_answer)) < 1.0
        log = events(worker, call_id, "COMPLETECALLER")
        kinds = [e.event for e in log]
        for ev in ("CONNECT", "HOLD", "CONSULT", "ATTENDEDTRANSFER", "TRANSFER", "COMPLETECALLER"):
            assert ev in kinds, kinds
        by_event = {e.event: e for e in log}
        xfer, done = by_event["ATTENDEDTRANSFER"], by_event["TRANSFER"]
        assert xfer.agent_id == "1001" and xfer.data["to"] == "agent:1002" and xfer.data["onhold"] > 0, xfer
        assert done.agent_id == "1002" and done.data["from_agent"] == "1001", done
        assert by_event["COMPLETECALLER"].agent_id == "1002"
        # each agent's part: its own leg and its own talk; together the call's talk
        assert abs(xfer.data["talktime"] + by_event["COMPLETECALLER"].data["talktime"] - rec.talk_seconds) < 1.0
        assert [(leg.agent_id, leg.result) for leg in legs(worker, call_id, "agent_offer", 1)] == [("1001", "answered")]
        assert [(leg.agent_id, leg.result) for leg in legs(worker, call_id, "transfer", 1)] == [("1002", "answered")]
        # the target's handled count: its part of the call counted like a queue call's (then wrap-up, here 0 s)
        status, info = worker.http("GET", "/agents/1002")
        assert status == 200 and info["calls"] == 1 and info["state"] == "available", info
    finally:
        close_all(phones, (caller, agent, target))


def test_attended_cancel_refuse_and_three_way(worker: WorkerProc) -> None:
    caller, agent, target = Party(A, ALL), Party(B, ALL), Party(C, ALL)
    phones: list[sipp.Sipp] = []
    try:
        call_id, call, _, _ = talking(worker, caller, agent, 90000, phones)
        sup = api_user(worker.redis_url, "sup-xfer", [SUPERVISOR])
        worker.login("1002", "1003")

        # consulted, then cancelled: back to the caller
        first = phone(target.port, port=PHONES["1002"])
        phones.append(first)
        assert worker.http("POST", f"/calls/{call_id}/transfer", {"agent": "1002", "mode": "attended"},
                           token=sup)[0] == 202
        wait_for(lambda: consult_state(worker, call_id) == "consulting", "1002's answer")
        assert caller.heard() == {M}
        status, answer = worker.http("POST", f"/calls/{call_id}/transfer/cancel", {}, token=sup)
        assert status == 200, answer
        assert first.wait(30) == 0, first.errors()
        wait_for(lambda: hears(caller, {B}), "the caller hearing its agent again")
        assert agent.heard() == {A}

        # the target refuses (busy): back to the caller, nothing else changed
        busy = phone(Party(D).port, "busy", port=PHONES["1003"])
        phones.append(busy)
        assert worker.http("POST", f"/calls/{call_id}/transfer", {"agent": "1003", "mode": "attended"},
                           token=sup)[0] == 202
        assert busy.wait(30) == 0, busy.errors()
        wait_for(lambda: consult_state(worker, call_id) == "", "the refused consult's end")
        wait_for(lambda: hears(caller, {B}), "the caller hearing its agent again")

        # consulted, then three-way: everyone hears everyone
        second = phone(target.port, port=PHONES["1002"])
        phones.append(second)
        assert worker.http("POST", f"/calls/{call_id}/transfer", {"agent": "1002", "mode": "attended"},
                           token=sup)[0] == 202
        wait_for(lambda: consult_state(worker, call_id) == "consulting", "1002's answer")
        status, answer = worker.http("POST", f"/calls/{call_id}/transfer/conference", {}, token=sup)
        assert status == 200, answer
        wait_for(lambda: hears(caller, {B, C}), "the three-way call")
        assert agent.heard() == {A, C} and target.heard() == {A, B}

        assert call.wait(120) == 0, call.errors()
        consults = legs(worker, call_id, "consult", 2)
        assert sorted((leg.agent_id, leg.result) for leg in consults) == [("1002", "cancelled"), ("1003", "busy")]
        assert [leg.agent_id for leg in legs(worker, call_id, "conference", 1)] == ["1002"]
        rec = call_record(worker, call_id)
        assert rec.transferred_to is None and rec.agent_id == "1001" and rec.hold_count == 3, rec
    finally:
        close_all(phones, (caller, agent, target))


def test_blind_to_queue_agent_and_number(worker: WorkerProc) -> None:
    caller, agent = Party(A, ALL), Party(B, ALL)
    support, second, trunk = Party(D, ALL), Party(C, ALL), Party(E, ALL)
    phones: list[sipp.Sipp] = []
    worker.logout("1002")               # left available by the test before: only 1003 may answer the support queue
    try:
        before = transfers_counted(worker)
        call_id, call, agent_sipp, (support_sipp,) = talking(worker, caller, agent, 95000, phones,
                                                             [("1003", support)])
        mine = api_user(worker.redis_url, "agent-1001b", [AGENT], agent="1001")
        sup = api_user(worker.redis_url, "sup-blind", [SUPERVISOR])
        support_sup = api_user(worker.redis_url, "sup-support", [SUPERVISOR])     # may see the support queue only
        assert worker.http("PATCH", "/admin/users/sup-support", {"queues": ["support"]})[0] == 200
        status, answer = worker.http("POST", f"/calls/{call_id}/transfer", {"queue": "support"}, token=support_sup)
        assert status == 403, answer                     # a sales call: not one of its queues', nothing done

        # to a queue: agent 1001 is released, 1003 (support) answers the caller
        status, answer = worker.http("POST", f"/calls/{call_id}/transfer?agent=1001", {"queue": "support"},
                                     token=mine)
        assert status == 202 and answer == {"call_id": call_id, "mode": "blind", "kind": "queue",
                                            "to": "queue:support", "state": "queued"}, answer
        assert agent_sipp.wait(30) == 0, agent_sipp.errors()
        wait_for(lambda: hears(caller, {D}), "the support agent's answer")
        assert support.heard() == {A}

        # to an agent, by the support queue's supervisor (the caller is in its queue now)
        second_sipp = phone(second.port, port=PHONES["1002"])
        phones.append(second_sipp)
        worker.login("1002")
        assert worker.http("POST", f"/calls/{call_id}/transfer", {"agent": "1002"}, token=support_sup)[0] == 202
        assert support_sipp.wait(30) == 0, support_sipp.errors()
        wait_for(lambda: hears(caller, {C}), "1002's answer")
        assert second.heard() == {A}

        # to a number: a premium one is refused by the dial policy, nothing dialed; an allowed one rings the trunk
        status, answer = worker.http("POST", f"/calls/{call_id}/transfer", {"number": "1900 1234"}, token=sup)
        assert status == 403 and answer["detail"]["rule"] == "premium", answer
        trunk_sipp = phone(trunk.port, port=PHONES["trunk"])
        phones.append(trunk_sipp)
        status, answer = worker.http("POST", f"/calls/{call_id}/transfer", {"number": "0901 234 567"}, token=sup)
        assert status == 202 and answer["to"] == "number:+84901234567", answer
        assert second_sipp.wait(30) == 0, second_sipp.errors()
        wait_for(lambda: hears(caller, {E}), "the number's answer")
        assert trunk.heard() == {A}
        invite = re.search(r"^INVITE (\S+) SIP/2.0", trunk_sipp.messages(), re.M)
        assert invite and invite.group(1) == f"sip:+84901234567@127.0.0.1:{PHONES['trunk']}"

        assert call.wait(150) == 0, call.errors()
        log = events(worker, call_id, "COMPLETECALLER")
        kinds = [e.event for e in log]
        assert kinds.count("BLINDTRANSFER") == 3 and kinds.count("TRANSFER") == 3, kinds
        after = transfers_counted(worker)                   # by the queue the caller left
        assert {q: after[q] - before.get(q, 0.0) for q in after} == {"sales": 1.0, "support": 2.0}, after
        enters = [e for e in log if e.event == "ENTERQUEUE"]
        assert [e.queue for e in enters] == ["sales", "support"] and enters[1].data.get("transferred") is True
        rec = call_record(worker, call_id)
        assert rec.agent_id == "1001" and rec.transferred_to == "number:+84901234567", rec
        assert sorted((leg.agent_id or "", leg.result) for leg in legs(worker, call_id, "transfer", 2)) == \
            [("", "answered"), ("1002", "answered")]
        assert sorted(leg.agent_id for leg in legs(worker, call_id, "agent_offer", 2)) == ["1001", "1003"]
    finally:
        close_all(phones, (caller, agent, support, second, trunk))


def test_transfers_from_the_agents_phone(worker: WorkerProc) -> None:
    """Agent 1001's phone transfers to a premium number (refused by the dial policy: its REFER is accepted, then
    the final NOTIFY says 403 and the call goes on), then blind to 1002; 1002's phone holds the caller and
    completes its own consult of 1003 (REFER with Replaces): 1003's INVITE takes that consult call over. Each
    REFER is answered 202 with a "100 Trying" NOTIFY and nothing is dialed on its say-so (the transfers are the
    worker's own, checked); the final NOTIFY comes when the target answered ("SIP/2.0 200"), after the worker's
    BYE to the transferring phone."""
    caller, agent = Party(A, ALL), Party(B, ALL)
    second, third = Party(C, ALL), Party(D, ALL)
    replaces = "consult-7@10.0.0.2;to-tag=b1003;from-tag=a1002"
    phones: list[sipp.Sipp] = []
    try:
        first = phone(agent.port, port=PHONES["1001"],
                      steps=[("pause", 14000), ("refer", "sip:19001234@127.0.0.1", 202, 403), ("pause", 1000),
                             ("refer", f"sip:1002@127.0.0.1:{PHONES['1002']}", 202, 200)])
        phones.append(first)
        call_id = bridged_call(worker, caller, agent, first, 60000, phones)
        call = phones[-1]
        refer_to = f"sip:1003@127.0.0.1:{PHONES['1003']}?Replaces=" + replaces.replace("@", "%40").replace(
            ";", "%3B").replace("=", "%3D")
        second_sipp = phone(second.port, port=PHONES["1002"], steps=[
            ("pause", 12000), ("reinvite", "sendonly"), ("pause", 2000), ("refer", refer_to, 202, 200)])
        third_sipp = phone(third.port, port=PHONES["1003"])
        phones += [second_sipp, third_sipp]
        worker.login("1002", "1003")

        assert first.wait(30) == 0, first.errors()              # 202, NOTIFY 100, 403; 202, NOTIFY 100, BYE, 200
        wait_for(lambda: hears(caller, {C}), "1002's answer")
        assert second.heard() == {A}
        assert second_sipp.wait(40) == 0, second_sipp.errors()
        invite = re.search(r"^Replaces: (.+?)\r?$", third_sipp.messages(), re.M)
        assert invite and invite.group(1) == replaces, third_sipp.messages()[:2000]
        wait_for(lambda: hears(caller, {D}), "1003 taking the consult call over")
        assert third.heard() == {A}

        assert call.wait(90) == 0, call.errors()
        log = events(worker, call_id, "COMPLETECALLER")
        lines = [(e.event, e.agent_id, e.data.get("by")) for e in log
                 if e.event in ("TRANSFER_REFUSED", "BLINDTRANSFER", "ATTENDEDTRANSFER", "HOLD")]
        assert lines == [("TRANSFER_REFUSED", "1001", "phone"), ("BLINDTRANSFER", "1001", "phone"),
                         ("HOLD", "1002", "phone"), ("ATTENDEDTRANSFER", "1002", "phone")], lines
        assert [e.data.get("reason") for e in log if e.event == "TRANSFER_REFUSED"] == ["premium"]
        rec = call_record(worker, call_id)
        assert rec.transferred_to == "agent:1003" and rec.hold_count == 1, rec
    finally:
        close_all(phones, (caller, agent, second, third))


def test_a_blind_target_that_does_not_answer_sends_the_caller_back_to_its_queue(worker: WorkerProc) -> None:
    """Agent 1002's phone is busy: the caller, whose agent 1001 is already released, waits in its queue again at
    its first place and is offered to 1001 (its next call), whose phone rings anew."""
    caller, agent, target = Party(A, ALL), Party(B, ALL), Party(C, ALL)
    phones: list[sipp.Sipp] = []
    try:
        call_id, call, agent_sipp, _ = talking(worker, caller, agent, 60000, phones)
        busy = phone(target.port, "busy", port=PHONES["1002"])
        phones.append(busy)
        worker.login("1002")            # paused (it may still be rung for a transfer): not offered the caller after
        assert worker.http("POST", "/agents/1002/pause", {"reason": "lunch"})[0] == 200
        assert worker.http("POST", f"/calls/{call_id}/transfer", {"agent": "1002"})[0] == 202
        assert agent_sipp.wait(30) == 0, agent_sipp.errors()
        again = phone(agent.port, port=PHONES["1001"])       # 1001's phone, ready for its next call
        phones.append(again)
        assert busy.wait(30) == 0, busy.errors()
        wait_for(lambda: hears(caller, {B}), "1001 answering the caller again")
        assert call.wait(90) == 0, call.errors()
        log = events(worker, call_id, "COMPLETECALLER")
        failed = [e for e in log if e.event == "TRANSFER_FAILED"]
        assert [(e.data["to"], e.data["result"]) for e in failed] == [("agent:1002", "busy")], failed
        enters = [e for e in log if e.event == "ENTERQUEUE"]
        assert [e.queue for e in enters] == ["sales", "sales"] and enters[1].data.get("transferred") is True
        assert [(leg.agent_id, leg.result) for leg in legs(worker, call_id, "transfer", 1)] == [("1002", "busy")]
        assert [leg.agent_id for leg in legs(worker, call_id, "agent_offer", 2)] == ["1001", "1001"]
    finally:
        close_all(phones, (caller, agent, target))


def test_a_caller_transferred_back_to_a_queue_is_recorded_again_into_a_file_of_its_own(worker: WorkerProc) -> None:
    """Both queues record every call. Agent 1001 transfers its caller to the support queue, where 1003 answers: the
    second conversation is recorded into <call id>-2.wav beside the first (<call id>.wav, the one the CDR links),
    not over it: each has the caller on the left and its own agent on the right. The CDR counts both
    (recording_takes), the API fetches take 1 and 2, not 3."""
    caller, agent, support = Party(A, ALL), Party(B, ALL), Party(D, ALL)
    phones: list[sipp.Sipp] = []
    try:
        call_id, call, agent_sipp, (support_sipp,) = talking(worker, caller, agent, 14000, phones,
                                                             [("1003", support)])
        time.sleep(2)                   # two seconds of 1001 in the first recording (not an assertion's wait)
        assert worker.http("POST", f"/calls/{call_id}/transfer", {"queue": "support"})[0] == 202
        assert agent_sipp.wait(30) == 0, agent_sipp.errors()
        wait_for(lambda: hears(caller, {D}), "the support agent's answer")
        assert call.wait(60) == 0, call.errors()
        rec = call_record(worker, call_id)
        first = Path(rec.recording or "")
        assert first.name == f"{call_id}.wav" and rec.recording_takes == 2, rec        # the CDR counts both
        second = wait_for(lambda: next(iter(first.parent.glob(f"{call_id}-2.wav")), None), "the second recording")
        for path, mine, other in ((first, B, D), (second, D, B)):
            left, right = channels(path)
            assert sum(tone_blocks(left, A)) >= 10, path             # the caller, a second or more
            assert sum(tone_blocks(right, mine)) >= 10, path         # this part's agent
            assert not any(tone_blocks(right, other)), path          # not the other part's
        token = api_user(worker.redis_url, "sup-recordings", [SUPERVISOR])
        for take, path in (("", first), ("?take=2", second)):
            status, _, body = fetch(worker, f"/recordings/{call_id}{take}", token)
            assert status == 200 and body == path.read_bytes(), (take, status)
        assert fetch(worker, f"/recordings/{call_id}?take=3", token)[0] == 404
        for bad in ("0", "abc", "100", "-1", "2x"):                      # not a take number: refused, not searched
            assert fetch(worker, f"/recordings/{call_id}?take={bad}", token)[0] == 400, bad
    finally:
        close_all(phones, (caller, agent, support))


def test_a_phone_transfer_to_an_agent_that_does_not_answer_then_to_a_queue(worker: WorkerProc) -> None:
    """Agent 1001's phone transfers its caller to 1002, whose phone rings unanswered (the transfer ring, 10 s
    here): the phone, hung up when the caller was handed over, gets the final NOTIFY "SIP/2.0 480"; the caller
    waits in its queue again at its place and 1001 (its next call) answers it anew, as after the API's transfer;
    the queue log says TRANSFER_FAILED (no_answer, by the phone). Then 1001's phone transfers it to the support
    queue: its "SIP/2.0 200" comes once the caller waits there (ENTERQUEUE support), and 1003 answers."""
    caller, agent, target, support = Party(A, ALL), Party(B, ALL), Party(C, ALL), Party(D, ALL)
    phones: list[sipp.Sipp] = []
    try:
        ringing = phone(target.port, "noanswer", port=PHONES["1002"])
        helpdesk = phone(support.port, port=PHONES["1003"])
        phones += [ringing, helpdesk]
        worker.login("1002", "1003")       # 1002 paused (rung for a transfer only): the caller comes back to 1001
        assert worker.http("POST", "/agents/1002/pause", {"reason": "lunch"})[0] == 200
        first = phone(agent.port, port=PHONES["1001"], steps=[
            ("pause", 4000), ("refer", f"sip:1002@127.0.0.1:{PHONES['1002']}", 202, 480, True)])
        phones.append(first)
        call_id = bridged_call(worker, caller, agent, first, 32000, phones)
        call = phones[-1]
        assert first.wait(30) == 0, first.errors()        # 202, NOTIFY 100, BYE, NOTIFY 480 after the ring
        assert ringing.wait(30) == 0, ringing.errors()    # rung, then CANCELled
        again = phone(agent.port, port=PHONES["1001"], steps=[("pause", 2000), ("refer", "sip:support@127.0.0.1",
                                                                                 202, 200)])
        phones.append(again)
        wait_for(lambda: hears(caller, {B}), "1001 answering the caller again")
        assert again.wait(30) == 0, again.errors()        # 202, NOTIFY 100, BYE, NOTIFY 200 once queued
        wait_for(lambda: hears(caller, {D}), "the support agent's answer")
        assert call.wait(60) == 0, call.errors()
        log = events(worker, call_id, "COMPLETECALLER")
        failed = [(e.data["to"], e.data["result"], e.data["by"]) for e in log if e.event == "TRANSFER_FAILED"]
        assert failed == [("agent:1002", "no_answer", "phone")], failed
        lines = [(e.event, e.queue, e.agent_id, e.data.get("transferred")) for e in log
                 if e.event in ("ENTERQUEUE", "BLINDTRANSFER", "CONNECT")]
        assert lines == [("ENTERQUEUE", "sales", None, None), ("CONNECT", "sales", "1001", None),
                         ("BLINDTRANSFER", "sales", "1001", None), ("ENTERQUEUE", "sales", None, True),
                         ("CONNECT", "sales", "1001", None), ("BLINDTRANSFER", "sales", "1001", None),
                         ("ENTERQUEUE", "support", None, True), ("CONNECT", "support", "1003", None)], lines
        [queued] = [e for e in log if e.event == "ENTERQUEUE" and e.queue == "support"]
        assert notified_at(again, 200) >= queued.ts          # told once the caller waits in support, not before
        assert [(leg.agent_id, leg.result) for leg in legs(worker, call_id, "transfer", 1)] == [("1002", "no_answer")]
        rec = call_record(worker, call_id)
        assert rec.transferred_to == "queue:support" and rec.agent_id == "1001", rec
    finally:
        close_all(phones, (caller, agent, target, support))


def test_a_phone_transfer_to_a_full_queue_is_notified_486(worker: WorkerProc) -> None:
    """The sales queue holds one waiting caller at most and its agents have wrap-up (rules applied through the
    API: 1001, released by the transfer, does not take the waiting one), and a second caller waits there: agent
    1001's phone transfers its caller to sales, the re-enqueue is refused (full), and the phone, hung up as the
    caller was handed over, gets the final NOTIFY "SIP/2.0 486", not a 200."""
    import redis
    import yaml

    from callcenter.routing.keys import Keys

    rules = yaml.safe_load((worker.tmp / "rules.yaml").read_text())
    small = {**rules, "queues": {**rules["queues"], "sales": {**rules["queues"]["sales"], "max_length": 1,
                                                                            "wrapup": 60}}}
    caller, agent, other = Party(A, ALL), Party(B, ALL), Party(E, ALL)
    phones: list[sipp.Sipp] = []
    client = redis.Redis.from_url(worker.redis_url)
    try:
        assert worker.http("PUT", "/admin/rules", small)[0] == 200
        worker.login("1002")             # paused: nobody but 1001 takes a sales caller
        assert worker.http("POST", "/agents/1002/pause", {"reason": "lunch"})[0] == 200
        first = phone(agent.port, port=PHONES["1001"], steps=[
            ("pause", 5000), ("refer", "sip:sales@127.0.0.1", 202, 486, True)])
        phones.append(first)
        bridged_call(worker, caller, agent, first, 30000, phones)
        phones.append(sipp.caller(worker.target, [("pause", 12000), ("hangup",)], codecs="8",
                                  media_port=other.port))
        wait_for(lambda: client.zcard(Keys("cc:").waiting("sales")) == 1, "the second caller waiting in sales")
        assert first.wait(30) == 0, first.errors()        # 202, NOTIFY 100, BYE, NOTIFY 486: the queue was full
    finally:
        worker.http("PUT", "/admin/rules", rules)
        worker.logout("1001")            # out of its wrap-up: the next test logs it in ready
        client.close()
        close_all(phones, (caller, agent, other))
