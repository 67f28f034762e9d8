"""tests/sipp.py's scenarios, without sipp: every combination the tests use is well-formed XML, and every
answer to a received request is the one `reply()` form."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sipp

STEPS = [("pause", 100), ("dtmf", "1"), ("info", "2"), ("info", "3", 403, "sip:x@127.0.0.1:9"), ("audio",),
         ("stream", "/tmp/speech.alaw"), ("refer", "sip:1002@127.0.0.1", 202), ("replaces", 403)]
ENDINGS = [("hangup",), ("wait_bye", 3000), ("referred", 20000)]


def answers(xml: str) -> list[str]:
    """The status lines of every response the scenario sends."""
    return re.findall(r"<!\[CDATA\[\n(SIP/2\.0 \d+ [^\n]+)", xml)


@pytest.mark.parametrize(("ending", "busy_ok"), list(itertools.product(ENDINGS, (False, True))))
def test_callers_are_well_formed(ending: tuple, busy_ok: bool) -> None:
    pcaps = [Path(f"/tmp/{n}.pcap") for n in range(3)]
    for xml in (sipp._caller_xml([*STEPS, ending], "0901", "8 0", 200, pcaps, ["X-Test: 1"], busy_ok, 4000),
                sipp._caller_xml([], "0901", "8 0", 486, busy_ok=busy_ok), sipp._caller_cancel_xml("0901", 300)):
        root = ET.fromstring(xml)
        assert root.tag == "scenario"


@pytest.mark.parametrize("mode", ["answer", "answer_bye", "noanswer", "486", "480", "603"])
@pytest.mark.parametrize("routed", [False, True])
def test_phones_are_well_formed_and_answer_as_phones_do(mode: str, routed: bool) -> None:
    xml = sipp._agent_xml(mode, 500, 1000, "8", greeting=mode == "answer", routed=routed)
    ET.fromstring(xml)
    assert answers(xml)[0] == "SIP/2.0 180 Ringing"
    for block in xml.split("<send")[1:]:
        if "SIP/2.0 180" in block or "SIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:];tag" in block:
            assert sipp.PHONE_CONTACT in block and ("[last_Record-Route:]" in block) == routed
    assert ("[routes]" in xml) == (routed and mode == "answer_bye")


def test_answer_only_some_numbers() -> None:
    xml = sipp._answer_only_xml("0915[0-9]+", 500)
    ET.fromstring(xml)
    assert answers(xml) == ["SIP/2.0 180 Ringing", "SIP/2.0 486 Busy Here", "SIP/2.0 200 OK", "SIP/2.0 200 OK"]


def test_reply_echoes_the_request_and_sets_only_what_it_is_given() -> None:
    assert sipp.reply(200, "OK") == ("<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n"
                                     "[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n")
    dialog = sipp.reply(200, "OK", tag="t1", headers=["Contact: <sip:a@b>"], body="v=0\n", retrans=True)
    assert dialog.startswith('<send retrans="500">') and "[last_To:];tag=t1\n" in dialog
    assert dialog.endswith("[last_CSeq:]\nContact: <sip:a@b>\nContent-Type: application/sdp\n"
                           "Content-Length: [len]\n\nv=0\n]]></send>\n")


def test_stand_in_and_flooder_are_well_formed() -> None:
    ET.fromstring(sipp._WORKER_UAS)
    ET.fromstring(sipp._FLOOD_INVITE)
    assert answers(sipp._WORKER_UAS) == ["SIP/2.0 200 OK"] * 3


def test_every_answer_is_built_by_reply() -> None:
    """No hand-written response block is left in sipp.py (nor anywhere else in tests/)."""
    for path in Path(__file__).parent.glob("*.py"):
        if path.name != Path(__file__).name:
            assert not re.search(r"CDATA\[\s*SIP/2\.0 \d", path.read_text()), path.name


def test_a_streaming_caller_loops_its_file_as_alaw_from_its_media_port() -> None:
    xml = sipp._caller_xml([("stream", "/tmp/speech.alaw"), ("hangup",)], "0901", "8 0", 200)
    actions = [e.get("rtp_stream") for e in ET.fromstring(xml).iter("exec")]
    assert actions == ["/tmp/speech.alaw,-1,8"]   # looped until the call ends, payload type 8 (PCMA)
    assert "m=audio [media_port] " in xml         # the port sipp's rtp_stream sends from


def test_read_pcap_rtp_reads_sipps_speech_capture(tmp_path: Path) -> None:
    from rtp_pcap import write_rtp_pcap
    from tones import read_pcap_rtp

    shipped = sipp.PCAP_DIR / "g711a.pcap"
    if shipped.exists():                           # sip-tester's capture: 7 s of a-law in 30 ms packets
        packets = read_pcap_rtp(shipped)
        assert len(packets) == 236 and {len(p) for _, p in packets} == {240} and {pt for pt, _ in packets} == {8}
    ours = write_rtp_pcap(tmp_path / "three.pcap", [bytes([n]) * 160 for n in range(3)], pt=8)
    assert read_pcap_rtp(ours) == [(8, bytes([n]) * 160) for n in range(3)]
    zeros = tmp_path / "zeros.pcap"
    zeros.write_bytes(bytes(24))
    with pytest.raises(ValueError, match="not a little-endian Ethernet pcap"):
        read_pcap_rtp(zeros)
