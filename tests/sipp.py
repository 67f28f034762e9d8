"""sipp as a real SIP peer: callers (UAC) and agent phones (UAS), built from one parameterised template.

A caller script is a list of steps:
    ("pause", ms)          wait, sending nothing
    ("dtmf", "1")          send one RFC 2833 digit (PT 101; pcaps made by rtp_pcap, fresh timestamps)
    ("info", "1")          send one digit as SIP INFO application/dtmf-relay
    ("audio",)             play 4.7 s of G.711 A-law speech (sipp's g711a.pcap)
    ("hangup",)            send BYE (must be the last step)
    ("wait_bye", ms)       expect the far end to hang up within ms (must be the last step)
    ("refer", uri, code)   send an in-dialog REFER to uri, expect the final response code
    ("replaces", code)     send a new INVITE whose Replaces names this call's dialog, expect code
An agent phone answers (or not) every INVITE it gets the same way; see `agent()`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rtp_pcap import write_dtmf_pcaps

PCAP_DIR = Path("/usr/share/sip-tester")
_ports = itertools.count(int(os.environ.get("SIPP_BASE_PORT", "15100")), 2)
# sipp binds its media port and media port + 2 (video): keep media ports 10 apart.
_media_ports = itertools.count(int(os.environ.get("SIPP_MEDIA_BASE_PORT", "30000")), 10)


def _free_port(counter: itertools.count, span: int = 1) -> int:
    """Next port from counter whose UDP ports port..port+span are all free right now."""
    while True:
        port = next(counter)
        socks = []
        try:
            for p in range(port, port + span + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()

_SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP {codecs} 101
{rtpmaps}a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
"""


def _sdp(codecs: str = "8 0") -> str:
    names = {"0": "PCMU", "8": "PCMA", "18": "G729", "3": "GSM"}
    maps = "".join(f"a=rtpmap:{c} {names[c]}/8000\n" for c in codecs.split())
    return _SDP.format(codecs=codecs, rtpmaps=maps)


def _caller_xml(steps: list[tuple], caller: str, codecs: str, expect_code: int,
                dtmf_files: list[Path] | None = None, headers: list[str] | None = None,
                busy_ok: bool = False) -> str:
    sdp = _sdp(codecs)
    dtmf = iter(dtmf_files or [])
    extra = "".join(f"{h}\n" for h in headers or [])

    def in_dialog(method: str, cseq: int, to: str, extra_headers: str = "Content-Length: 0", payload: str = "",
                  retrans: bool = True) -> str:
        """One request of the caller inside its dialog (along the recorded route)."""
        return f"""<send{' retrans="500"' if retrans else ''}><![CDATA[
{method} [next_url] SIP/2.0
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

{sdp}]]></send>
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
        elif kind == "info":
            payload = f"Signal={step[1]}\nDuration=160\n"
            body.append(in_dialog("INFO", cseq, to, "Content-Type: application/dtmf-relay\nContent-Length: [len]",
                                  payload) + """<recv response="200"/>
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

{sdp}]]></send>
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
        elif kind == "wait_bye":
            body.append(f"""<recv request="BYE" timeout="{int(step[1])}"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
""")
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
    sdp = _sdp()
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

{sdp}]]></send>
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


_OK_HEADERS = """[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>"""


def _recv_invite(capture: bool) -> str:
    """An agent that sends its own BYE needs the dialog's From/To/Contact (sipp has no 'swap')."""
    if not capture:
        return '<recv request="INVITE" crlf="true"/>'
    return """<recv request="INVITE" crlf="true">
  <action>
    <ereg regexp=".*" search_in="hdr" header="From:" assign_to="rfrom"/>
    <ereg regexp=".*" search_in="hdr" header="To:" assign_to="rto"/>
    <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="rcontact"/>
  </action>
</recv>"""


def _agent_xml(mode: str, ring_ms: int, talk_ms: int) -> str:
    """mode: 'answer' (talk, wait for BYE), 'answer_bye' (agent hangs up after talk_ms),
    'noanswer' (ring until CANCEL), '486' / '480' / '603' (reject)."""
    parts = [f"""<?xml version="1.0" encoding="UTF-8"?>
<scenario name="agent-{mode}">
{_recv_invite(mode == "answer_bye")}
<send><![CDATA[
SIP/2.0 180 Ringing
{_OK_HEADERS}
Content-Length: 0

]]></send>
"""]
    if mode == "noanswer" or mode in ("answer", "answer_bye"):
        # CANCEL may arrive while ringing in every mode: the caller can give up first.
        if mode == "noanswer":
            parts.append('<recv request="CANCEL"/>\n')
        else:
            parts.append(f'<recv request="CANCEL" timeout="{ring_ms}" ontimeout="answer" next="cancelled"/>\n')
        if mode == "noanswer":
            pass
        else:
            parts.append(f"""<label id="answer"/>
<send retrans="500"><![CDATA[
SIP/2.0 200 OK
{_OK_HEADERS}
Content-Type: application/sdp
Content-Length: [len]

{_sdp("0 8")}]]></send>
<recv request="ACK" crlf="true"/>
""")
            if mode == "answer":
                parts.append("""<recv request="BYE"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<nop next="end"/>
""")
            else:
                parts.append(f"""<pause milliseconds="{talk_ms}"/>
<send retrans="500"><![CDATA[
BYE [$rcontact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$rto];tag=[pid]SIPpTag01[call_number]
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
        parts.append("""<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [cseq] INVITE
Content-Length: 0

]]></send>
<recv request="ACK"/>
<label id="end"/>
</scenario>
""")
        return "".join(parts)
    code, text = {"486": (486, "Busy Here"), "480": (480, "Temporarily Unavailable"),
                  "603": (603, "Decline")}[mode]
    parts.append(f"""<pause milliseconds="{ring_ms}"/>
<send><![CDATA[
SIP/2.0 {code} {text}
{_OK_HEADERS}
Content-Length: 0

]]></send>
<recv request="ACK"/>
</scenario>
""")
    return "".join(parts)


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

    def succeeded(self) -> int:
        """Successful calls according to sipp's final statistics (exit code 0 means all)."""
        return self.proc.returncode


def _sipp_exe() -> str:
    exe = shutil.which("sipp")
    if not exe:
        raise RuntimeError("sipp is not installed (apt-get install sip-tester)")
    return exe


def _start(name: str, xml: str, args: list[str], port: int | None = None, workdir: Path | None = None,
           local_ip: str = "127.0.0.1") -> Sipp:
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"sipp-{name}-"))
    scen = workdir / "scenario.xml"
    scen.write_text(xml)
    port = port or _free_port(_ports)
    media = _free_port(_media_ports, span=4)
    cmd = [_sipp_exe(), "-sf", str(scen), "-i", local_ip, "-p", str(port), "-mp", str(media),
           "-nostdin", "-trace_err", "-error_file", str(workdir / "errors.log"), *args]
    out = open(workdir / "sipp.out", "wb")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Sipp(name, proc, workdir, port, media_port=media)


def caller(target: str, steps: list[tuple], number: str = "0901234567", service: str = "hotline",
           calls: int = 1, rate: float = 1.0, limit: int | None = None, codecs: str = "8 0",
           expect_code: int = 200, timeout_s: int = 120, extra: list[str] | None = None,
           local_ip: str = "127.0.0.1", headers: list[str] | None = None, busy_ok: bool = False) -> Sipp:
    """Start sipp calling target ('127.0.0.1:5060') `calls` times with the given steps, from local_ip
    (any 127.x address is this host), with extra INVITE headers ('P-Asserted-Identity: <sip:...>').
    busy_ok: a 503 with Retry-After also ends a call successfully (see Sipp.refused())."""
    workdir = Path(tempfile.mkdtemp(prefix="sipp-caller-"))
    pcaps = write_dtmf_pcaps(workdir, [s[1] for s in steps if s[0] == "dtmf"])
    xml = _caller_xml(steps, number, codecs, expect_code, pcaps, headers, busy_ok)
    args = [target, "-s", service, "-m", str(calls), "-r", str(rate), "-l", str(limit or calls),
            "-timeout", f"{timeout_s}s", "-timeout_error", *(["-trace_logs"] if busy_ok else []), *(extra or [])]
    return _start("caller", xml, args, workdir=workdir, local_ip=local_ip)


def cancelling_caller(target: str, ring_ms: int, number: str = "0901234567", service: str = "hotline") -> Sipp:
    return _start("caller-cancel", _caller_cancel_xml(number, ring_ms),
                  [target, "-s", service, "-m", "1", "-timeout", "60s", "-timeout_error"])


def agent(port: int, mode: str = "answer", ring_ms: int = 500, talk_ms: int = 1000, calls: int = 1,
          timeout_s: int = 120) -> Sipp:
    """An agent's phone on 127.0.0.1:port answering `calls` offers the same way, echoing RTP back."""
    return _start(f"agent{port}", _agent_xml(mode, ring_ms, talk_ms),
                  ["-m", str(calls), "-rtp_echo", "-timeout", f"{timeout_s}s", "-timeout_error"], port=port)


def wait_all(*procs: Sipp, timeout: float = 90) -> list[int]:
    deadline = time.monotonic() + timeout
    return [p.wait(max(1.0, deadline - time.monotonic())) for p in procs]


def referred_caller(target: str, number: str = "0901234567", service: str = "hotline") -> Sipp:
    """A caller whose call is blind-transferred: it accepts the REFER (202), reports the new call as
    answered (NOTIFY with a 200 sipfrag) and expects the worker's BYE."""
    notify = "SIP/2.0 200 OK\n"
    steps_xml = f"""<recv request="REFER" timeout="20000">
  <action><ereg regexp=".*" search_in="hdr" header="From:" assign_to="rf"/></action>
</recv>
<send><![CDATA[
SIP/2.0 202 Accepted
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: sip:{number}@[local_ip]:[local_port]
Content-Length: 0

]]></send>
<send retrans="500"><![CDATA[
NOTIFY [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Caller" <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [$rf]
Call-ID: [call_id]
CSeq: 2 NOTIFY
Contact: sip:{number}@[local_ip]:[local_port]
Event: refer
Subscription-State: terminated;reason=noresource
Content-Type: message/sipfrag;version=2.0
Content-Length: [len]

{notify}]]></send>
<recv response="200"/>
"""
    base = _caller_xml([("wait_bye", 20000)], number, "8 0", 200)
    xml = base.replace('<recv request="BYE" timeout="20000"/>', steps_xml + '<recv request="BYE" timeout="20000"/>', 1)
    return _start("caller-refer", xml, [target, "-s", service, "-m", "1", "-timeout", "60s", "-timeout_error"])
