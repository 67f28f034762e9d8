"""Hold from a desk phone on the encrypted edge (issue 15): baresip on SIP over TLS with SRTP (SDES) holds the call
with its own re-INVITE (a=sendonly), through Kamailio and rtpengine, which turn it into the worker's plain RTP/AVP
offer; the worker plays the queue's music to the caller and cuts the agent off; resume (a=sendrecv) brings both
back. Proved by tones as tests/test_hold_sip.py does on plain SIP: the caller (sipp) sends A, the phone B
(baresip's ausine), the queue's music is C; what the caller receives is measured on its side, what the phone
received from its decoded audio."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import ports
import pytest
import sipp
import tones
from edge_proc import AGENT_PASSWORDS, NEEDS_ENCRYPTED_EDGE, Edge, Rtpengine, Softphone, edge_rules
from worker_proc import WorkerProc, flow_dirs, flush, new_worker, queue_flow

from callcenter.cdr.writer import open_store

pytestmark = [NEEDS_ENCRYPTED_EDGE, pytest.mark.sip, pytest.mark.timeout(180)]

A, B, C = 600.0, 440.0, 1400.0       # caller, agent (baresip's ausine), music on hold
ALL = [A, B, C]
AGENT_ID = "1002"                    # the support queue's one agent at the edge


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[tuple[WorkerProc, Edge]]:
    tmp = tmp_path_factory.mktemp("edge-hold")
    flush(redis_server.url)
    sounds = tones.sounds_with_tone(tmp, "tone_c", C)
    scripts, campaigns = flow_dirs(tmp, {"holdtest": queue_flow(
        "holdtest", "support", "tone_c", max_wait="120", announce="{position: false, wait_time: false}")})
    w = new_worker(tmp, redis_server.url, worker_id="edge-hold-w1")
    edge_port = ports.port()
    w.write_config(rules=edge_rules(tmp, edge_port), ivr_scripts=scripts, campaigns=campaigns, sounds=sounds,
                   routes={"hotline": "holdtest", "default": "holdtest"})
    rtp = Rtpengine(tmp).start()
    edge = Edge(tmp, edge_port, AGENT_PASSWORDS, [w.target], rtpengine=rtp).start()
    w.start()
    yield w, edge
    edge.stop()
    rtp.stop()
    assert w.stop() == 0, w.tail()


def _heard(s: tones.Sniffer, port: int, start: float, end: float) -> set[float]:
    pcm = s.pcm(port, start, end)
    assert len(pcm) >= 8000 * (end - start) * 0.5, f"too little audio at {port}: {len(pcm)} samples"
    return tones.detect(pcm, ALL)


def test_hold_from_a_tls_desk_phone_through_rtpengine(stack, tmp_path: Path) -> None:
    """The caller and 1002's TLS desk phone talk (each hears the other's tone); the phone holds (its re-INVITE
    a=sendonly reaches the worker through the edge as plain SDP): the caller hears the music and not the agent;
    the phone resumes: the caller hears the agent again and the phone the caller. The CDR counts one hold, by
    the phone."""
    w, edge = stack
    try:
        # the worker's side of the edge is plain SIP over UDP: the re-INVITEs are seen there
        sniffer = tones.Sniffer(set(), {"hold": b"a=sendonly", "sendrecv": b"a=sendrecv"})
    except PermissionError:
        pytest.skip("watching the loopback interface needs root (CAP_NET_RAW)")
    phone = Softphone(tmp_path, AGENT_ID, AGENT_PASSWORDS[AGENT_ID], edge, tls=True, control=True).start()
    try:
        phone.registered()
        w.login(AGENT_ID)
        caller = sipp.caller(edge.address, [("tone", A, 30_000), ("pause", 17_000), ("hangup",)],
                             number="0903000901")
        sniffer.watch(caller.media_port)
        phone.wait_for(r"Call established", timeout=20)
        time.sleep(3.0)                                   # bridged: both talk for a while
        asked_hold = time.monotonic()
        phone.command("hold")
        time.sleep(4.0)
        asked_resume = time.monotonic()
        phone.command("resume")
        assert sipp.wait_all(caller, timeout=40) == [0], caller.errors() + "\n" + edge.tail()
        text = phone.text()
    finally:
        phone.stop()
        sniffer.close()
    assert re.search(r"SRTP is Enabled", text), text[-3000:]
    # (the marks' first SIP message after each command: the re-INVITE as the edge relays it to the worker)
    held = min((t for t in sniffer.marks["hold"] if t > asked_hold), default=0.0)
    assert held, "the phone's hold re-INVITE never reached the worker"
    resumed = min((t for t in sniffer.marks["sendrecv"] if t > asked_resume), default=0.0)
    assert resumed, "the phone's resume re-INVITE never reached the worker"
    port = caller.media_port
    assert _heard(sniffer, port, held - 2.5, held - 0.3) == {B}
    assert _heard(sniffer, port, held + 0.7, resumed - 0.2) == {C}           # music, not the agent
    assert _heard(sniffer, port, resumed + 0.7, resumed + 3.0) == {B}
    assert tones.detect(tones.wav_pcm(phone.heard(), last_s=2.0), ALL) == {A}               # the phone hears the caller again

    cdr = w.call_from("0903000901")
    assert cdr.agent_id == AGENT_ID and cdr.outcome == "answered", cdr
    assert cdr.hold_count == 1 and 2.0 < cdr.hold_seconds < 8.0, (cdr.hold_count, cdr.hold_seconds)
    store = open_store(w.store_url)
    try:
        holds = [(e.event, e.data["by"]) for e in store.events(cdr.call_id) if e.event in ("HOLD", "UNHOLD")]
    finally:
        store.close()
    assert holds == [("HOLD", "phone"), ("UNHOLD", "phone")], holds
