"""Call recording over real SIP: a sipp caller sends a 500 Hz tone, the agent's sipp phone 1300 Hz; the
worker records the bridged call and the tones tell what landed where (Goertzel on the stereo WAV).

One worker; its recordings live on a small tmpfs so a test can fill the disk."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import sipp
import tones
from recording_helpers import channels, silent_blocks, tone_blocks
from worker_proc import METRICS_TOKEN, WorkerProc, admin_token, api_user, fetch, flush, new_worker

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

CALLER_HZ, AGENT_HZ = 500.0, 1300.0
MENU_SALES = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "1"), ("pause", 5200)]
MENU_SUPPORT = [("pause", 600), ("dtmf", "1"), ("pause", 800), ("dtmf", "2"), ("pause", 5200)]


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("rec-disk") / "recordings"
    d.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0750", "tmpfs", str(d)],
                             capture_output=True).returncode == 0
    yield d, mounted
    if mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server: Any, rec_dir: Any) -> Any:
    tmp = tmp_path_factory.mktemp("recording")
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url)
    w.write_config(extra=f"recording: {{dir: {rec_dir[0]}, retention_days: 30, "
                         "queues: {sales: {sample: 100}, support: {sample: 0, consent_prompt: queue/recording_notice}}}\n")
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


@pytest.fixture(autouse=True)
def nobody_logged_in(worker: WorkerProc) -> Any:
    worker.logout("1001", "1002", "1003", "1004")
    yield


def metric(w: WorkerProc, name: str) -> float:
    _, _, text = fetch(w, "/metrics", METRICS_TOKEN)
    total = 0.0
    for line in text.decode().splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_log(w: WorkerProc, event: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for e in w.logs() if e.get("event") == event) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {event!r} in the worker's log:\n{w.tail()}")


def started(w: WorkerProc) -> int:
    return sum(1 for e in w.logs() if e.get("event") == "recording started")


def tone_call(w: WorkerProc, agent: str, menu: list[tuple], tone_ms: int, talk_ms: int,
              number: str) -> tuple[sipp.Sipp, sipp.Sipp]:
    """Agent `agent` logs in; its phone answers sending AGENT_HZ for tone_ms, and a caller goes through
    the menu, then sends CALLER_HZ for tone_ms and hangs up after talk_ms. (caller, phone)"""
    phone = sipp.agent(w.agents_port, "answer", ring_ms=300, timeout_s=60, codecs="8",
                       steps=[("tone", AGENT_HZ, tone_ms)])
    w.login(agent)
    caller = sipp.caller(w.target, [*menu, ("tone", CALLER_HZ, tone_ms), ("pause", talk_ms), ("hangup",)],
                         number=number, codecs="8")
    return caller, phone


def runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(start, length) of every run of True."""
    out, start = [], None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i - start))
            start = None
    return out


def test_stereo_has_the_caller_left_the_agent_right_and_a_pause_is_silent(worker: WorkerProc, rec_dir: Any) -> None:
    before = started(worker)
    caller, phone = tone_call(worker, "1001", MENU_SALES, 9000, 9500, "0901300001")
    wait_log(worker, "recording started", before + 1)
    call_id = next(e["call_id"] for e in reversed(worker.logs()) if e.get("event") == "recording started")
    time.sleep(1.0)
    status, body = worker.http("POST", f"/calls/{call_id}/recording/pause", {})
    assert status == 200 and body["paused"] is True, body
    time.sleep(2.0)
    status, body = worker.http("POST", f"/calls/{call_id}/recording/resume", {})
    assert status == 200 and body["paused"] is False, body
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()

    cdr = worker.call_from("0901300001")
    assert cdr.call_id == call_id and cdr.queue == "sales" and cdr.outcome == "answered"
    assert cdr.recording_consent is None        # no consent prompt configured for sales
    path = Path(cdr.recording)
    assert path.is_file() and path.is_relative_to(rec_dir[0])
    assert re.search(r"/\d{4}/\d{2}/\d{2}/" + call_id + r"\.wav$", str(path)), path
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(call_id)) == \
        [f"{call_id}.json", f"{call_id}.wav"]          # the mono parts are gone
    assert json.loads(path.with_suffix(".json").read_text())["retention_days"] == 30

    left, right = channels(path)
    caller_left, agent_right = tone_blocks(left, CALLER_HZ), tone_blocks(right, AGENT_HZ)
    assert sum(caller_left) >= 20 and sum(agent_right) >= 20, (sum(caller_left), sum(agent_right))
    # nothing of the other party on either side
    assert not any(tone_blocks(left, AGENT_HZ, 0.2)) and not any(tone_blocks(right, CALLER_HZ, 0.2))
    # the pause: >= 1.5 s of silence on both channels, the caller's tone before and after it
    quiet = [a and b for a, b in zip(silent_blocks(left), silent_blocks(right), strict=True)]
    gaps = [(s, n) for s, n in runs(quiet) if n >= 15 and any(caller_left[:s]) and any(caller_left[s + n:])]
    assert gaps, runs(quiet)

    # playback: ranges, refusals, audit
    admin = admin_token(worker.redis_url)
    since = time.time() - 1
    status, headers, data = fetch(worker, f"/recordings/{call_id}", admin)
    assert status == 200 and data == path.read_bytes() and headers["accept-ranges"] == "bytes"
    size = len(data)
    status, headers, part = fetch(worker, f"/recordings/{call_id}", admin, {"range": "bytes=0-43"})
    assert status == 206 and part == data[:44] and part.startswith(b"RIFF")
    assert headers["content-range"] == f"bytes 0-43/{size}"
    status, headers, part = fetch(worker, f"/recordings/{call_id}", admin, {"range": "bytes=-100"})
    assert status == 206 and part == data[-100:]
    status, headers, _ = fetch(worker, f"/recordings/{call_id}", admin, {"range": f"bytes={size}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{size}"
    agent = api_user(worker.redis_url, "rec-agent", ["agent"], agent="1001")
    assert fetch(worker, f"/recordings/{call_id}", agent)[0] == 403
    assert fetch(worker, "/recordings/nosuchcall", admin)[0] == 404
    status, body = worker.http("GET", f"/admin/audit?action=GET%20/recordings/%7Bcall_id%7D&since={since}")
    assert status == 200, body
    # the full fetch, the two ranges, the refused range, the agent's refusal and the 404: each one audited
    assert len(body["entries"]) >= 4, body


def test_sample_0_records_nothing_and_the_consent_prompt_is_in_the_cdr(worker: WorkerProc, rec_dir: Any) -> None:
    """support: {sample: 0, consent_prompt: ...}: the caller hears the notice (4.3 s) before the agent joins."""
    before = started(worker)
    caller, phone = tone_call(worker, "1003", MENU_SUPPORT, 2000, 8000, "0901300002")
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
    cdr = worker.call_from("0901300002")
    assert cdr.queue == "support" and cdr.outcome == "answered" and cdr.recording is None
    assert cdr.recording_consent is True
    assert started(worker) == before
    assert not list(rec_dir[0].glob(f"*/*/*/{cdr.call_id}*"))


def test_a_full_disk_keeps_the_call_up_and_counts_the_failure(worker: WorkerProc, rec_dir: Any) -> None:
    d, mounted = rec_dir
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (not root)")
    filler = d / "filler"
    free = 0
    try:
        with filler.open("wb") as f:      # fill the tmpfs, then give back 48 KiB: headers fit, the call does not
            while True:
                try:
                    f.write(b"\0" * 65536)
                    f.flush()
                except OSError:
                    break
        st = os.statvfs(d)
        free = st.f_bavail * st.f_frsize
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - 48 * 1024))
        failures = metric(worker, 'callcenter_recording_failures_total{reason="disk_full"}')
        caller, phone = tone_call(worker, "1001", MENU_SALES, 5000, 5000, "0901300003")
        assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
        cdr = worker.call_from("0901300003")
        assert cdr.outcome == "answered" and cdr.hangup_side == "caller" and cdr.talk_seconds > 3
        assert cdr.recording is None
        assert metric(worker, 'callcenter_recording_failures_total{reason="disk_full"}') == failures + 1, free
        assert not list(d.glob(f"*/*/*/{cdr.call_id}*"))      # nothing half-written left behind
    finally:
        filler.unlink(missing_ok=True)


def test_a_hold_from_the_agents_phone_does_not_lose_the_agent(worker: WorkerProc) -> None:
    """The phone holds (re-INVITE a=sendonly) and resumes (sendrecv): pjsua re-creates the leg's stream
    (another conference slot) each time; the recording follows it and has the agent after the resume."""
    phone = sipp.agent(worker.agents_port, "answer", ring_ms=300, codecs="8", steps=[
        ("tone", AGENT_HZ, 30_000), ("pause", 2500), ("reinvite", "sendonly"), ("pause", 2000),
        ("reinvite", "sendrecv")])
    worker.login("1001")
    caller = sipp.caller(worker.target, [*MENU_SALES, ("tone", CALLER_HZ, 30_000), ("pause", 9000), ("hangup",)],
                         number="0901300004")
    assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
    cdr = worker.call_from("0901300004")
    assert cdr.hold_count == 1 and cdr.recording, cdr
    left, right = channels(Path(cdr.recording))
    agent_right = tone_blocks(right, AGENT_HZ)
    caller_left = tone_blocks(left, CALLER_HZ)
    # the last second of the call: both parties still in the recording, each on its own side
    assert all(agent_right[-12:-2]) and all(caller_left[-12:-2]), (agent_right[-20:], caller_left[-20:])


DTMF_LOW = (697.0, 770.0, 852.0, 941.0)    # every key has one of these (1209..1633 Hz is the high group)


def test_the_agent_pauses_and_resumes_from_its_keypad_and_the_caller_hears_no_keys(worker: WorkerProc) -> None:
    """The agent keys *1 (recording.pause_digits), 3 s later *2 (resume_digits), as RFC 2833 events (its
    tone stops meanwhile: one RTP stream at a time, as a phone sends): the
    recording has a silent stretch on both channels between the caller's tone before and after it, and the
    RTP the caller receives carries none of the keys' frequencies (the bridge does not play them)."""
    try:
        sniffer = tones.Sniffer(set())
    except PermissionError:
        pytest.skip("watching the loopback interface needs root (CAP_NET_RAW)")
    try:
        phone = sipp.agent(worker.agents_port, "answer", ring_ms=300, timeout_s=60, codecs="8", steps=[
            ("tone", AGENT_HZ, 2500), ("pause", 2600), ("dtmf", "*"), ("dtmf", "1"), ("tone", AGENT_HZ, 3000),
            ("pause", 3100), ("dtmf", "*"), ("dtmf", "2"), ("tone", AGENT_HZ, 8000)])
        worker.login("1001")
        caller = sipp.caller(worker.target, [*MENU_SALES[:-1], ("tone", CALLER_HZ, 20_000), ("pause", 15_000),
                                             ("hangup",)], number="0901300005", codecs="8")
        sniffer.watch(caller.media_port)
        assert sipp.wait_all(caller, phone) == [0, 0], caller.errors() + phone.errors()
        heard = sniffer.pcm(caller.media_port)
    finally:
        sniffer.close()
    cdr = worker.call_from("0901300005")
    assert cdr.outcome == "answered" and cdr.recording, cdr
    by = [e.get("by") for e in worker.logs() if e.get("call_id") == cdr.call_id
          and e.get("event") in ("recording paused", "recording resumed")]
    assert by == ["phone", "phone"], by
    left, right = channels(Path(cdr.recording))
    caller_left = tone_blocks(left, CALLER_HZ)
    quiet = [a and b for a, b in zip(silent_blocks(left), silent_blocks(right), strict=True)]
    gaps = [(s, n) for s, n in runs(quiet) if n >= 20 and any(caller_left[:s]) and any(caller_left[s + n:])]
    assert gaps, runs(quiet)
    assert sum(tone_blocks(right, AGENT_HZ)) >= 20       # the agent recorded before and after the pause
    # what the caller received: the agent's tone, never a key
    assert len(heard) > 8000 * 5 and tones.detect(heard, [AGENT_HZ]) == {AGENT_HZ}
    keyed = [i for i in range(0, len(heard) - 800, 800) for f in DTMF_LOW
             if tones.goertzel_power(heard[i:i + 800], f) >= 0.1 * max(1, sum(x * x for x in heard[i:i + 800]))]
    assert keyed == [], keyed
