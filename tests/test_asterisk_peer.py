"""The Asterisk benchmark peer (bench/asterisk_peer.py): its rendered configs, and, when bench/asterisk/build.sh
has built Asterisk on this machine, real calls from the bench's own sipp callers through both scenarios."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import ports
import pytest
from repo import REPO

sys.path.insert(0, str(REPO / "bench"))
import asterisk_peer  # bench/ module
import sip_bench

BUILT = sorted((Path.home() / ".cache" / "callcenter" / "asterisk").glob("*/sbin/asterisk"))
needs_asterisk = pytest.mark.skipif(not BUILT, reason="bench/asterisk/build.sh has not built Asterisk here")


def test_configs_render_every_placeholder_and_every_agent(tmp_path: Path) -> None:
    peer = asterisk_peer.AsteriskPeer(Path("/opt/ast"), tmp_path / "run", "queue", 7000, 7001, agents=400, digits=3)
    peer.render()
    etc = tmp_path / "run" / "etc"
    for name in asterisk_peer.FILES:
        text = (etc / name).read_text()
        assert "@" not in text.replace("@127.0.0.1", ""), f"{name} keeps a placeholder"
    pjsip = (etc / "pjsip.conf").read_text()
    assert "bind = 127.0.0.1:7000" in pjsip and "context = queue" in pjsip
    assert pjsip.count("type = aor") == 400 and "contact = sip:3399@127.0.0.1:7001" in pjsip
    assert (etc / "queues.conf").read_text().count("member => PJSIP/") == 400
    assert "EXPECT = 3" in (etc / "extensions.conf").read_text()
    assert (tmp_path / "run" / "data" / "sounds" / "vi" / "hotline" / "welcome.wav").exists()


@pytest.fixture
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[asterisk_peer.AsteriskPeer]:
    sip_bench.raise_nofile()
    port = ports.block(2)        # its SIP port, and its agents' phones on the next
    p = asterisk_peer.AsteriskPeer(BUILT[-1].parent.parent, tmp_path / "ast", request.param, port, port + 1,
                                   agents=20)
    p.start()
    yield p
    p.stop()


@needs_asterisk
@pytest.mark.parametrize("peer", ["ivr"], indirect=True)
def test_ivr_loop_hears_every_digit_and_flags_a_short_count(peer: asterisk_peer.AsteriskPeer) -> None:
    """The bench's IVR callers (speech, a digit every ~6 s) are answered and every digit is counted;
    a call heard fewer digits than expected is logged as failed (what the bench counts)."""
    run, digits, _rate, total = sip_bench.ivr_callers(peer.target, 2, 6, 10)
    peer.cli(f"dialplan set global EXPECT {digits}")
    assert run.wait(total + 30) == 0, run.errors()
    assert peer.failed_calls() == 0, peer.tail()
    run, digits, _rate, total = sip_bench.ivr_callers(peer.target, 1, 6, 10)
    peer.cli(f"dialplan set global EXPECT {digits + 1}")
    assert run.wait(total + 30) == 0, run.errors()
    assert peer.failed_calls() == 1, peer.tail()


@needs_asterisk
@pytest.mark.parametrize("peer", ["queue"], indirect=True)
def test_queue_connects_every_caller_to_an_agent(peer: asterisk_peer.AsteriskPeer) -> None:
    """Callers press 1, 1 through welcome and language prompts into the queue; the one sipp UAS answers
    for the agents and hangs up; every caller gets the BYE and none is logged as unanswered."""
    run, phones = sip_bench.cps_callers(peer.target, peer.agents_port, 5, 2)
    try:
        assert run.wait(60) == 0, run.errors()      # sipp exits 0 only when all 10 calls succeeded
    finally:
        phones.stop()
    assert peer.failed_calls() == 0, peer.tail()
    assert "COMPLETEAGENT" in (peer.run / "log" / "queue_log").read_text()
