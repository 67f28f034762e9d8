"""Callbacks on live SIP: the number read back and confirmed (or keyed anew), dialed in E.164 through
the trunk, and never a premium or foreign number a caller wrote in a spoofed From.

A sipp UAS plays the trunk (the worker's `sip.trunk`) and logs every message it gets; a sipp agent
phone takes the callback offers. The callers wait in a `support` queue whose callback offer comes
after 1 s, with nobody logged in, then leave (or are hung up on); an agent logs in afterwards, which
is when the worker would dial a pending callback."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import ports
import pytest
import sipp
from recording_helpers import channels, tone_blocks
from repo import REPO
from worker_proc import WorkerProc, demo_rules, flush, new_worker

from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.policy import DialPolicy, DialRules
from callcenter.redisconn import connect

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

AGENTS = ("1001", "1002", "1003", "1004")
CUSTOMER_HZ, AGENT_HZ = 600.0, 1000.0   # a callback's two parties, in its recording
FLOW = """name: cb
languages: [vi]
default_language: vi
start: q
nodes:
  q:
    type: queue
    queue: support
    skills: {support: 1}
    max_wait: 120
    callback_offer: true
    callback_after: 1
    announce: {position: false, wait_time: false}
    on_callback: bye
  bye: {type: hangup}
"""
# A routing rule (not the caller) turns a wait into a callback: the sales queue's last escalation step.
FALLBACK_FLOW = """name: cbf
languages: [vi]
default_language: vi
start: q
nodes:
  q:
    type: queue
    queue: sales
    max_wait: 120
    announce: {position: false, wait_time: false}
    on_callback: bye
    on_timeout: bye
  bye: {type: hangup}
"""


@pytest.fixture(scope="module")
def trunk_port() -> int:
    return ports.port()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server, trunk_port: int) -> Iterator[WorkerProc]:
    tmp = tmp_path_factory.mktemp("callback")
    ivr = tmp / "ivr"
    shutil.copytree(REPO / "ivr_scripts", ivr)
    (ivr / "cb.yaml").write_text(FLOW)
    (ivr / "cbf.yaml").write_text(FALLBACK_FLOW)
    # its own database: another module's worker (same consumer group) must not take this one's records
    w = new_worker(tmp, re.sub(r"db=\d+", "db=5", redis_server.url), worker_id="cbw")
    flush(w.redis_url)
    rules = demo_rules(w.agents_port).replace("ring_timeout: 15", "ring_timeout: 4").replace("wrapup: 10", "wrapup: 0")
    rules, n = re.subn(r"(  sales:\n(?:    .*\n)*?    escalation:\n)(?:      .*\n)+?(?=\n)",
                       r"\1      - after: 3\n        fallback: {action: callback}\n", rules)
    assert n == 1
    (tmp / "rules.yaml").write_text(rules)
    w.write_config(ivr_scripts=ivr, routes={"cb": "cb", "cbf": "cbf", "default": "hotline"}, rules=tmp / "rules.yaml",
                   trunk=f"127.0.0.1:{trunk_port}",
                   extra="dialing: {callback_max_per_number: 2, callback_max_per_source: 20}\n"
                         "recording: {policy: always}")
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


@pytest.fixture(autouse=True)
def nobody_logged_in(worker: WorkerProc) -> Iterator[None]:
    worker.logout(*AGENTS)
    yield
    worker.logout(*AGENTS)


def trunk(port: int) -> sipp.Sipp:
    """The SIP trunk: answers one call, waits for BYE, and logs every message it gets."""
    return sipp.agent(port, "answer", ring_ms=300, talk_ms=0, timeout_s=60, trace=True)


def queue_events(w: WorkerProc, call_id: str) -> list[tuple[str, dict]]:
    from callcenter.cdr.writer import open_store

    store = open_store(w.store_url)
    try:
        return [(e.event, e.data) for e in store.events(call_id)]
    finally:
        store.close()


def wait_events(w: WorkerProc, call_id: str, want: str, timeout: float = 15.0) -> list[tuple[str, dict]]:
    deadline = time.monotonic() + timeout
    evs: list[tuple[str, dict]] = []
    while time.monotonic() < deadline:
        evs = queue_events(w, call_id)
        if any(e == want for e, _ in evs):
            return evs
        time.sleep(0.3)
    raise AssertionError(f"no {want} for {call_id}: {evs}\n{w.tail(30)}")


def digits(text: str, gap: int = 250) -> list[tuple]:
    out: list[tuple] = []
    for d in text:
        out += [("dtmf", d), ("pause", gap)]
    return out


def test_spoofed_premium_and_international_callbacks_are_never_dialed(worker: WorkerProc, trunk_port: int) -> None:
    """Two callers with forged From numbers (a 1900 premium line, a London number) press 1 for a
    callback: each hears that the number cannot be called back and stays in the queue; they hang up.
    An agent then logs in: neither the agent's phone nor the trunk gets an INVITE."""
    spoofs = {"19001234": "premium", "+442079460958": "international"}
    far_end = trunk(trunk_port)
    phone = sipp.agent(worker.agents_port, "answer_bye", talk_ms=1000, timeout_s=60)
    try:
        callers = [sipp.caller(worker.target, [("pause", 2500), ("dtmf", "1"), ("pause", 17000), ("hangup",)],
                               number=n, service="cb") for n in spoofs]
        assert sipp.wait_all(*callers, timeout=60) == [0, 0], "".join(c.errors() for c in callers) + worker.tail()
        rows = {n: worker.call_from(n) for n in spoofs}
        worker.login("1003")
        time.sleep(8)        # a pending callback would be offered to 1003 within a second or two
        assert "INVITE" not in far_end.messages(), far_end.messages()
        assert phone.proc.poll() is None, "the agent's phone was rung for a refused callback"
    finally:
        far_end.stop()
        phone.stop()
    for number, reason in spoofs.items():
        row = rows[number]
        evs = queue_events(worker, row.call_id)
        names = [e for e, _ in evs]
        assert "CALLBACK" not in names and not row.callback, evs
        refusals = [d for e, d in evs if e == "CALLBACK_REFUSED"]
        assert refusals and refusals[0]["reason"] == reason, evs
        assert row.outcome == "abandoned" and row.hangup_side == "caller"
    log = worker.log.read_text(errors="replace")
    assert '"dial refused"' in log and "19001234" not in log and "2079460958" not in log   # masked


def test_caller_keys_another_number_and_the_callback_dials_it_in_e164(worker: WorkerProc, trunk_port: int) -> None:
    """1 = callback; the From number is read back; 2 = another number, keyed as 098 765 4321 #; it is
    read back; 1 confirms. The flow thanks and hangs up. Agent 1003 logs in, answers the callback, and
    the trunk gets the INVITE for +84987654321; the conversation is recorded (recording.policy always), the
    customer's tone on the left, the agent's on the right."""
    steps = [("pause", 2500), ("dtmf", "1"),              # the offer (plays from ~1 s)
             ("pause", 2000), ("dtmf", "2"),              # during the read-back of 0901000001
             ("pause", 1500), *digits("0987654321#"),     # during "please key in the number"
             ("pause", 2500), ("dtmf", "1"),              # during the read-back of the new number
             ("wait_bye", 30000)]
    caller = sipp.caller(worker.target, steps, number="0901000001", service="cb")
    assert caller.wait(60) == 0, caller.errors() + worker.tail()
    row = worker.call_from("0901000001")
    evs = wait_events(worker, row.call_id, "CALLBACK")
    assert row.callback and row.outcome == "callback", row
    assert "CALLBACK_REFUSED" not in [e for e, _ in evs]
    far_end = sipp.agent(trunk_port, "answer", ring_ms=300, timeout_s=60, trace=True, codecs="8",
                         steps=[("tone", CUSTOMER_HZ, 6000)])
    phone = sipp.agent(worker.agents_port, "answer_bye", talk_ms=4000, timeout_s=60, codecs="8",
                       steps=[("tone", AGENT_HZ, 6000)])
    try:
        worker.login("1003")
        assert sipp.wait_all(phone, far_end, timeout=60) == [0, 0], phone.errors() + far_end.errors() + worker.tail()
    finally:
        far_end.stop()
        phone.stop()
    invite = re.search(r"^INVITE (\S+) SIP/2.0", far_end.messages(), re.M)
    assert invite and invite.group(1) == f"sip:+84987654321@127.0.0.1:{trunk_port}", far_end.messages()[:2000]
    # The callback's record is the caller's call's, carried on (same call id): wait for its outbound part.
    cdr, = worker.calls(where=lambda c: c.direction == "outbound" and c.callback and c.agent_id == "1003")
    left, right = channels(Path(cdr.recording))
    assert sum(tone_blocks(left, CUSTOMER_HZ)) >= 20 and sum(tone_blocks(right, AGENT_HZ)) >= 20
    assert not any(tone_blocks(left, AGENT_HZ, 0.2)) and not any(tone_blocks(right, CUSTOMER_HZ, 0.2))


def test_callbacks_to_one_number_are_capped_across_workers(worker: WorkerProc) -> None:
    """Two callbacks to 0933000444 were already counted today (by other workers: the cap lives in Redis).
    A caller confirms that number: the request is refused (number_cap), the caller keeps waiting."""
    async def earlier_callbacks() -> None:
        r = connect(worker.redis_url)
        try:
            p = DialPolicy(DialRules(callback_max_per_number=2), r, DialerKeys("cc:"))
            d = p.judge("0933000444")
            for src in ("addr:other-worker-1", "addr:other-worker-2"):
                assert (await p.admit_callback(d, src)).ok
        finally:
            await r.aclose()

    asyncio.run(earlier_callbacks())
    steps = [("pause", 2500), ("dtmf", "1"), ("pause", 2500), ("dtmf", "1"), ("pause", 9000), ("hangup",)]
    caller = sipp.caller(worker.target, steps, number="0933000444", service="cb")
    assert caller.wait(60) == 0, caller.errors() + worker.tail()
    row = worker.call_from("0933000444")
    evs = queue_events(worker, row.call_id)
    assert [d["reason"] for e, d in evs if e == "CALLBACK_REFUSED"] == ["number_cap"], evs
    assert "CALLBACK" not in [e for e, _ in evs] and not row.callback


def test_a_routing_fallback_callback_to_a_spoofed_premium_number_is_dropped(worker: WorkerProc,
                                                                            trunk_port: int) -> None:
    """The sales queue's rule turns a 3 s wait into a callback to the From number, unconfirmed: a 1900
    From is refused there (the caller's wait ends as a timeout and the flow hangs up), and when a sales
    agent logs in nothing is dialed."""
    far_end = trunk(trunk_port)
    phone = sipp.agent(worker.agents_port, "answer_bye", talk_ms=1000, timeout_s=60)
    try:
        caller = sipp.caller(worker.target, [("wait_bye", 20000)], number="19005678", service="cbf")
        assert caller.wait(40) == 0, caller.errors() + worker.tail()
        row = worker.call_from("19005678")
        worker.login("1001")
        time.sleep(6)
        assert "INVITE" not in far_end.messages(), far_end.messages()
        assert phone.proc.poll() is None, "the agent's phone was rung for a refused callback"
    finally:
        far_end.stop()
        phone.stop()
    evs = queue_events(worker, row.call_id)
    assert [(d["reason"], d.get("at")) for e, d in evs if e == "CALLBACK_REFUSED"] == [("premium", "fallback")], evs
    assert row.outcome == "timeout" and not row.callback, row
