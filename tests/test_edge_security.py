"""The SIP edge under attack: Kamailio with deploy/kamailio/kamailio.cfg in front of a worker stand-in
(sipp answering every INVITE and tracing what reaches it), attacked from other loopback addresses
(127.0.0.x: the edge sees each as another source): forged in-dialog requests, forged
P-Asserted-Identity, sipvicious scanning and cracking, an INVITE flood next to legitimate callers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import ports
import pytest
import sipp
from edge_proc import (
    Edge,
    callers,
    kamailio_cli,
    options_from,
    register,
    sip_burst,
    sip_exchange,
    sipvicious,
    successful_calls,
)

from callcenter import edge as edge_tables
from callcenter.cli import main as cli_main

pytestmark = pytest.mark.skipif(shutil.which("kamailio") is None and not Path("/usr/sbin/kamailio").exists()
                                or shutil.which("sipp") is None or shutil.which("kamcmd") is None,
                                reason="kamailio and sipp come with ./scripts/setup.sh --test")

PASSWORDS = {"1001": "s3cret-1001", "1002": "s3cret-1002"}
TRUNK = "127.0.0.20"
AUTH_FAILURES = 4     # not the default (5): the cracker test shows the edge read its limits.cfg


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Edge, sipp.Sipp]]:
    tmp = tmp_path_factory.mktemp("edge-security")
    uas = sipp.worker_standin()
    time.sleep(0.3)
    assert uas.proc.poll() is None, uas.errors()
    limits = edge_tables.Limits(auth_failures=AUTH_FAILURES)
    e = Edge(tmp, ports.port(), PASSWORDS, [f"127.0.0.1:{uas.port}"], trunks=[TRUNK],
             limits=limits).start()
    yield e, uas
    e.stop()
    uas.stop()


def banned(e: Edge, ip: str) -> bool:
    return ip in e.kamcmd("htable.dump", "ipban")


def _in_dialog(method: str, edge_port: int, uas_port: int, call_id: str) -> str:
    """A request for a dialog the edge never saw: To-tag, and a Route naming the edge as a real
    record-routed dialog would (with made-up dialog ids)."""
    body = ("v=0\r\no=x 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"
            if method == "INVITE" else "")
    return (f"{method} sip:worker@127.0.0.1:{uas_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {{ip}}:{{lport}};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"Route: <sip:127.0.0.1:{edge_port};lr;ftag=f00d;did=a1b.c2d>\r\n"
            f"From: <sip:0903000001@{{ip}}>;tag=f00d\r\nTo: <sip:hotline@127.0.0.1>;tag=beef\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 7 {method}\r\nContact: <sip:0903000001@{{ip}}:{{lport}}>\r\n"
            f"Max-Forwards: 70\r\n" + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body.replace('{ip}', '127.0.0.5'))}\r\n\r\n{body}")


def _status(answers: list[str]) -> list[str]:
    return [a.split("\r\n", 1)[0] for a in answers]


def test_forged_in_dialog_requests_are_refused_and_never_reach_a_worker(edge) -> None:
    e, uas = edge
    forged = {m: f"forged-{m.lower()}-{uuid.uuid4().hex}" for m in ("BYE", "INVITE", "ACK")}
    for method, call_id in forged.items():
        answers = _status(sip_exchange("127.0.0.5", e.port, _in_dialog(method, e.port, uas.port, call_id)))
        if method == "ACK":
            assert answers == []                   # an ACK is never answered; it is just not relayed
        else:
            assert answers and all(" 481 " in a for a in answers), answers
    # a real dialog from the same address still flows: INVITE, ACK and BYE through the edge
    real = callers("127.0.0.5", e.address, rate=1, calls=1, talk_ms=300)
    assert sipp.wait_all(real, timeout=30) == [0], real.errors()
    time.sleep(0.5)
    seen = uas.messages()
    for call_id in forged.values():
        assert call_id not in seen, f"{call_id} reached the worker"
    assert re.search(r"BYE sip:worker@127\.0\.0\.1", seen)


def test_a_caller_s_own_dialog_reaches_its_worker_and_nowhere_else(edge) -> None:
    """A real call, then an in-dialog request whose Request-URI names another host (an agent's phone,
    a trunk that trusts the edge): refused, and the other host hears nothing; the call still ends."""
    e, _ = edge
    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    victim.bind(("127.0.0.1", 0))
    victim.settimeout(0.5)
    try:
        info = ("info", "1", 403, f"sip:0900000000@127.0.0.1:{victim.getsockname()[1]}")
        call = sipp.caller(e.address, [("pause", 200), info, ("hangup",)], number="0903000003", timeout_s=30,
                           local_ip="127.0.0.14")
        assert sipp.wait_all(call, timeout=40) == [0], call.errors()
        with pytest.raises(TimeoutError):
            victim.recvfrom(65535)
    finally:
        victim.close()


def test_caller_p_asserted_identity_is_stripped_unless_from_a_trunk(edge) -> None:
    e, uas = edge
    ids = {}
    for ip in ("127.0.0.12", TRUNK):
        ids[ip] = call_id = f"pai-{uuid.uuid4().hex}"
        invite = (f"INVITE sip:hotline@127.0.0.1:{e.port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP {{ip}}:{{lport}};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                  f"From: <sip:0903000002@{{ip}}>;tag=abc\r\nTo: <sip:hotline@127.0.0.1>\r\n"
                  f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:0903000002@{{ip}}:{{lport}}>\r\n"
                  f"P-Asserted-Identity: <sip:0900000000@{{ip}}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        assert any(" 200 " in a for a in _status(sip_exchange(ip, e.port, invite, timeout=1.5)))
    time.sleep(0.3)
    seen = uas.messages()
    invites = {ip: next(m for m in seen.split("----------") if call_id in m and "INVITE sip:" in m)
               for ip, call_id in ids.items()}
    assert "P-Asserted-Identity" not in invites["127.0.0.12"]
    assert "P-Asserted-Identity: <sip:0900000000@127.0.0.20>" in invites[TRUNK]


def test_trunks_are_never_banned(edge) -> None:
    """A trunk carries many callers from one address: over every per-address rate, still served."""
    e, _ = edge
    sip_burst(TRUNK, e.port, [                          # INVITE_RATE is 10 a second
        f"INVITE sip:hotline@127.0.0.1:{e.port} SIP/2.0\r\nVia: SIP/2.0/UDP {{ip}}:{{lport}};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
        f"From: <sip:09030001{n:02d}@{{ip}}>;tag=t{n}\r\nTo: <sip:hotline@127.0.0.1>\r\n"
        f"Call-ID: trunk-{uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:09030001{n:02d}@{{ip}}:{{lport}}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        for n in range(25)])
    time.sleep(0.5)
    assert not banned(e, TRUNK)
    assert options_from(TRUNK, e.port) == "SIP/2.0 200 OK"


def _options(port: int) -> str:
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {{ip}}:{{lport}};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"From: <sip:probe@{{ip}}>;tag={uuid.uuid4().hex[:8]}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def _register(user: str) -> str:
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{ip}}:{{lport}};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"From: <sip:{user}@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\nTo: <sip:{user}@127.0.0.1>\r\n"
            f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{{ip}}:{{lport}}>\r\n"
            "Expires: 60\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def _shape(answer: str) -> tuple[str, list[str], str]:
    """What an answer tells: its status, its header names, its challenge without the nonce."""
    lines = answer.split("\r\n\r\n", 1)[0].split("\r\n")
    challenge = next((ln for ln in lines if ln.lower().startswith("www-authenticate")), "")
    return lines[0], sorted(ln.split(":", 1)[0].lower() for ln in lines[1:]), re.sub(r'nonce="[^"]*"', "", challenge)


def test_scanners_get_silence_and_cannot_tell_agents_apart(edge) -> None:
    e, _ = edge
    target = ["-p", str(e.port), "127.0.0.1"]
    # sipvicious as shipped (User-Agent friendly-scanner): no answer at all, and banned
    out = sipvicious("svwar", "127.0.0.6", ["-e", "1000-1003,9999", "--maximumtime", "3", *target])
    assert "exists" not in out and "timed out" in out and "found nothing" in out, out
    assert options_from("127.0.0.6", e.port) is None and banned(e, "127.0.0.6")
    # other scanners, whatever the case of their name
    answers = sip_exchange("127.0.0.15", e.port, _register("1001").replace("Expires:", "User-Agent: SIPCLI/v1.8\r\nExpires:"))
    assert answers == [] and banned(e, "127.0.0.15")
    # with its name hidden: every extension gets the same 401 challenge, so svwar finds nothing
    out = sipvicious("svwar", "127.0.0.7", ["--force", "-e", "1000-1003,9999", "--maximumtime", "3", *target],
                     user_agent="Zoiper rv2.10")
    assert "exists" not in out and "1001" not in out, out
    # the answers an agent and a non-agent get differ only by the nonce
    agent, nobody = (sip_exchange("127.0.0.8", e.port, _register(u)) for u in ("1001", "9999"))
    assert len(agent) == len(nobody) == 1
    assert _shape(agent[0]) == _shape(nobody[0])
    status, _, challenge = _shape(agent[0])
    assert status == "SIP/2.0 401 Unauthorized" and 'qop="auth"' in challenge, agent[0]
    # an INVITE for an agent is a call like any other: the same worker answers both
    finals = []
    for user in ("1001", "9999"):
        invite = (f"INVITE sip:{user}@127.0.0.1:{e.port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP {{ip}}:{{lport}};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                  f"From: <sip:0903000004@{{ip}}>;tag=x{user}\r\nTo: <sip:{user}@127.0.0.1>\r\n"
                  f"Call-ID: enum-{uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\nContact: <sip:0903000004@{{ip}}:{{lport}}>\r\n"
                  "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        finals.append([a for a in _status(sip_exchange("127.0.0.8", e.port, invite)) if " 100 " not in a][:1])
    assert finals[0] == finals[1] == ["SIP/2.0 200 OK"], finals
    pings = [_status(sip_exchange("127.0.0.8", e.port, _options(e.port).replace("OPTIONS sip:", f"OPTIONS sip:{u}@", 1)))
             for u in ("1001", "9999")]
    assert pings[0] == pings[1] == ["SIP/2.0 200 OK"], pings
    assert options_from("127.0.0.8", e.port) == "SIP/2.0 200 OK"


def test_a_digest_answer_works_once(edge) -> None:
    """qop=auth with nonce counts: a sniffed REGISTER answer replayed as is gets a fresh challenge."""
    e, _ = edge
    first, replayed = register(e.port, "1002", PASSWORDS["1002"], "sip:1002@127.0.0.1:9", ip="127.0.0.18", replays=1)
    assert first == "SIP/2.0 200 OK" and replayed == "SIP/2.0 401 Unauthorized"
    assert not banned(e, "127.0.0.18")           # a stale answer is not a wrong password


def test_flooding_requests_or_registers_gets_an_address_banned(edge) -> None:
    e, _ = edge
    sip_burst("127.0.0.16", e.port, [_register("1001") for _ in range(15)])     # REGISTER_RATE is 10 a second
    sip_burst("127.0.0.17", e.port, [_options(e.port) for _ in range(80)])      # PIKE_DENSITY: 60 per 2 s
    time.sleep(0.5)
    log = e.log.read_text(errors="replace")
    assert "banned 127.0.0.16 (REGISTER rate)" in log and "banned 127.0.0.17 (request rate)" in log, log[-2000:]
    assert options_from("127.0.0.16", e.port) is None and options_from("127.0.0.17", e.port) is None


def test_password_cracker_is_banned_after_a_few_failures(edge, tmp_path: Path) -> None:
    e, _ = edge
    words = tmp_path / "passwords.txt"
    # the right password comes after AUTH_FAILURES wrong ones: only the ban keeps it from being found
    words.write_text("\n".join([f"wrong-{n}" for n in range(AUTH_FAILURES + 3)] + [PASSWORDS["1001"]]) + "\n")
    target = ["-p", str(e.port), "127.0.0.1"]
    out = sipvicious("svcrack", "127.0.0.9", ["-u", "1001", "-d", str(words), "--maximumtime", "3", *target])
    assert PASSWORDS["1001"] not in out and "found nothing" in out, out
    out = sipvicious("svcrack", "127.0.0.10", ["-u", "1001", "-d", str(words), "--maximumtime", "3",
                                 "-t", "0.1", *target], user_agent="Linphone/5.2")
    assert PASSWORDS["1001"] not in out and "found nothing" in out, out
    assert banned(e, "127.0.0.10")
    log = e.log.read_text(errors="replace")
    assert len(re.findall(r"authentication failure \d+ from 127\.0\.0\.10\b", log)) == AUTH_FAILURES, log[-3000:]
    assert "banned 127.0.0.10 (authentication failures)" in log
    assert options_from("127.0.0.10", e.port) is None             # the cracker's address: silence
    assert options_from("127.0.0.11", e.port) == "SIP/2.0 200 OK"  # anyone else: served


def test_invite_flood_is_banned_while_legitimate_callers_are_served(edge) -> None:
    """500 INVITEs/s for 30 s from 127.0.0.2 while 127.0.0.3 places 5 calls/s through the edge."""
    e, uas = edge
    flood = sipp.flooder("127.0.0.2", e.address, rate=500, seconds=30)
    legit = callers("127.0.0.3", e.address, rate=5, calls=150, talk_ms=1000)
    try:
        sipp.wait_all(legit, flood, timeout=80)
    finally:
        flood.stop()
        legit.stop()
    served = successful_calls(legit)
    assert served >= 149, f"{served}/150 legitimate calls served\n{legit.errors()}\n{e.tail()}"
    assert banned(e, "127.0.0.2") and not banned(e, "127.0.0.3")
    # the flood was cut at the edge: a handful of its INVITEs before the ban, none after
    assert uas.messages().count("From: <sip:flood@") < 50


def test_kamailio_cli_writes_trusted_trunks(tmp_path: Path) -> None:
    base, out = kamailio_cli(tmp_path)
    assert cli_main([*base, "--trunk", "10.0.0.9", "--trunk", "trunk.example.net:5080"]) == 0
    assert (out / "dispatcher.list").read_text().splitlines()[1:] == [
        "1 sip:10.0.0.5:5060", "2 sip:10.0.0.9 4", "2 sip:trunk.example.net:5080 4"]
    assert (out / "limits.cfg").read_text().count("#!define") == 7     # every limit, defaults included
    assert cli_main([*base, "--invite-rate", "25", "--ban-seconds", "3600"]) == 0
    limits = (out / "limits.cfg").read_text()
    assert "#!define INVITE_RATE 25\n" in limits and "#!define BAN_SECONDS 3600\n" in limits
    assert cli_main([*base, "--invite-rate", "0"]) == 2
    assert cli_main([*base, "--trunk", "10.0.0.9:99999"]) == 2
    assert cli_main([*base, "--trunk", "not a host"]) == 2


def test_calls_up_through_a_restarted_edge_still_end(edge) -> None:
    """Kamailio keeps its dialogs in memory: after a crash and a restart the edge no longer knows the calls it
    set up, yet their in-dialog requests (the callers' BYEs here) are relayed, since they carry the edge's
    signed Record-Route (callcenter/dialogs.cfg); a forged one still gets 481 (the test above)."""
    e, uas = edge
    assert e.proc is not None
    acked = uas.messages().count("ACK sip:")
    run = callers("127.0.0.31", e.address, rate=5, calls=5, talk_ms=5000)
    deadline = time.monotonic() + 10
    while uas.messages().count("ACK sip:") < acked + 5 and time.monotonic() < deadline:   # all five set up
        time.sleep(0.2)
    os.killpg(e.proc.pid, signal.SIGKILL)
    e.proc.wait()
    e.start()
    assert sipp.wait_all(run, timeout=60) == [0], run.errors() + e.tail()
    assert successful_calls(run) == 5
    assert "no longer tracks (restarted): signed, relayed" in e.tail(400)
