"""The agent desktop's browser phone (callcenter/console/static/phone.js, JsSIP) in headless Chromium against a
real worker, real Kamailio (WSS) and real rtpengine (DTLS-SRTP/ICE to the browser, plain RTP to the worker).

The browser's microphone is a tone WAV made here (Chromium's fake capture device plays it); the caller is sipp
sending its own tone. Nothing of the SIP is spoken by the test: the page gets its credentials from
GET /agents/1002/phone, registers, rings and is answered by the agent's click."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import ports
import pytest
import sipp
import tones
from edge_proc import BARESIP_MODULES, Edge, Rtpengine, edge_rules
from test_console_call_sip import ready_at_desk
from worker_proc import WorkerProc, api_user, flush, new_worker

from callcenter import edge as edge_mod
from callcenter.auth.roles import AGENT, SUPERVISOR

if TYPE_CHECKING:
    from browser import Browser

pytestmark = [pytest.mark.sip, pytest.mark.timeout(300), pytest.mark.skipif(
    not (shutil.which("kamailio") or Path("/usr/sbin/kamailio").exists()) or shutil.which("rtpengine") is None
    or not (BARESIP_MODULES / "srtp.so").exists()
    or not Path("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so").exists(),
    reason="kamailio with its tls and websocket modules and rtpengine-daemon come with ./scripts/setup.sh --test")]

PASSWORDS = {"1001": "s3cret-1001", "1002": "s3cret-1002"}
BROWSER_HZ = 700.0
CALLER_HZ = 1300.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[tuple[WorkerProc, Edge]]:
    tmp = tmp_path_factory.mktemp("browser-phone")
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url, worker_id="phone-w1")
    edge_port = ports.port()
    rtp = Rtpengine(tmp).start()
    edge = Edge(tmp, edge_port, PASSWORDS, [w.target], rtpengine=rtp)
    creds = tmp / "sip-credentials.yaml"          # the edge's credentials file, which the worker reads too
    creds.write_text("".join(f'"{agent}": "{pw}"\n' for agent, pw in PASSWORDS.items()))
    w.write_config(rules=edge_rules(tmp, edge_port),
                   extra=f'phone: {{ws_url: "wss://127.0.0.1:{edge.wss_port}", credentials: "{creds}"}}\n')
    edge.start()
    w.start()
    api_user(w.redis_url, "binh", [AGENT], agent="1002")
    yield w, edge
    edge.stop()
    rtp.stop()
    assert w.stop() == 0, w.tail()


def test_the_credentials_route_gives_an_agent_its_own_ha1_only(stack) -> None:
    """GET /agents/{id}/phone: the agent itself gets the edge's WSS URL, its SIP URI and its HA1 (never the
    password); another agent's, a supervisor's or an anonymous request is refused."""
    w, edge = stack
    token = api_user(w.redis_url, "binh", [AGENT], agent="1002")
    st, reg = w.http("GET", "/agents/1002/phone", token=token)
    assert st == 200, reg
    assert reg == {"ws_url": f"wss://127.0.0.1:{edge.wss_port}", "uri": "sip:1002@127.0.0.1", "user": "1002",
                   "realm": edge_mod.REALM, "ha1": edge_mod.ha1("1002", PASSWORDS["1002"])}
    assert PASSWORDS["1002"] not in str(reg)
    assert w.http("GET", "/agents/1001/phone", token=token)[0] == 403
    assert w.http("GET", "/agents/1002/phone", token=api_user(w.redis_url, "sup", [SUPERVISOR]))[0] == 403
    assert w.http("GET", "/agents/1002/phone", token=None)[0] == 401
    assert PASSWORDS["1002"] not in w.tail(10000) and reg["ha1"] not in w.tail(10000)


# The caller's audio as the page's phone receives it, measured in the page: an AnalyserNode (FFT) on the
# phone's remote track, each frequency's level in dB averaged over ten readings 200 ms apart.
SPECTRUM_JS = """
const [freqs, done] = arguments;
const ctx = new AudioContext();
const analyser = ctx.createAnalyser();
analyser.fftSize = 8192;
analyser.smoothingTimeConstant = 0;
ctx.createMediaStreamSource(new MediaStream([window.ccPhone.remote])).connect(analyser);
const bins = new Float32Array(analyser.frequencyBinCount), sums = freqs.map(() => 0);
let n = 0;
const timer = setInterval(() => {
  analyser.getFloatFrequencyData(bins);
  freqs.forEach((hz, i) => { sums[i] += bins[Math.round(hz * analyser.fftSize / ctx.sampleRate)]; });
  if (++n === 10) { clearInterval(timer); ctx.close(); done(sums.map((s) => s / n)); }
}, 200);
"""
STATS_JS = """
const done = arguments[0];
window.ccPhone.session.connection.getStats().then((stats) => {
  const out = {};
  stats.forEach((s) => {
    if (s.type === 'transport') { out.dtls = s.dtlsState; out.srtp = s.srtpCipher; }
    if (s.type === 'inbound-rtp' && s.kind === 'audio') out.received = s.packetsReceived;
    if (s.type === 'outbound-rtp' && s.kind === 'audio') out.sent = s.packetsSent;
  });
  done(out);
});
"""


def _contact(edge: Edge, agent: str) -> str:
    """The agent's binding in the edge's location table (its Contact and the address it came from)."""
    dump = edge.kamcmd("ul.dump")
    block = re.search(rf"AoR: {agent}\b(.*?)(?=AoR: |\Z)", dump, re.S)
    return block.group(1) if block else ""


def _connection(binding: str) -> str:
    """Where a binding's REGISTER came from: its source address and the edge's TCP connection id."""
    return " ".join(re.findall(r"(?:Received|Tcpconn-Id): (\S+)", binding))


def _drop_and_register_again(chrome: Browser, edge: Edge) -> None:
    """Kill the page's WebSocket at the edge (ss -K on the WSS port): the page shows the loss or is already
    back, registers again, and the edge holds a new binding from a new connection."""
    phone = chrome.find("#phone")
    before = _connection(_contact(edge, "1002"))
    killed = subprocess.run(["ss", "-K", "dst", "127.0.0.1", "sport", "=", f":{edge.wss_port}"],
                            capture_output=True, text=True, check=False)
    assert f":{edge.wss_port}" in killed.stdout, killed.stdout + killed.stderr
    chrome.wait(lambda: phone.get_attribute("data-connection") == "disconnected"
                or _connection(_contact(edge, "1002")) != before, 15, "the drop was never seen")
    chrome.wait(lambda: phone.get_attribute("data-registration") == "registered"
                and phone.get_attribute("data-connection") == "connected", 30, "never registered again")
    chrome.wait(lambda: _connection(_contact(edge, "1002")) not in ("", before), 15,
                f"no new binding at the edge: {before} / {_contact(edge, '1002')}")


def test_the_browser_phone_takes_a_hotline_call_and_registers_again_after_a_dropped_websocket(
        stack, tmp_path: Path) -> None:
    """Agent 1002 signs in at its desk in Chromium (its microphone: a 700 Hz WAV); the page's phone registers
    at the edge over WSS by itself; a sipp caller (1300 Hz) dials the hotline, is queued to 1002, the page
    rings and the agent clicks Answer: the caller receives 700 Hz, the page's phone receives 1300 Hz (its
    decoded remote track), DTLS-SRTP connected; the CDR says answered by 1002. Then the WebSocket is killed
    (ss -K on the edge's WSS port): the page shows the loss, reconnects and registers again (a new binding
    at the edge, from a new connection), the agent is still ready; dropped again while paused, it stays paused
    (lunch); and the next call is answered by the phone itself (auto-answer chosen in the page)."""
    from browser import Browser, missing_reason

    if missing_reason():
        pytest.skip(missing_reason() or "")
    w, edge = stack
    try:
        sniffer = tones.Sniffer(set())
    except PermissionError:
        pytest.skip("watching the loopback interface needs root (CAP_NET_RAW)")
    mic = tones.write_tone_wav(tmp_path / "mic.wav", BROWSER_HZ, 30000)
    chrome = Browser("browser-phone", flags=(
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required",
        "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--ignore-certificate-errors"))
    try:
        ready_at_desk(w, chrome)
        phone = chrome.find("#phone")
        chrome.wait(lambda: phone.get_attribute("data-registration") == "registered", 20, "the phone never registered")
        assert chrome.text("#phone-connection") == "Connected" and chrome.text("#phone-registration") == "Registered"
        binding = _contact(edge, "1002")
        assert "transport=ws" in binding.lower() or "wss" in binding.lower(), binding
        chrome.shot("registered")

        steps = [("pause", 600), ("dtmf", "2"), ("pause", 800), ("dtmf", "2"), ("tone", CALLER_HZ, 20000),
                 ("pause", 12000), ("hangup",)]
        caller = sipp.caller(edge.address, steps, number="0903000601")
        sniffer.watch(caller.media_port)
        chrome.wait(lambda: phone.get_attribute("data-call") == "ringing", 20, "the phone never rang")
        assert chrome.text("#phone-call") == "Incoming call"
        chrome.shot("ringing")
        chrome.find("#phone-answer").click()
        chrome.wait(lambda: phone.get_attribute("data-call") == "talking", 15, "the call never connected")
        chrome.wait(lambda: chrome.driver.execute_script("return !!window.ccPhone.remote"), 10, "no remote track")
        chrome.driver.set_script_timeout(20)
        chrome.wait(lambda: (s := chrome.driver.execute_async_script(STATS_JS)).get("dtls") == "connected" and s,
                    15, "DTLS never connected")
        answered = time.monotonic()
        chrome.wait(lambda: float(chrome.find("#phone-mic").get_attribute("value") or 0) > 0.05, 10,
                    "the microphone's meter never moved")
        browser_db, caller_db = chrome.driver.execute_async_script(SPECTRUM_JS, [BROWSER_HZ, CALLER_HZ])
        stats = chrome.driver.execute_async_script(STATS_JS)
        chrome.shot("talking")
        assert sipp.wait_all(caller, timeout=60) == [0], caller.errors() + edge.tail()
        chrome.wait(lambda: phone.get_attribute("data-call") == "idle", 15, "the call never ended in the page")
        heard_by_caller = sniffer.pcm(caller.media_port, answered + 0.5, answered + 4.0)

        # the WebSocket dropped under the page: it says so, reconnects and registers again
        chrome.wait(lambda: w.http("GET", "/agents/1002")[1]["state"] == "available", 20, "1002 never ready again")
        _drop_and_register_again(chrome, edge)
        chrome.shot("registered-again")
        st, agent = w.http("GET", "/agents/1002")
        assert st == 200 and agent["state"] == "available", agent
        # a drop while paused: paused it stays, with its reason
        assert w.http("POST", "/agents/1002/pause", {"reason": "lunch"})[0] == 200
        _drop_and_register_again(chrome, edge)
        st, agent = w.http("GET", "/agents/1002")
        assert st == 200 and (agent["state"], agent["pause_reason"]) == ("paused", "lunch"), agent
        assert w.http("POST", "/agents/1002/ready")[0] == 200
        # and the phone takes the next call on the new connection, answered by itself this time
        chrome.find("#phone-auto").click()
        caller = sipp.caller(edge.address, [("pause", 600), ("dtmf", "2"), ("pause", 800), ("dtmf", "2"),
                                            ("pause", 8000), ("hangup",)], number="0903000602")
        chrome.wait(lambda: phone.get_attribute("data-call") == "talking", 30, "the next call was not auto-answered")
        assert sipp.wait_all(caller, timeout=60) == [0], caller.errors() + edge.tail()
        chrome.wait(lambda: phone.get_attribute("data-call") == "idle", 15, "the next call never ended in the page")
        chrome.expect(r"wss://127\.0\.0\.1:\d+/? .*(closed|failed)")       # JsSIP logs the lost socket
        assert not chrome.errors(), chrome.errors()
    finally:
        chrome.close()
        sniffer.close()
    assert stats["dtls"] == "connected" and stats["srtp"], stats
    assert stats["received"] > 100 and stats["sent"] > 100, stats
    assert caller_db > -60 and caller_db - browser_db > 20, (browser_db, caller_db)     # the caller's tone only
    assert tones.detect(heard_by_caller, [BROWSER_HZ, CALLER_HZ]) == {BROWSER_HZ}
    for number in ("0903000601", "0903000602"):
        cdr = w.call_from(number)
        assert cdr.agent_id == "1002" and cdr.outcome == "answered", cdr
