"""Conference over real SIP and RTP, proved by audio: the caller sends tone A, its agent (1001) tone B, the
added agent (1002) tone C, and each party's received RTP is searched for the three tones (the Party, phone
and call helpers of tests/tone_parties.py: sipp signals, the test's sockets carry the media).

A state is judged on packets received after the API answered (counted in packets, not timed): the worker
makes a mute's connections before it answers; an added party is judged once GET .../conference says it is
connected.
"""

from __future__ import annotations

import re
from pathlib import Path

import ports
import pytest
import sipp
from recording_helpers import channels, tone_blocks
from repo import REPO
from tone_parties import HOLD, RESUME, Party, bridged_call, legs, phone, wait_for
from worker_proc import WorkerProc, api_user, flush, new_worker, queue_flow

from callcenter.auth.roles import AGENT, SUPERVISOR
from callcenter.cdr.writer import open_store
from callcenter.redisconn import connect_sync

pytestmark = [pytest.mark.sip, pytest.mark.timeout(300)]

A, B, C = 500.0, 1100.0, 1700.0        # caller, agent 1001, added agent 1002
D, E = 2300.0, 2900.0                  # agent 1003, a number through the trunk: not listened for
PHONES: dict[str, int] = {}            # agent id (and "trunk") -> its phone's SIP port, set by the worker fixture


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server) -> WorkerProc:
    tmp = tmp_path_factory.mktemp("conference")
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url)
    rules = (REPO / "routing_rules.yaml").read_text()
    PHONES["trunk"] = ports.port()
    for agent in ("1001", "1002", "1003"):
        PHONES[agent] = ports.port()
        rules = rules.replace(f"sip:{agent}@127.0.0.1:5070", f"sip:{agent}@127.0.0.1:{PHONES[agent]}")
    rules = re.sub(r"ring_timeout: \d+", "ring_timeout: 6", rules)
    rules = re.sub(r"wrapup: \d+", "wrapup: 0", rules)
    (tmp / "rules.yaml").write_text(rules)
    flows = tmp / "flows"
    flows.mkdir()
    (flows / "direct.yaml").write_text(queue_flow("direct", "sales", "moh"))
    w.write_config(rules=tmp / "rules.yaml", ivr_scripts=flows, routes={"default": "direct"},
                   extra="monitor: {ring_timeout: 10}\nrecording: {policy: always}", trunk=f"127.0.0.1:{PHONES['trunk']}")
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


@pytest.fixture(autouse=True)
def nobody_logged_in(worker: WorkerProc) -> None:
    """Each test logs in the agents it needs: a caller is offered to none left over from another test. An
    agent still on the last test's call (its recording being stored) logs out when that call is finished."""
    agents = ("1001", "1002", "1003")
    worker.logout(*agents)
    client = connect_sync(worker.redis_url)
    try:
        wait_for(lambda: all(client.hget(f"cc:rt:a:{a}", "state") == "logged_out" for a in agents),
                 "the agents logged out")
    finally:
        client.close()


def recording(w: WorkerProc, call_id: str) -> str | None:
    """The stored recording its CDR links, once the call's CDR is in the store."""
    store = open_store(w.store_url)
    try:
        rec = store.get_call(call_id)
    finally:
        store.close()
    return rec.recording if rec is not None and rec.end else None


def parties(w: WorkerProc, call_id: str) -> dict[str, str]:
    status, body = w.http("GET", f"/calls/{call_id}/conference")
    assert status == 200, body
    return {p["party"]: p["state"] for p in body["parties"]}


def test_conference_everyone_hears_everyone_mute_cap_dnc_leave(worker: WorkerProc) -> None:
    caller, agent, added = Party(A), Party(B), Party(C)
    more = [Party(D), Party(E)]
    phones: list[sipp.Sipp] = []
    try:
        agent_sipp = phone(agent.port, port=PHONES["1001"])
        added_sipp = phone(added.port, port=PHONES["1002"])
        phones += [agent_sipp, added_sipp, phone(more[0].port, port=PHONES["1003"]),
                   phone(more[1].port, port=PHONES["trunk"])]
        mine = api_user(worker.redis_url, "agent-1001", [AGENT], agent="1001")
        other = api_user(worker.redis_url, "agent-1003", [AGENT], agent="1003")
        sup = api_user(worker.redis_url, "sup-conf", [SUPERVISOR])
        call_id = bridged_call(worker, caller, agent, agent_sipp, 75000, phones)
        call = phones[-1]
        worker.login("1002", "1003")

        # another agent may not add to (or learn of) this call
        status, answer = worker.http("POST", f"/calls/{call_id}/conference/add?agent=1003", {"agent": "1003"},
                                     token=other)
        assert status == 403, answer

        status, answer = worker.http("POST", f"/calls/{call_id}/conference/add?agent=1001", {"agent": "1002"},
                                     token=mine)
        assert status == 202 and answer["party"] == "1002" and answer["state"] == "ringing", answer
        wait_for(lambda: parties(worker, call_id).get("1002") == "connected", "1002's answer")
        assert caller.heard() == {B, C} and agent.heard() == {A, C} and added.heard() == {A, B}

        # muted: heard by nobody, still hears everyone
        status, answer = worker.http("POST", f"/calls/{call_id}/conference/1002/mute", {}, token=sup)
        assert status == 200 and answer["muted"] is True, answer
        assert caller.heard() == {B} and agent.heard() == {A} and added.heard() == {A, B}
        assert worker.http("POST", f"/calls/{call_id}/conference/1002/unmute", {}, token=sup)[0] == 200
        assert caller.heard() == {B, C} and agent.heard() == {A, C}

        # held: hears the hold music instead of the others and is heard by nobody; unheld: as before
        status, answer = worker.http("POST", f"/calls/{call_id}/conference/1002/hold", {}, token=sup)
        assert status == 200 and answer["held"] is True, answer
        assert caller.heard() == {B} and agent.heard() == {A} and added.heard() == set()
        assert worker.http("POST", f"/calls/{call_id}/conference/caller/hold", {}, token=sup)[0] == 409
        assert worker.http("POST", f"/calls/{call_id}/conference/1002/unhold", {}, token=sup)[0] == 200
        assert caller.heard() == {B, C} and agent.heard() == {A, C} and added.heard() == {A, B}

        # a number on the DNC list: refused by its rule, nothing dialed
        assert worker.http("POST", "/dnc", {"number": "0912 345 678"})[0] == 201
        status, answer = worker.http("POST", f"/calls/{call_id}/conference/add", {"number": "0912345678"},
                                     token=sup)
        assert status == 403 and "dnc" in str(answer), answer
        assert set(parties(worker, call_id)) == {"caller", "agent", "1002"}

        # an allowed number goes to the trunk in E.164; five parties at most (a ringing one counts)
        assert worker.http("POST", f"/calls/{call_id}/conference/add", {"agent": "1003"}, token=sup)[0] == 202
        status, answer = worker.http("POST", f"/calls/{call_id}/conference/add", {"number": "0901 234 567"},
                                     token=sup)
        assert status == 202 and answer["party"] == "p1", answer
        status, answer = worker.http("POST", f"/calls/{call_id}/conference/add", {"number": "0901234568"},
                                     token=sup)
        assert status == 409, answer
        wait_for(lambda: set(parties(worker, call_id).values()) == {"connected"}, "1003's and the number's answer")
        trunk_invite = re.search(r"^INVITE (\S+) SIP/2.0", phones[3].messages(), re.M)
        assert trunk_invite and trunk_invite.group(1) == f"sip:+84901234567@127.0.0.1:{PHONES['trunk']}"
        assert caller.heard() == {B, C} and added.heard() == {A, B}

        # the agent leaves: its phone gets the BYE, the caller and the added agents stay connected
        status, answer = worker.http("POST", f"/calls/{call_id}/conference/leave?agent=1001", {}, token=mine)
        assert status == 200, answer
        assert agent_sipp.wait(30) == 0, agent_sipp.errors()
        assert caller.heard() == {C} and added.heard() == {A}

        assert call.wait(120) == 0, call.errors()               # the caller hangs up: the conference ends
        conf = legs(worker, call_id, "conference", 3)
        assert sorted((leg.agent_id or "", leg.result) for leg in conf) == [("", "answered"), ("1002", "answered"),
                                                                            ("1003", "answered")]
        assert all(leg.answer is not None for leg in conf)
        store = open_store(worker.store_url)
        try:
            events = [e.event for e in store.events(call_id, kinds=["CONFERENCE_ADD", "CONFERENCE_LEAVE",
                                                                    "CONFERENCE_MUTE", "CONFERENCE_UNMUTE"])]
        finally:
            store.close()
        assert events.count("CONFERENCE_ADD") == 3 and events.count("CONFERENCE_LEAVE") == 4, events
        assert "CONFERENCE_MUTE" in events and "CONFERENCE_UNMUTE" in events

        # one recording of the whole conference: the caller on the left, the agent and the added parties mixed
        # on the right (each of B and C present in some stretch of it), nobody on the wrong side
        left, right = channels(Path(wait_for(lambda: recording(worker, call_id), "the call's recording")))
        assert sum(tone_blocks(left, A)) >= 20 and not any(tone_blocks(left, B, 0.2) or tone_blocks(left, C, 0.2))
        assert sum(tone_blocks(right, B, 0.2)) >= 10 and sum(tone_blocks(right, C, 0.2)) >= 10
        assert not any(tone_blocks(right, A, 0.2))
    finally:
        for p in phones:
            p.stop()
        for party in (caller, agent, added, *more):
            party.close()


@pytest.mark.parametrize("muted", ["1002", "agent"])
def test_a_muted_party_stays_muted_through_its_phones_re_invite(worker: WorkerProc, muted: str) -> None:
    """A party is muted (the added agent, or the call's agent: a direction of the caller-agent bridge), then
    its phone holds and resumes (re-INVITEs: pjsua may give its stream a new bridge port; the agent's hold
    also unbridges the caller and bridges it again): afterwards nobody hears it still, and it hears the
    others again."""
    caller, agent, added = Party(A), Party(B), Party(C)
    hears = {"1002": {"caller": {B}, "agent": {A}, "1002": {A, B}},
             "agent": {"caller": {C}, "agent": {A, C}, "1002": {A}}}[muted]
    phones: list[sipp.Sipp] = []
    try:
        # the muted party's phone holds 12 s after answering (once muted) and resumes 2 s later
        reinvite = [("pause", 12000), ("reinvite", "sendonly"), ("pause", 2000), ("reinvite", "sendrecv")]
        ports_of = {"agent": (agent.port, PHONES["1001"]), "1002": (added.port, PHONES["1002"])}
        sipps = {who: sipp.agent(port, "answer", ring_ms=100, timeout_s=180, codecs="8", trace=True, media_port=media,
                                 steps=reinvite if who == muted else None)
                 for who, (media, port) in ports_of.items()}
        phones += sipps.values()
        call_id = bridged_call(worker, caller, agent, sipps["agent"], 45000, phones)
        call = phones[-1]
        worker.login("1002")
        assert worker.http("POST", f"/calls/{call_id}/conference/add", {"agent": "1002"})[0] == 202
        wait_for(lambda: parties(worker, call_id).get("1002") == "connected", "1002's answer")
        assert worker.http("POST", f"/calls/{call_id}/conference/{muted}/mute", {})[0] == 200
        assert HOLD not in sipps[muted].messages(), "the phone held before it was muted"
        heard = {"caller": caller.heard, "agent": agent.heard, "1002": added.heard}
        assert {who: h() for who, h in heard.items()} == hears
        wait_for(lambda: RESUME in sipps[muted].messages(), "the phone's resume")
        wait_for(lambda: heard[muted]() == hears[muted], "the muted party hearing the others again")
        assert {who: h() for who, h in heard.items()} == hears
        assert worker.http("POST", f"/calls/{call_id}/conference/{muted}/unmute", {})[0] == 200
        assert caller.heard() == {B, C} and added.heard() == {A, B}
        assert call.wait(120) == 0, call.errors()
        # the phones get their BYEs (the agent's once the recording is stored): none is left for the next test
        assert [p.wait(30) for p in sipps.values()] == [0, 0], [p.errors() for p in sipps.values()]
    finally:
        for p in phones:
            p.stop()
        for party in (caller, agent, added):
            party.close()
