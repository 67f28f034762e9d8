"""sipp as a real SIP peer: callers (UAC), agent and customer phones (UAS), the worker stand-in and the
flooder of the edge's tests, every scenario built here from parameters (tests pass steps and options,
never XML).

A caller script is a list of steps:
    ("pause", ms)          wait, sending nothing
    ("dtmf", "1")          send one RFC 2833 digit (PT 101; pcaps made by rtp_pcap, fresh timestamps);
                           ("dtmf", "11"): keys 250 ms apart from one pcap, in order even when sipp stalls
    ("info", "1"[, code[, uri]])  send one digit as SIP INFO application/dtmf-relay, expect code (200),
                           to uri (default: the dialog's remote target)
    ("audio",)             play 4.7 s of G.711 A-law speech (sipp's g711a.pcap)
    ("tone", hz, ms[, pt]) start sending a pure tone for ms (G.711, pt 8 A-law by default; tests/tones.py),
                           going on while the next steps run
    ("hangup",)            send BYE (must be the last step)
    ("wait_bye", ms)       expect the far end to hang up within ms (must be the last step)
    ("referred", ms)       accept the far end's REFER within ms (202, NOTIFY with a 200 sipfrag), then
                           expect its BYE (must be the last step)
    ("refer", uri, code)   send an in-dialog REFER to uri, expect the final response code
    ("replaces", code)     send a new INVITE whose Replaces names this call's dialog, expect code
A phone answers (or not) every INVITE it gets the same way; see `agent()`. `reply()` is the one way a
scenario answers the request it just received.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import ports
from rtp_pcap import write_dtmf_pcaps
from tones import PCMA, write_tone_pcap

PCAP_DIR = Path("/usr/share/sip-tester")
PHONE_TAG = "[pid]SIPpTag01[call_number]"      # the To tag of a phone's answers
PHONE_EVENT_PT = 120       # telephone-event in the worker's offers (pjsua's): a phone that keys answers with it
PHONE_CONTACT = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>"

_SDP = """v=0
o=user1 53655765 {version} IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio {media_port} RTP/AVP {codecs} {event}
{rtpmaps}a=rtpmap:{event} telephone-event/8000
a=fmtp:{event} 0-16
a=ptime:20
{direction}"""


def sdp(codecs: str = "8 0", media_port: int | None = None, direction: str = "", version: int = 2353687637,
        event: int = 101) -> str:
    """An offer or answer with these payload types and telephone-event; media_port: advertise that port
    instead of sipp's own media port (its RTP then goes to whoever listens there); direction: an
    a=sendonly / a=inactive / a=sendrecv line (a re-INVITE's offer also needs a new version)."""
    names = {"0": "PCMU", "8": "PCMA", "18": "G729", "3": "GSM"}
    maps = "".join(f"a=rtpmap:{c} {names[c]}/8000\n" for c in codecs.split())
    return _SDP.format(codecs=codecs, rtpmaps=maps, media_port=media_port or "[media_port]", event=event,
                       direction=f"a={direction}\n" if direction else "", version=version)


def reply(code: int, reason: str, *, tag: str = "", headers: Iterable[str] = (), body: str | None = None,
          retrans: bool = False, cseq: str = "[last_CSeq:]") -> str:
    """A <send> answering the last request received (its Via, From, To, Call-ID and CSeq echoed).
    tag: this side's To tag, for an answer that makes a dialog; headers: lines after the CSeq;
    body: an SDP (Content-Type application/sdp); cseq: for an answer to an earlier request."""
    lines = ["[last_Via:]", "[last_From:]", f"[last_To:];tag={tag}" if tag else "[last_To:]", "[last_Call-ID:]",
             cseq, *headers]
    content = ("Content-Type: application/sdp\nContent-Length: [len]\n\n" + body) if body is not None \
        else "Content-Length: 0\n\n"
    attrs = ' retrans="500"' if retrans else ""
    head = "\n".join(lines)
    return f"<send{attrs}><![CDATA[\nSIP/2.0 {code} {reason}\n{head}\n{content}]]></send>\n"


def _phone_answer(code: int, reason: str, routed: bool = False, body: str | None = None,
                  retrans: bool = False) -> str:
    """A phone's answer to an INVITE: its To tag and Contact (and the proxy's Record-Route when routed)."""
    headers = ["[last_Record-Route:]", PHONE_CONTACT] if routed else [PHONE_CONTACT]
    return reply(code, reason, tag=PHONE_TAG, headers=headers, body=body, retrans=retrans)


def _tone_files(workdir: Path, steps: list[tuple]) -> list[Path]:
    """The pcap of each ("tone", hz, ms[, pt]) step, in order."""
    return [write_tone_pcap(workdir / f"tone_{i:02d}.pcap", float(s[1]), int(s[2]), pt=int(s[3]) if len(s) > 3 else PCMA)
            for i, s in enumerate(s for s in steps if s[0] == "tone")]


def _caller_xml(steps: list[tuple], caller: str, codecs: str, expect_code: int,
                dtmf_files: list[Path] | None = None, headers: list[str] | None = None,
                busy_ok: bool = False, media_port: int | None = None, tone_files: list[Path] | None = None) -> str:
    offer = sdp(codecs, media_port)
    dtmf = iter(dtmf_files or [])
    tone = iter(tone_files or [])
    extra = "".join(f"{h}\n" for h in headers or [])

    def in_dialog(method: str, cseq: int, to: str, extra_headers: str = "Content-Length: 0", payload: str = "",
                  retrans: bool = True, uri: str = "[next_url]") -> str:
        """One request of the caller inside its dialog (along the recorded route)."""
        return f"""<send{' retrans="500"' if retrans else ''}><![CDATA[
{method} {uri} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: "Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
{to}
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: sip:{caller}@[local_ip]:[local_port]
{extra_headers}

{payload}]]></send>
"""

    body = [f"""<?xml version="1.0" encoding="UTF-8"?>
<scenario name="caller">
<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
{extra}Content-Type: application/sdp
Content-Length: [len]

{offer}]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="183" optional="true"/>
"""]
    if busy_ok:
        # An overloaded worker's 503 ends the call as a clean refusal, if it says when to retry.
        body.append("""<recv response="503" optional="true" next="refused"><action>
  <ereg regexp="[0-9]+" search_in="hdr" header="Retry-After:" check_it="true" assign_to="retry"/>
  <log message="refused retry-after=[$retry]"/>
</action></recv>
""")
    if expect_code != 200:
        body.append(f"""<recv response="{expect_code}"/>
<send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0

]]></send>
</scenario>""")
        return "".join(body)
    # The far end's tag for a Replaces header naming this dialog (pjsip puts the tag last; sipp refuses a
    # variable it assigns but never reads, hence no whole-match one), and its To: after the refused
    # INVITE the last To is that one's, so later requests use the saved dialog To.
    tag = ('<action><ereg regexp="[^=]+$" search_in="hdr" header="To:" assign_to="wtag"/>'
           '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="wto"/></action>'
           if any(s[0] == "replaces" for s in steps) else "")
    to = "[last_To:]"
    body.append(f"""<recv response="200" rtd="true" rrs="true">{tag}</recv>
{in_dialog("ACK", 1, "[last_To:]", retrans=False)}""")
    cseq = 2
    for step in steps:
        kind = step[0]
        if kind == "pause":
            body.append(f'<pause milliseconds="{int(step[1])}"/>\n')
        elif kind == "dtmf":
            body.append(f'<nop><action><exec play_pcap_audio="{next(dtmf)}"/>'
                        f'</action></nop>\n<pause milliseconds="250"/>\n')
        elif kind == "audio":
            body.append(f'<nop><action><exec play_pcap_audio="{PCAP_DIR}/g711a.pcap"/></action></nop>\n')
        elif kind == "stream":
            # a-law from sipp's media port by its rtp_stream (ordinary UDP, 20 ms packets, looped until the
            # call ends), where play_pcap_audio holds a raw socket per playing caller.
            body.append(f'<nop><action><exec rtp_stream="{step[1]},-1,8"/></action></nop>\n')
        elif kind == "tone":
            body.append(f'<nop><action><exec play_pcap_audio="{next(tone)}"/></action></nop>\n')
        elif kind == "info":
            payload = f"Signal={step[1]}\nDuration=160\n"
            code = int(step[2]) if len(step) > 2 else 200
            uri = step[3] if len(step) > 3 else "[next_url]"
            body.append(in_dialog("INFO", cseq, to, "Content-Type: application/dtmf-relay\nContent-Length: [len]",
                                  payload, uri=uri) + f"""<recv response="{code}"/>
<pause milliseconds="200"/>
""")
            cseq += 1
        elif kind == "hangup":
            body.append(in_dialog("BYE", cseq, to) + """<recv response="200" crlf="true"/>
""")
        elif kind == "refer":
            body.append(in_dialog("REFER", cseq, to, f"Refer-To: <{step[1]}>\n"
                                  f"Referred-By: <sip:{caller}@[local_ip]:[local_port]>\nMax-Forwards: 70\n"
                                  "Content-Length: 0") + f'<recv response="{int(step[2])}"/>\n')
            cseq += 1
        elif kind == "replaces":
            # A second dialog (same Call-ID, new From tag) asking to take this one over.
            body.append(f"""<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-replaces
From: "Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag99[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:{caller}@[local_ip]:[local_port]
Replaces: [call_id];to-tag=[$wtag];from-tag=[pid]SIPpTag00[call_number]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{offer}]]></send>
<recv response="100" optional="true"/>
<recv response="{int(step[1])}"/>
<send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-replaces
From: "Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag99[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0

]]></send>
""")
            to = "To: [$wto]"
        elif kind == "referred":
            # A blind transfer of this call: accept the REFER, report the new call answered (NOTIFY with
            # a 200 sipfrag), then the far end hangs up.
            body.append(f"""<recv request="REFER" timeout="{int(step[1])}">
  <action><ereg regexp=".*" search_in="hdr" header="From:" assign_to="rf"/></action>
</recv>
{reply(202, "Accepted", headers=[f"Contact: sip:{caller}@[local_ip]:[local_port]"])}""")
            body.append(in_dialog("NOTIFY", cseq, "To: [$rf]", "Event: refer\nSubscription-State: terminated;"
                                  "reason=noresource\nContent-Type: message/sipfrag;version=2.0\nContent-Length: [len]",
                                  "SIP/2.0 200 OK\n").replace("[routes]\n", "", 1) + '<recv response="200"/>\n')
            body.append(f'<recv request="BYE" timeout="{int(step[1])}"/>\n' + reply(200, "OK"))
        elif kind == "wait_bye":
            body.append(f'<recv request="BYE" timeout="{int(step[1])}"/>\n' + reply(200, "OK"))
        else:
            raise ValueError(f"unknown caller step {step!r}")
    if busy_ok:
        body.append(f"""<nop next="end"/>
<label id="refused"/>
<send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: "Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0

]]></send>
<label id="end"/>
""")
    body.append("</scenario>\n")
    return "".join(body)


def _caller_cancel_xml(caller: str, ring_ms: int) -> str:
    """A caller who gives up before being answered: INVITE, wait, CANCEL."""
    offer = sdp()
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<scenario name="caller-cancel">
<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{offer}]]></send>
<recv response="100" optional="true"/>
<pause milliseconds="{ring_ms}"/>
<send><![CDATA[
CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-2]
From: "Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 CANCEL
Content-Length: 0

]]></send>
<recv response="180" optional="true"/>
<recv response="200"/>
<recv response="487"/>
<send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-4]
From: "Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0

]]></send>
</scenario>
"""


def _recv_invite(capture: bool, routed: bool = False, call_id: bool = False) -> str:
    """An agent that sends its own BYE needs the dialog's From/To/Contact (sipp has no 'swap'); its own
    re-INVITE also the Call-ID (call_id: sipp refuses a variable it assigns but never reads)."""
    rrs = ' rrs="true"' if routed else ""
    if not capture:
        return f'<recv request="INVITE" crlf="true"{rrs}/>'
    return f"""<recv request="INVITE" crlf="true"{rrs}>
  <action>
    <ereg regexp=".*" search_in="hdr" header="From:" assign_to="rfrom"/>
    <ereg regexp=".*" search_in="hdr" header="To:" assign_to="rto"/>
    <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="rcontact"/>
{'    <ereg regexp=".*" search_in="hdr" header="Call-ID:" assign_to="rcallid"/>' + chr(10) if call_id else ""}  </action>
</recv>"""


REJECTS = {"486": (486, "Busy Here"), "480": (480, "Temporarily Unavailable"), "603": (603, "Decline")}


def _phone_head(cseq: int) -> str:
    """Via to CSeq (its number; the method follows) of the phone's own request in the dialog it answered."""
    return f"""Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$rto];tag={PHONE_TAG}
To: [$rfrom]
Call-ID: [$rcallid]
CSeq: {cseq} """


def _sipfrag(code: int, var: str) -> str:
    """Receive the worker's NOTIFY of a REFER whose sipfrag is "SIP/2.0 <code>" (else the scenario fails), 200 it."""
    return f"""<recv request="NOTIFY"><action>
  <ereg regexp="SIP/2\\.0 {code} [^\\r\\n]*" search_in="body" check_it="true" assign_to="{var}"/>
  <log message="transfer NOTIFY [${var}]"/>
</action></recv>
{reply(200, "OK")}"""


def _phone_refer(cseq: int, uri: str, code: int, final: int | None = None, handed: bool = False) -> str:
    """The phone's REFER (its transfer key) to `uri`, expecting the final response `code`; a 202 then comes
    with the implicit subscription's NOTIFY "SIP/2.0 100" and later the final one, "SIP/2.0 <final>": 200 (the
    transfer made: the worker's BYE comes first, the phone's part of the call is over) or a failure (the call
    goes on; `handed`: the caller was handed over to a target that then failed, so the BYE came first too)."""
    notifies = ""
    if code == 202:
        assert final is not None, "a 202 REFER step names the final NOTIFY's status"
        notifies = _sipfrag(100, "trying")
        if final == 200 or handed:
            notifies += ('<recv request="BYE"/>\n' + reply(200, "OK") + _sipfrag(final, "done")
                         + '<nop next="end"/>\n')
        else:
            notifies += _sipfrag(final, "failed")
    return f"""<send retrans="500"><![CDATA[
REFER [$rcontact] SIP/2.0
{_phone_head(cseq)}REFER
Contact: <sip:[local_ip]:[local_port]>
Refer-To: <{uri}>
Referred-By: <sip:agent@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="{code}"/>
{notifies}"""


def _phone_reinvite(cseq: int, codecs: str, direction: str, media_port: int | None = None) -> str:
    """The phone's own re-INVITE in the dialog it answered (hold: sendonly / inactive, resume: sendrecv),
    answered and ACKed; needs the dialog captured by _recv_invite(capture=True). Its SDP's version is
    2353687637 + cseq (the first re-INVITE's CSeq is 2)."""
    head = _phone_head(cseq)
    return f"""<send retrans="500"><![CDATA[
INVITE [$rcontact] SIP/2.0
{head}INVITE
Contact: <sip:[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{sdp(codecs, media_port, direction=direction, version=2353687637 + cseq)}]]></send>
<recv response="100" optional="true"/>
<recv response="200"/>
<send><![CDATA[
ACK [$rcontact] SIP/2.0
{head}ACK
Content-Length: 0

]]></send>
"""


def _agent_xml(mode: str, ring_ms: int, talk_ms: int, codecs: str = "0 8", greeting: bool = False,
               routed: bool = False, steps: list[tuple] | None = None, tone_files: list[Path] | None = None,
               media_port: int | None = None, dtmf_files: list[Path] | None = None) -> str:
    """mode: 'answer' (talk, wait for BYE), 'answer_bye' (agent hangs up after talk_ms),
    'noanswer' (ring until CANCEL), '486' / '480' / '603' (reject). See agent()."""
    steps = steps or []
    reinvites = any(s[0] in ("reinvite", "refer") for s in steps)     # requests of its own in the dialog
    parts = [f"""<?xml version="1.0" encoding="UTF-8"?>
<scenario name="agent-{mode}">
{_recv_invite(mode == "answer_bye" or reinvites, routed, call_id=reinvites)}
{_phone_answer(180, "Ringing", routed)}"""]
    if mode in REJECTS:
        code, text = REJECTS[mode]
        parts.append(f"""<pause milliseconds="{ring_ms}"/>
{_phone_answer(code, text, routed)}<recv request="ACK"/>
</scenario>
""")
        return "".join(parts)
    # CANCEL may arrive while ringing in every mode: the caller can give up first.
    if mode == "noanswer":
        parts.append('<recv request="CANCEL"/>\n')
    else:
        parts.append(f'<recv request="CANCEL" timeout="{ring_ms}" ontimeout="answer" next="cancelled"/>\n')
        answer = sdp(codecs, media_port, event=PHONE_EVENT_PT if dtmf_files else 101)
        parts.append(f"""<label id="answer"/>
{_phone_answer(200, "OK", routed, body=answer, retrans=True)}<recv request="ACK" crlf="true"/>
""")
        if greeting:
            parts.append(f'<nop><action><exec play_pcap_audio="{PCAP_DIR}/g711a.pcap"/></action></nop>\n')
        tone, dtmf, cseq = iter(tone_files or []), iter(dtmf_files or []), 2
        for step in steps:
            if step[0] == "tone":
                parts.append(f'<nop><action><exec play_pcap_audio="{next(tone)}"/></action></nop>\n')
            elif step[0] == "dtmf":
                parts.append(f'<nop><action><exec play_pcap_audio="{next(dtmf)}"/></action></nop>\n'
                             '<pause milliseconds="250"/>\n')
            elif step[0] == "pause":
                parts.append(f'<pause milliseconds="{int(step[1])}"/>\n')
            elif step[0] == "reinvite":
                parts.append(_phone_reinvite(cseq, codecs, str(step[1]), media_port))
                cseq += 1
            elif step[0] == "refer":
                parts.append(_phone_refer(cseq, str(step[1]), int(step[2]), *(int(x) for x in step[3:4]),
                                          *(bool(x) for x in step[4:5])))
                cseq += 1
            else:
                raise ValueError(f"unknown phone step {step!r}")
        if mode == "answer":
            parts.append('<recv request="BYE"/>\n' + reply(200, "OK") + '<nop next="end"/>\n')
        else:
            parts.append(f"""<pause milliseconds="{talk_ms}"/>
<send retrans="500"><![CDATA[
BYE [$rcontact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{"[routes]" + chr(10) if routed else ""}From: [$rto];tag={PHONE_TAG}
To: [$rfrom]
[last_Call-ID:]
CSeq: 2 BYE
Contact: <sip:[local_ip]:[local_port]>
Content-Length: 0

]]></send>
<recv response="200"/>
<nop next="end"/>
""")
        parts.append('<label id="cancelled"/>\n')
    parts.append(reply(200, "OK") + reply(487, "Request Terminated", tag=PHONE_TAG, cseq="CSeq: [cseq] INVITE")
                 + """<recv request="ACK"/>
<label id="end"/>
</scenario>
""")
    return "".join(parts)


def _answer_only_xml(answer_re: str, ring_ms: int) -> str:
    """Phones that answer the called numbers matching answer_re and are busy for the others."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<scenario name="customers">
<recv request="INVITE" crlf="true">
  <action><ereg regexp="INVITE sip:{answer_re}@" search_in="msg" check_it="false" assign_to="ans"/></action>
</recv>
{_phone_answer(180, "Ringing")}<pause milliseconds="{ring_ms}"/>
<nop test="ans" next="answer"/>
{_phone_answer(486, "Busy Here")}<recv request="ACK" next="end"/>
<label id="answer"/>
{_phone_answer(200, "OK", body=sdp("0 8"), retrans=True)}<recv request="ACK" crlf="true"/>
<recv request="BYE"/>
{reply(200, "OK")}<label id="end"/>
</scenario>
"""


# The worker stand-in of the edge's tests: answers the dispatcher's OPTIONS pings and every INVITE (200,
# then the caller's BYE).
_WORKER_SDP = """v=0
o=worker 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
"""
_WORKER_UAS = f"""<?xml version="1.0" encoding="UTF-8"?>
<scenario name="worker">
<recv request="INVITE|OPTIONS" regexp_match="true">
  <action><ereg regexp="^OPTIONS" search_in="msg" check_it="false" assign_to="options"/></action>
</recv>
<nop test="options" next="options"/>
{reply(200, "OK", tag="[pid]W[call_number]", headers=["[last_Record-Route:]", "Contact: <sip:worker@[local_ip]:[local_port]>"],
       body=_WORKER_SDP)}<recv request="ACK" timeout="8000" ontimeout="end"/>
<recv request="BYE" timeout="30000" ontimeout="end"/>
{reply(200, "OK")}<nop next="end"/>
<label id="options"/>
{reply(200, "OK", tag="[pid]O[call_number]")}<label id="end"/>
</scenario>
"""

# A flooder: INVITEs and nothing else (no retransmission, no ACK): each "call" ends once sent.
_FLOOD_INVITE = """<?xml version="1.0" encoding="UTF-8"?>
<scenario name="flood">
<send><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:flood@[local_ip]:[local_port]>;tag=[pid]F[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:flood@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"""


@dataclass
class Sipp:
    """One running sipp process."""

    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    port: int
    stats: dict[str, str] = field(default_factory=dict)
    media_port: int = 0

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"sipp {self.name} did not finish in {timeout}s; {self.errors()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def errors(self) -> str:
        out = []
        for f in self.workdir.glob("*errors.log"):
            out.append(f.read_text(errors="replace")[-3000:])
        for f in self.workdir.glob("*.out"):
            out.append(f.read_text(errors="replace")[-1500:])
        return "\n".join(out)

    def refused(self) -> list[str]:
        """Retry-After values of the calls a 503 refused (callers started with busy_ok=True)."""
        lines = [ln for f in self.workdir.glob("*_logs.log") for ln in f.read_text(errors="replace").splitlines()]
        return [ln.split("retry-after=", 1)[1].strip() for ln in lines if "retry-after=" in ln]

    def messages(self) -> str:
        """What it received, when started with a message trace (agent(trace=True), worker_standin())."""
        return "\n".join(f.read_text(errors="replace") for f in sorted(self.workdir.glob("*messages.log")))

    def succeeded(self) -> int:
        """Successful calls according to sipp's final statistics (exit code 0 means all)."""
        return self.proc.returncode


def _sipp_exe() -> str:
    exe = shutil.which("sipp")
    if not exe:
        raise RuntimeError("sipp is not installed (apt-get install sip-tester)")
    return exe


def _start(name: str, xml: str, args: list[str], port: int | None = None, workdir: Path | None = None,
           local_ip: str = "127.0.0.1", trace_errors: bool = True) -> Sipp:
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"sipp-{name}-"))
    scen = workdir / "scenario.xml"
    scen.write_text(xml)
    port = port or ports.port(local_ip)
    media = ports.block(5, media=True, ip=local_ip)   # sipp binds its media port and the ones after it
    errors = ["-trace_err", "-error_file", str(workdir / "errors.log")] if trace_errors else []
    cmd = [_sipp_exe(), "-sf", str(scen), "-i", local_ip, "-p", str(port), "-mp", str(media),
           "-nostdin", *errors, *args]
    out = open(workdir / "sipp.out", "wb")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Sipp(name, proc, workdir, port, media_port=media)


def caller(target: str, steps: list[tuple], number: str = "0901234567", service: str = "hotline",
           calls: int = 1, rate: float = 1.0, limit: int | None = None, codecs: str = "8 0",
           expect_code: int = 200, timeout_s: int = 120, extra: list[str] | None = None,
           local_ip: str = "127.0.0.1", headers: list[str] | None = None, busy_ok: bool = False,
           media_port: int | None = None) -> Sipp:
    """Start sipp calling target ('127.0.0.1:5060') `calls` times with the given steps, from local_ip
    (any 127.x address is this host), with extra INVITE headers ('P-Asserted-Identity: <sip:...>').
    busy_ok: a 503 with Retry-After also ends a call successfully (see Sipp.refused()).
    media_port: the RTP port its offer names instead of its own (a test listening there).
    Steps also take ("stream", path): sipp's rtp_stream plays an a-law file in a loop until the call ends."""
    workdir = Path(tempfile.mkdtemp(prefix="sipp-caller-"))
    pcaps = write_dtmf_pcaps(workdir, [s[1] for s in steps if s[0] == "dtmf"])
    xml = _caller_xml(steps, number, codecs, expect_code, pcaps, headers, busy_ok, media_port,
                      _tone_files(workdir, steps))
    args = [target, "-s", service, "-m", str(calls), "-r", str(rate), "-l", str(limit or calls),
            "-timeout", f"{timeout_s}s", "-timeout_error", *(["-trace_logs"] if busy_ok else []), *(extra or [])]
    return _start("caller", xml, args, workdir=workdir, local_ip=local_ip)


def cancelling_caller(target: str, ring_ms: int, number: str = "0901234567", service: str = "hotline") -> Sipp:
    return _start("caller-cancel", _caller_cancel_xml(number, ring_ms),
                  [target, "-s", service, "-m", "1", "-timeout", "60s", "-timeout_error"])


def referred_caller(target: str, number: str = "0901234567", service: str = "hotline") -> Sipp:
    """A caller whose call is blind-transferred: it accepts the REFER (202), reports the new call as
    answered (NOTIFY with a 200 sipfrag) and expects the worker's BYE."""
    return _start("caller-refer", _caller_xml([("referred", 20000)], number, "8 0", 200),
                  [target, "-s", service, "-m", "1", "-timeout", "60s", "-timeout_error"])


def agent(port: int, mode: str = "answer", ring_ms: int = 500, talk_ms: int = 1000, calls: int = 1,
          timeout_s: int = 120, *, codecs: str = "0 8", greeting: bool = False, routed: bool = False,
          answer_only: str | None = None, trace: bool = False, timeout_error: bool = True,
          steps: list[tuple] | None = None, media_port: int | None = None) -> Sipp:
    """A phone on 127.0.0.1:port answering `calls` offers the same way, echoing RTP back.
    mode: 'answer' (talk, wait for BYE), 'answer_bye' (hangs up after talk_ms), 'noanswer' (ring until
    CANCEL), '486' / '480' / '603' (reject after ring_ms). codecs: what its answer offers.
    greeting: after answering it plays 4.7 s of speech instead of echoing (a voicemail box; codecs "8").
    routed: a phone behind a proxy: its answers carry the Record-Route, its BYE follows the route.
    answer_only: a regex of called numbers it answers (mode 'answer'); for the others it is busy (486).
    trace: every message it gets is in `messages()`.
    steps (mode 'answer', after answering, before waiting for the BYE): ("tone", hz, ms[, pt]) send a
    tone instead of echoing (pt: the codec its answer puts first, µ-law 0 by default), ("pause", ms),
    ("reinvite", "sendonly" | "inactive" | "sendrecv") its own re-INVITE: hold and resume from the phone
    (SDP versions 2353687639, 2353687640, ...), ("dtmf", "1") a key pressed (RFC 2833, as a caller's),
    ("refer", uri, code[, final[, handed]]) its transfer key: a REFER to uri (a Replaces header in it: an
    attended transfer), expecting the final response code; 202 with the NOTIFYs of the implicit subscription:
    "100" then ``final`` (200: the transfer made, after the worker's BYE; else a failure status, and the call
    goes on; ``handed`` True: a failure after the worker's BYE, the caller handed to a target that failed).
    media_port: the RTP port its SDP names instead of its own (a test's socket sends and keeps its media)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"sipp-agent{port}-"))
    steps = steps or []
    tone_files = _tone_files(workdir, [s if len(s) > 3 else (*s, int(codecs.split()[0]))
                                       for s in steps if s[0] == "tone"])
    if answer_only is not None:
        xml = _answer_only_xml(answer_only, ring_ms)
    else:
        xml = _agent_xml(mode, ring_ms, talk_ms, codecs, greeting, routed, steps, tone_files, media_port,
                         write_dtmf_pcaps(workdir, [s[1] for s in steps if s[0] == "dtmf"], seq=20_000,
                                          pt=PHONE_EVENT_PT))
    echo = not greeting and not tone_files and media_port is None
    args = ["-m", str(calls), *(["-rtp_echo"] if echo else []), *(["-trace_msg"] if trace else []),
            "-timeout", f"{timeout_s}s", *(["-timeout_error"] if timeout_error else [])]
    return _start(f"agent{port}", xml, args, port=port, workdir=workdir)


def worker_standin(local_ip: str = "127.0.0.1") -> Sipp:
    """A worker stand-in for the SIP edge: answers OPTIONS pings and every INVITE (200, then the
    caller's BYE); every message it receives is in `messages()`."""
    return _start("worker", _WORKER_UAS, ["-trace_msg", "-message_file", "messages.log", "-m", "100000",
                                          "-timeout", "300s"], local_ip=local_ip, trace_errors=False)


def flooder(local_ip: str, target: str, rate: int, seconds: int) -> Sipp:
    """INVITEs from local_ip at `rate` a second for `seconds`, never retransmitted, never ACKed."""
    return _start("flood", _FLOOD_INVITE, [target, "-s", "hotline", "-r", str(rate), "-rp", "1000",
                                           "-m", str(rate * seconds), "-l", str(rate * seconds)],
                  local_ip=local_ip, trace_errors=False)


def wait_all(*procs: Sipp, timeout: float = 90) -> list[int]:
    deadline = time.monotonic() + timeout
    return [p.wait(max(1.0, deadline - time.monotonic())) for p in procs]
