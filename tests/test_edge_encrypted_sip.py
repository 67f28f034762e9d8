"""The encrypted edge: Kamailio (deploy/kamailio/kamailio.cfg) with SIP over TLS and WSS, rtpengine anchoring
the agents' media (SRTP towards a TLS desk phone, DTLS-SRTP + ICE towards a browser) and plain RTP/AVP G.711
towards the worker. Real Kamailio, real rtpengine, real baresip."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import ports
import pytest
import sipp
import tones
from edge_proc import (
    NEEDS_ENCRYPTED_EDGE,
    Edge,
    Rtpengine,
    Softphone,
    WsSip,
    edge_rules,
    kamailio_cli,
    register,
    sip_response,
)
from worker_proc import WorkerProc, flush, new_worker

from callcenter.cdr.writer import open_store
from callcenter.cli import main as cli_main

pytestmark = NEEDS_ENCRYPTED_EDGE

PASSWORDS = {"1001": "s3cret-1001", "1002": "s3cret-1002"}
AGENT_HZ = 440.0        # baresip's ausine
CALLER_HZ = 1300.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[tuple[WorkerProc, Edge, Rtpengine]]:
    tmp = tmp_path_factory.mktemp("edge-tls")
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url, worker_id="edge-tls-w1")
    edge_port = ports.port()
    w.write_config(rules=edge_rules(tmp, edge_port))
    rtp = Rtpengine(tmp).start()
    edge = Edge(tmp, edge_port, PASSWORDS, [w.target], rtpengine=rtp).start()
    w.start()
    yield w, edge, rtp
    edge.stop()
    rtp.stop()
    assert w.stop() == 0, w.tail()


def test_an_agent_with_no_phone_registered_is_paused_not_offered_again(stack) -> None:
    """Agent 1002 is ready but has no phone at the edge: the worker's offer is answered 480 "Agent not
    registered" at once (nothing rings); the router counts no miss, pauses 1002 with reason no_phone (shown so
    on the wallboard) and offers the waiting caller to nobody else meanwhile: one offer in all."""
    w, edge, _ = stack
    assert "AoR: 1002" not in edge.kamcmd("ul.dump")       # (the first test: nothing registered yet)
    w.login("1002")
    caller = sipp.caller(edge.address, [("pause", 600), ("dtmf", "2"), ("pause", 800), ("dtmf", "2"),
                                        ("pause", 7000), ("hangup",)], number="0903000504")
    assert sipp.wait_all(caller, timeout=30) == [0], caller.errors() + edge.tail()
    st, agent = w.http("GET", "/agents/1002")         # what the wallboard's agent grid shows
    assert st == 200, agent
    assert (agent["state"], agent["pause_reason"], agent["misses"]) == ("paused", "no_phone", 0), agent
    cdr = w.call_from("0903000504")
    store = open_store(w.store_url)
    try:
        offers = [leg for leg in store.legs(cdr.call_id) if leg.kind == "agent_offer"]
    finally:
        store.close()
    assert [(leg.agent_id, leg.result) for leg in offers] == [("1002", "unregistered")], offers
    assert cdr.agent_id is None and cdr.outcome == "abandoned", cdr


def test_tls_desk_phone_with_srtp_answers_a_hotline_call(stack, tmp_path: Path) -> None:
    """baresip registers over TLS with SRTP mandatory; a sipp caller dials the hotline at the edge and is
    queued to 1001; the offer reaches the phone over TLS with SDES keys (rtpengine turns the worker's RTP/AVP
    into RTP/SAVP); both hear each other's tone; on the agent's leg every RTP packet is encrypted (the
    headers are there, Goertzel finds no tone in the payloads) while the worker's side of rtpengine
    carries the plain G.711 of the same call."""
    w, edge, rtp = stack
    try:
        agent_leg: list[bytes] = []
        worker_side: list[bytes] = []

        def udp(sport: int, dst: str, dport: int, data: bytes) -> None:
            if len(data) <= 12 or data[0] >> 6 != 2 or data[1] & 0x7F not in (tones.PCMU, tones.PCMA):
                return
            if sport in phone.rtp_ports or dport in phone.rtp_ports:
                agent_leg.append(data)
            elif dport in rtp.media_ports and sport not in rtp.media_ports:
                worker_side.append(data)

        phone = Softphone(tmp_path, "1001", PASSWORDS["1001"], edge, tls=True)
        capture = tones.loopback_udp(udp)
        sniffer = tones.Sniffer(set())
    except PermissionError:
        pytest.skip("watching the loopback interface needs root (CAP_NET_RAW)")
    phone.start()
    try:
        phone.registered()
        assert re.search(r"AoR: 1001\b", edge.kamcmd("ul.dump"))
        w.login("1001")
        steps = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "1"), ("tone", CALLER_HZ, 16000),
                 ("pause", 14000), ("hangup",)]
        caller = sipp.caller(edge.address, steps, number="0903000501")
        sniffer.watch(caller.media_port)
        phone.wait_for(r"Call established", timeout=15)
        answered = time.monotonic()
        assert sipp.wait_all(caller, timeout=40) == [0], caller.errors() + "\n" + edge.tail() + rtp.tail()
        text = phone.text()
        assert re.search(r"SRTP is Enabled \(cryptosuite=AES_(256_)?CM_(128_)?HMAC_SHA1_(80|32)\)", text), text[-3000:]
    finally:
        phone.stop()
        capture.close()
        sniffer.close()
    # the caller heard the agent's tone, the agent the caller's
    assert tones.detect(sniffer.pcm(caller.media_port, answered + 1.0, answered + 5.0), [AGENT_HZ, CALLER_HZ]) \
        == {AGENT_HZ}
    assert tones.detect(tones.wav_pcm(phone.heard(), 1.5), [AGENT_HZ, CALLER_HZ]) == {CALLER_HZ}
    # the agent's leg: RTP headers, encrypted payloads; the worker's side of rtpengine: the same call in clear
    assert len(agent_leg) > 200, len(agent_leg)
    leg_pcm = [s for d in agent_leg for s in tones.decode(tones._rtp_payload(d), d[1] & 0x7F)]
    assert tones.detect(leg_pcm, [AGENT_HZ, CALLER_HZ]) == set()
    plain_pcm = [s for d in worker_side for s in tones.decode(tones._rtp_payload(d), d[1] & 0x7F)]
    assert CALLER_HZ in tones.detect(plain_pcm, [AGENT_HZ, CALLER_HZ])
    cdr = w.call_from("0903000501")
    assert cdr.agent_id == "1001" and cdr.outcome == "answered", cdr


def test_browser_phone_registers_over_wss_and_gets_a_webrtc_offer(stack) -> None:
    """A browser phone's signalling (SIP over a secure WebSocket) registers with digest auth; a worker's
    offer reaches it over that WebSocket with a WebRTC SDP from rtpengine (DTLS-SRTP fingerprint, ICE
    candidates, RTCP mux) made from the worker's plain RTP/AVP offer; refused, the offer counts a miss."""
    w, edge, _ = stack
    ws = WsSip(edge)
    try:
        assert " 101 " in ws.handshake.split("\r\n", 1)[0], ws.handshake
        assert ws.register("1002", PASSWORDS["1002"]) == "SIP/2.0 200 OK"
        dump = edge.kamcmd("ul.dump")
        assert re.search(r"AoR: 1002\b", dump) and ws.host in dump, dump
        w.login("1002")
        st, _ = w.http("POST", "/agents/1002/ready")       # paused no_phone by the test before: a phone now
        assert st == 200
        caller = sipp.caller(edge.address, [("pause", 600), ("dtmf", "2"), ("pause", 800), ("dtmf", "2"),
                                            ("pause", 5000), ("hangup",)], number="0903000502")
        deadline = time.monotonic() + 20
        invite = ""
        while not invite.startswith("INVITE ") and time.monotonic() < deadline:
            invite = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        assert invite.startswith("INVITE "), invite
        ws.reply(invite, "100 Trying")
        assert "m=audio" in invite and "UDP/TLS/RTP/SAVPF" in invite, invite
        for line in ("a=fingerprint:", "a=ice-ufrag:", "a=candidate:", "a=rtcp-mux", "a=setup:"):
            assert line in invite, (line, invite)
        assert "RTP/AVP " not in invite
        ws.reply(invite, "486 Busy Here")
        assert sipp.wait_all(caller, timeout=30) == [0], caller.errors() + edge.tail()
    finally:
        ws.close()


def test_an_offer_rings_every_phone_the_agent_registered(stack, tmp_path: Path) -> None:
    """Agent 1001 on two phones at once, a TLS desk phone (SRTP) and a browser (WSS): the worker's one offer
    reaches both, each in its own media profile (rtpengine keeps one branch per phone); the desk phone
    answers, the browser's ringing is cancelled, and the caller hears the desk phone."""
    w, edge, _ = stack
    try:
        sniffer = tones.Sniffer(set())
    except PermissionError:
        pytest.skip("watching the loopback interface needs root (CAP_NET_RAW)")
    phone = Softphone(tmp_path, "1001", PASSWORDS["1001"], edge, tls=True).start()
    ws = WsSip(edge)
    try:
        phone.registered()
        assert ws.register("1001", PASSWORDS["1001"]) == "SIP/2.0 200 OK"
        assert edge.kamcmd("ul.dump").count("Contact: ") >= 2
        w.login("1001")
        steps = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "1"), ("pause", 10000), ("hangup",)]
        caller = sipp.caller(edge.address, steps, number="0903000503")
        sniffer.watch(caller.media_port)
        invite = ws.recv(timeout=20)
        assert invite.startswith("INVITE ") and "UDP/TLS/RTP/SAVPF" in invite, invite
        ws.reply(invite, "180 Ringing")
        phone.wait_for(r"Call established", timeout=15)
        answered = time.monotonic()
        cancel = ws.recv(timeout=10)
        assert cancel.startswith("CANCEL "), cancel
        ws.reply(cancel, "200 OK")
        ws.reply(invite, "487 Request Terminated")
        assert sipp.wait_all(caller, timeout=40) == [0], caller.errors() + "\n" + edge.tail()
        assert "SRTP is Enabled" in phone.text()
    finally:
        ws.close()
        phone.stop()
        sniffer.close()
    assert tones.detect(sniffer.pcm(caller.media_port, answered + 1.0, answered + 5.0), [AGENT_HZ, CALLER_HZ]) \
        == {AGENT_HZ}
    cdr = w.call_from("0903000503")
    assert cdr.agent_id == "1001" and cdr.outcome == "answered", cdr


# A browser's WebRTC answer to the offer the edge sent over the WebSocket: an oscillator's tone as its
# microphone; the caller's audio read from the received track (MediaStreamTrackProcessor; Chromium decodes a
# remote track only while something plays it: an <audio> element does).
ANSWER_JS = """
const [offer, hz, done] = arguments;
(async () => {
  const ctx = new AudioContext();
  const osc = ctx.createOscillator(), gain = ctx.createGain(), mic = ctx.createMediaStreamDestination();
  osc.frequency.value = hz; gain.gain.value = 0.3;
  osc.connect(gain).connect(mic); osc.start();
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  pc.addTrack(mic.stream.getAudioTracks()[0], mic.stream);
  pc.ontrack = (e) => {
    // the decoded audio of the caller, frame by frame (the last second or so is kept)
    const heard = window.heard = {rate: 48000, chunks: [], errors: []};
    const el = new Audio(); el.srcObject = e.streams[0] || new MediaStream([e.track]);
    el.play().catch((err) => heard.errors.push('play ' + err));
    const reader = new MediaStreamTrackProcessor({track: e.track}).readable.getReader();
    (async () => {
      for (;;) {
        const {value, done} = await reader.read();
        if (done) return;
        const buf = new Float32Array(value.numberOfFrames);
        value.copyTo(buf, {planeIndex: 0, format: 'f32-planar'});
        heard.rate = value.sampleRate;
        heard.chunks.push(buf);
        if (heard.chunks.length > 100) heard.chunks.shift();
        value.close();
      }
    })().catch((err) => heard.errors.push('read ' + err));
  };
  await pc.setRemoteDescription({type: 'offer', sdp: offer});
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((resolve) => {
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
    if (pc.iceGatheringState === 'complete') resolve();
    setTimeout(resolve, 3000);
  });
  return pc.localDescription.sdp;
})().then(done, (e) => done('ERROR ' + e));
"""
HEARD_JS = """
const h = window.heard, out = [];
for (const c of h.chunks) for (const x of c) out.push(x);
return [h.rate, out, h.errors];
"""
STATS_JS = """
const done = arguments[0];
window.pc.getStats().then((stats) => {
  const out = {state: window.pc.connectionState};
  stats.forEach((s) => {
    if (s.type === 'transport') { out.dtls = s.dtlsState; out.srtp = s.srtpCipher; }
    if (s.type === 'inbound-rtp' && s.kind === 'audio') { out.received = s.packetsReceived; out.energy = s.totalAudioEnergy; }
    if (s.type === 'outbound-rtp' && s.kind === 'audio') out.sent = s.packetsSent;
  });
  done(out);
});
"""
BROWSER_HZ = 700.0


def test_a_browser_answers_over_wss_with_dtls_srtp_and_both_sides_hear_each_other(stack) -> None:
    """The WSS edge with a real WebRTC stack: headless Chromium answers the offer 1002's browser phone got
    over the secure WebSocket (the SIP is spoken by the test, the media by the browser: ICE and DTLS-SRTP with
    rtpengine, which turns it into the worker's plain RTP). The caller hears the browser's 700 Hz, the browser
    the caller's 1300 Hz; the browser's stats show DTLS connected and an SRTP cipher."""
    from browser import Browser, missing_reason

    if missing_reason():
        pytest.skip(missing_reason() or "")
    w, edge, _ = stack
    try:
        sniffer = tones.Sniffer(set())
    except PermissionError:
        pytest.skip("watching the loopback interface needs root (CAP_NET_RAW)")
    chrome = Browser("edge-webrtc", flags=("--autoplay-policy=no-user-gesture-required",
                                           "--allow-loopback-in-peer-connection",
                                           "--disable-features=WebRtcHideLocalIpsWithMdns"))
    ws = WsSip(edge)
    try:
        chrome.get("about:blank")
        assert ws.register("1002", PASSWORDS["1002"]) == "SIP/2.0 200 OK"
        w.login("1002")
        w.http("POST", "/agents/1002/ready")
        steps = [("pause", 600), ("dtmf", "2"), ("pause", 800), ("dtmf", "2"), ("tone", CALLER_HZ, 20000),
                 ("pause", 12000), ("hangup",)]
        caller = sipp.caller(edge.address, steps, number="0903000505")
        sniffer.watch(caller.media_port)
        invite = ws.recv(timeout=20)
        assert invite.startswith("INVITE ") and "UDP/TLS/RTP/SAVPF" in invite, invite
        tag = uuid.uuid4().hex[:8]
        ws.reply(invite, "180 Ringing", tag)
        chrome.driver.set_script_timeout(15)
        answer = chrome.driver.execute_async_script(ANSWER_JS, invite.split("\r\n\r\n", 1)[1], BROWSER_HZ)
        assert answer.startswith("v=0"), answer
        ws.reply(invite, "200 OK", tag, sdp=answer)
        stats = chrome.wait(lambda: (s := chrome.driver.execute_async_script(STATS_JS))["state"] == "connected"
                            and s, 15, "the browser's peer connection never connected")
        answered = time.monotonic()
        time.sleep(4)
        rate, samples, errors = chrome.driver.execute_script(HEARD_JS)
        stats = chrome.driver.execute_async_script(STATS_JS)
        bye = ""
        while not bye.startswith("BYE "):
            bye = ws.recv(timeout=30)
        ws.reply(bye, "200 OK")
        assert sipp.wait_all(caller, timeout=30) == [0], caller.errors() + edge.tail()
    finally:
        ws.close()
        chrome.close()
        sniffer.close()
    assert stats["dtls"] == "connected" and stats["srtp"], stats
    assert stats["received"] > 100 and stats["sent"] > 100, stats
    pcm = [int(x * 32767) for x in samples[::int(rate) // tones.RATE]]
    assert len(pcm) >= 3200 and tones.detect(pcm, [BROWSER_HZ, CALLER_HZ]) == {CALLER_HZ}, (len(pcm), errors)
    assert tones.detect(sniffer.pcm(caller.media_port, answered + 0.5, answered + 4.0), [BROWSER_HZ, CALLER_HZ]) \
        == {BROWSER_HZ}
    cdr = w.call_from("0903000505")
    assert cdr.agent_id == "1002" and cdr.outcome == "answered", cdr


def test_a_phone_behind_nat_is_reached_where_it_registered_from_and_its_media_anchored(stack) -> None:
    """A LAN phone behind a home router registers a private Contact (192.168.1.50:5060) from its router's
    address: the edge keeps the address the REGISTER came from, the worker's offer is sent there (not to the
    private Contact), and its SDP names rtpengine (the phone's media goes through the edge) in plain RTP/AVP."""
    w, edge, rtp = stack
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    try:
        assert register(edge.port, "1001", PASSWORDS["1001"], "sip:1001@192.168.1.50:5060", sock=phone) \
            == ["SIP/2.0 200 OK"]
        w.logout("1002")                                # sales: 1001 alone
        w.login("1001")
        w.http("POST", "/agents/1001/ready")
        caller = sipp.caller(edge.address, [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "1"),
                                            ("pause", 6000), ("hangup",)], number="0903000506")
        phone.settimeout(20)
        invite = ""
        while not invite.startswith("INVITE "):
            invite = phone.recvfrom(65535)[0].decode(errors="replace")
        phone.sendto(sip_response(invite, "486 Busy Here").encode(), ("127.0.0.1", edge.port))
        assert sipp.wait_all(caller, timeout=30) == [0], caller.errors()
    finally:
        phone.close()
    assert invite.startswith("INVITE sip:1001@192.168.1.50:5060"), invite[:300]
    media = re.search(r"^m=audio (\d+) RTP/AVP ", invite, re.M)
    assert media and int(media.group(1)) in rtp.media_ports and "c=IN IP4 127.0.0.1" in invite, invite
    assert w.http("POST", "/agents/1001/ready")[0] == 200      # the 486 counted a miss: ready for the next test


def test_kamailio_cli_writes_the_encrypted_edge_defines(tmp_path: Path) -> None:
    base, out = kamailio_cli(tmp_path)
    assert cli_main(base) == 0
    assert "#!define" not in (out / "encryption.cfg").read_text()       # plain SIP, media untouched
    assert cli_main([*base, "--rtpengine", "udp:127.0.0.1:2223", "--self-signed", "edge.example.com",
                     "--wss-port", "7443"]) == 0
    defines = (out / "encryption.cfg").read_text()
    assert '#!define RTPENGINE "udp:127.0.0.1:2223"' in defines and "#!define WITH_TLS" in defines
    assert f'#!define TLS_CERT "{out / "edge.crt"}"' in defines and "#!define WSS_PORT 7443" in defines
    assert (out / "edge.key").stat().st_mode & 0o077 == 0
    assert "DNS:edge.example.com" in subprocess.run(["openssl", "x509", "-in", str(out / "edge.crt"), "-noout",
                                                     "-ext", "subjectAltName"], capture_output=True, text=True).stdout
    # TLS without rtpengine (its SRTP would go nowhere), a key without a certificate: refused
    assert cli_main([*base, "--tls-cert", str(out / "edge.crt"), "--tls-key", str(out / "edge.key")]) == 2
    assert cli_main([*base, "--rtpengine", "udp:127.0.0.1:2223", "--tls-key", str(out / "edge.key")]) == 2
    assert cli_main([*base, "--rtpengine", "127.0.0.1"]) == 2
