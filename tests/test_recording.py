"""Call recording's pure parts: the policy section, the stereo merge, HTTP ranges and retention.
The recording of real calls is tests/test_recording_sip.py."""

from __future__ import annotations

import array
import os
import stat
import time
import wave
from pathlib import Path

import pytest

from callcenter.api.recordings import parse_range
from callcenter.calls.recording import (
    ALWAYS,
    NEVER,
    ON_DEMAND,
    SAMPLE,
    Policy,
    RecordingError,
    merge_stereo,
    parse_settings,
    purge,
)
from callcenter.exceptions import ConfigError
from callcenter.yamlsrc import Reader, loads


def settings(text: str, data_dir: Path = Path("/data")):
    data, loc = loads(text, "callcenter.yaml")
    return parse_settings(Reader(data, loc), data_dir)


def test_no_section_records_nothing() -> None:
    s = settings("worker: {id: w1}\n")
    assert s.dir == Path("/data/recordings") and s.retention_days == 90
    assert s.policy("sales", None).mode == NEVER and not s.policy("sales", None).wants()


def test_policies_per_queue_and_campaign() -> None:
    s = settings("""
recording:
  dir: /srv/rec
  policy: on_demand
  retention_days: 30
  queues:
    sales: {policy: always, retention_days: 400}
    support: {sample: 25}
    billing: {policy: never}
  campaigns:
    collections: {policy: always}
""")
    assert s.dir == Path("/srv/rec") and s.retention_days == 30
    assert s.policy("sales", None) == Policy(ALWAYS, 0.0, 400)
    assert s.policy("support", None) == Policy(SAMPLE, 25.0)
    assert s.policy("billing", None).mode == NEVER
    assert s.policy("other", None).mode == ON_DEMAND            # the section's own policy
    assert s.policy("billing", "collections").mode == ALWAYS     # a campaign's wins over its queue's
    assert s.retention(s.policy("sales", None)) == 400 and s.retention(s.policy("support", None)) == 30


def test_sample_0_and_100() -> None:
    draws = iter([0.0, 0.5, 0.999999] * 2)
    assert not any(Policy(SAMPLE, 0.0).wants(lambda: next(draws)) for _ in range(3))
    assert all(Policy(SAMPLE, 100.0).wants(lambda: next(draws)) for _ in range(3))
    assert Policy(SAMPLE, 30.0).wants(lambda: 0.29) and not Policy(SAMPLE, 30.0).wants(lambda: 0.30)


@pytest.mark.parametrize("text, where", [
    ("recording: {policy: sometimes}", "callcenter.yaml:1: recording.policy"),
    ("recording: {queues: {sales: {sample: 120}}}", "recording.queues.sales.sample"),
    ("recording: {queues: {sales: {policy: always, sample: 5}}}", "recording.queues.sales.sample"),
    ("recording: {queues: {sales: {policy: sample}}}", "recording.queues.sales.policy"),
    ("recording: {queues: {sales: {keep: 3}}}", "recording.queues.sales.keep"),
    ("recording: {retention_days: 0}", "recording.retention_days"),
    ("recording: {colour: red}", "recording.colour"),
    ("recording: {pause_digits: '12345'}", "recording.pause_digits: expected 1 to 4 keys"),
    ("recording: {pause_digits: 'a'}", "recording.pause_digits"),
    ("recording: {pause_digits: ''}", "recording.pause_digits: pause_digits and resume_digits go together"),
    ("recording: {pause_digits: '#1', resume_digits: '1'}", "recording.resume_digits: '1' and pause_digits"),
    ("recording: {pause_digits: '*9', resume_digits: '*9'}", "recording.resume_digits"),
])
def test_bad_policy_names_file_key_and_line(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings(text)
    assert where in str(err.value)


def mono(path: Path, samples: list[int]) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(array.array("h", samples).tobytes())
    return path


def test_merge_puts_left_and_right_and_pads_the_shorter(tmp_path: Path) -> None:
    left = mono(tmp_path / "l.wav", [1, 2, 3, 4])
    right = mono(tmp_path / "r.wav", [-1, -2])
    out = tmp_path / "call.wav"
    assert merge_stereo(left, right, out) == 4 / 8000
    with wave.open(str(out), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 2, 8000, 4)
        got = array.array("h", w.readframes(4))
    assert list(got) == [1, -1, 2, -2, 3, 0, 4, 0]
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert not out.with_suffix(".part").exists()


def test_merge_of_a_truncated_part_is_a_write_error(tmp_path: Path) -> None:
    left = mono(tmp_path / "l.wav", list(range(100)))
    right = mono(tmp_path / "r.wav", list(range(100)))
    with open(left, "r+b") as f:       # the header counts 100 frames; the disk holds 50
        f.truncate(44 + 100)
    with pytest.raises(RecordingError) as err:
        merge_stereo(left, right, tmp_path / "call.wav")
    assert err.value.reason in ("write_error", "disk_full")
    assert not (tmp_path / "call.wav").exists()


@pytest.mark.parametrize("header, expected", [
    ("bytes=0-99", (0, 99)), ("bytes=10-", (10, 999)), ("bytes=-100", (900, 999)), ("bytes=990-5000", (990, 999)),
    ("bytes=-5000", (0, 999)), ("bytes=1000-", None), ("bytes=50-10", None), ("bytes=-0", None),
    ("bytes=0-1,5-6", None), ("items=0-1", None), ("bytes=a-b", None),
])
def test_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 1000) == expected


def test_purge_keeps_what_retention_keeps(tmp_path: Path) -> None:
    day = tmp_path / "2026" / "01" / "02"
    day.mkdir(parents=True)
    now = time.time()
    old, young, kept_long, part = (day / f"{n}.wav" for n in ("old", "young", "long", "live.caller"))
    for p in (old, young, kept_long, part):
        p.write_bytes(b"RIFF")
    (day / "long.json").write_text('{"retention_days": 400}')
    (day / "old.json").write_text('{"retention_days": 10}')
    for p in (old, kept_long, part):
        os.utime(p, (now - 20 * 86400, now - 20 * 86400))
    assert purge(tmp_path, default_days=30, now=now) == 1
    assert not old.exists() and not (day / "old.json").exists()
    assert young.exists() and kept_long.exists() and not part.exists()     # a part 20 days old: orphaned
    fresh_part = day / "live.agent.wav"
    fresh_part.write_bytes(b"RIFF")
    purge(tmp_path, default_days=30, now=now)
    assert fresh_part.exists()                   # a call in progress
    for p in (young, kept_long, fresh_part):
        p.unlink()
    (day / "long.json").unlink()
    purge(tmp_path, default_days=30, now=now)
    assert not day.exists()


def test_consent_prompt_is_inherited_and_checked(tmp_path: Path) -> None:
    for lang in ("vi", "en"):
        (tmp_path / lang / "queue").mkdir(parents=True)
        (tmp_path / lang / "queue" / "notice.wav").write_bytes(b"RIFF")
    data, loc = loads("""
recording:
  consent_prompt: queue/notice
  queues:
    sales: {policy: always}
    support: {policy: always, consent_prompt: ""}
    billing: {policy: never}
""", "callcenter.yaml")
    s = parse_settings(Reader(data, loc), Path("/data"), tmp_path)
    assert s.consent_prompt("sales", None) == "queue/notice"
    assert s.consent_prompt("support", None) is None          # turned off for that queue
    assert s.consent_prompt("billing", None) is None          # never recorded: nothing to consent to
    assert s.consent_prompt("other", None) is None            # the default policy is never
    (tmp_path / "en" / "queue" / "notice.wav").unlink()
    with pytest.raises(ConfigError) as err:
        parse_settings(Reader(data, loc), Path("/data"), tmp_path)
    assert "callcenter.yaml:3: recording.consent_prompt: prompt file missing" in str(err.value)
    assert "/en: queue/notice" in str(err.value)


class Agent:
    """A leg as the recordings see it: its id."""

    def __init__(self, leg_id: str) -> None:
        self.id = leg_id


class FakeTap:
    """Writes one second of a constant to a mono WAV on close (what a PjTap's recorder leaves behind)."""

    def __init__(self, leg: object, path: str, log: list[str]) -> None:
        self.path, self.log, self.muted = Path(path), log, False
        log.append(f"open {self.path.name}")
        mono(self.path, [])

    def mute(self, muted: bool) -> None:
        self.log.append(f"mute {muted}")

    def mix(self, leg: Agent, on: bool) -> None:
        self.log.append(f"mix {self.path.name} {leg.id} {on}")

    def close(self) -> None:
        mono(self.path, [1000 if "caller" in self.path.name else -1000] * 8000)
        self.log.append(f"close {self.path.name}")


def recordings(tmp_path: Path, text: str, log: list[str], fail: Exception | None = None):
    from callcenter.calls.recording import Recordings

    def tap(leg: object, path: str) -> FakeTap:
        if fail is not None:
            raise fail
        return FakeTap(leg, path, log)

    return Recordings(settings(text, tmp_path), tap)


def test_on_demand_starts_on_resume_and_pause_mutes_both_taps(tmp_path: Path) -> None:
    import asyncio

    log: list[str] = []
    recs = recordings(tmp_path, "recording: {queues: {sales: {policy: on_demand}}}", log)
    assert recs.start("c1", Agent("caller"), Agent("agent"), queue="other", campaign=None) is None     # never: not even tracked
    s = recs.start("c2", Agent("caller"), Agent("agent"), queue="sales", campaign=None, agent_id="1001")
    assert s is not None and not s.recording and log == []
    recs.pause("c2")                      # nothing to pause yet
    recs.resume("c2")                     # on demand: starts now
    assert log == ["open c2.caller.wav", "open c2.agent.wav"] and s.recording
    recs.pause("c2")
    recs.resume("c2")
    assert log[2:] == ["mute True", "mute True", "mute False", "mute False"]
    assert len(s.pauses) == 1 and s.pauses[0][1] is not None
    path = asyncio.run(recs.finish(s, consent=True))
    assert path is not None and path.name == "c2.wav" and "c2" not in recs.live
    with wave.open(str(path)) as w:
        both = array.array("h", w.readframes(8000))
    left, right = both[0::2], both[1::2]
    assert set(left) == {1000} and set(right) == {-1000}
    assert not list(path.parent.glob("c2.*.wav"))
    assert recs.find("c2", None) == path            # before the CDR writer has stored the call's link


def test_a_call_recorded_again_gets_a_file_of_its_own(tmp_path: Path) -> None:
    """A caller transferred back to a queue and answered by another agent: the second conversation goes to
    <call id>-2.wav (the first is not overwritten, stored or still being written), the CDR keeps the first."""
    import asyncio

    from callcenter.cdr.record import CallRecord

    log: list[str] = []
    recs = recordings(tmp_path, "recording: {policy: always}", log)
    rec = CallRecord("c9", "inbound", "0901234567", "1800", 0.0)
    first = recs.start(rec.call_id, Agent("caller"), Agent("agent"), queue="sales", campaign=None)
    assert first is not None and first.path.name == f"{rec.call_id}.wav"
    asyncio.run(recs.end(first, rec))
    again = recs.start(rec.call_id, Agent("caller"), Agent("agent2"), queue="support", campaign=None)
    assert again is not None and again.path.name == f"{rec.call_id}-2.wav"
    third = recs.start(rec.call_id, Agent("caller"), Agent("agent3"), queue="support", campaign=None)
    assert third is not None and third.path.name == f"{rec.call_id}-3.wav"     # the second is still live
    asyncio.run(recs.end(again, rec))
    assert rec.recording == str(first.path) and first.path.is_file() and again.path.is_file()
    assert recs.live.get(rec.call_id) is third                                   # the second's end left it
    assert recs.find(rec.call_id, str(again.path)) == again.path
    assert recs.find(rec.call_id, str(again.path.with_name("-2.wav"))) is None
    assert recs.find(rec.call_id, str(again.path.with_name(f"{rec.call_id}-x.wav"))) is None
    assert recs.find(rec.call_id, None) == first.path
    assert recs.find(rec.call_id, str(first.path), take=2) == again.path          # GET /recordings/{id}?take=2
    assert recs.find(rec.call_id, str(first.path), take=3) is None               # still being recorded


def test_a_tap_that_cannot_start_leaves_the_call_unrecorded_and_counts(tmp_path: Path) -> None:
    import asyncio

    from callcenter import metrics

    class TapError(Exception):       # what telephony.recorder.PjTap raises: a reason for the metric
        reason = "disk_full"

    log: list[str] = []
    recs = recordings(tmp_path, "recording: {policy: always}", log, fail=TapError("no space"))
    before = metrics.RECORDING_FAILURES_TOTAL.labels(reason="disk_full")._value.get()
    s = recs.start("c3", Agent("caller"), Agent("agent"), queue="sales", campaign=None)
    assert s is not None and not s.recording and s.failed == "disk_full"
    assert metrics.RECORDING_FAILURES_TOTAL.labels(reason="disk_full")._value.get() == before + 1
    assert asyncio.run(recs.finish(s)) is None
    recs.live["c3"] = s
    recs.resume("c3")                     # a failed recording does not start again
    assert log == []


# -- finding a stored recording and serving it --------------------------------------------------------


def test_a_recording_is_found_from_the_path_its_cdr_names(tmp_path: Path) -> None:
    """No search of the day folders: the CDR's path (its day folder and name) under the recording dir."""
    recs = recordings(tmp_path, "recording: {dir: rec, policy: always}", [])
    wav = tmp_path / "rec" / "2026" / "11" / "30" / "abc123.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF")
    assert recs.find("abc123", str(wav)) == wav
    assert recs.find("abc123", "/old/data/dir/rec/2026/11/30/abc123.wav") == wav     # the dir moved since
    assert recs.find("abc123", None) is None                                          # no CDR link, not stored here
    assert recs.find("other", str(wav)) is None                                       # another call's path
    assert recs.find("abc123", str(tmp_path / "abc123.wav")) is None                  # not in a day folder
    assert recs.find("abc123", "/x/2026/11/30/../../../../etc/abc123.wav") is None
    assert recs.find("../abc123", str(wav)) is None
    wav.unlink()
    assert recs.find("abc123", str(wav)) is None                                      # purged


def _serve(path: Path, headers: dict[str, str]):
    import asyncio

    from callcenter.api.http import Request
    from callcenter.api.recordings import serve_wav

    return asyncio.run(serve_wav(Request("GET", "/x", {}, {}, headers, b""), path, "x"))


def test_a_download_is_streamed_from_the_file_in_chunks(tmp_path: Path) -> None:
    """The whole file and a range are answered from the open file, 64 KiB a read as the client takes
    them (never the whole file in memory); the file is closed at the end."""
    from twisted.web.test.requesthelper import DummyRequest

    from callcenter.api.http import FileBody, HttpRouter

    data = os.urandom(300_000)
    path = tmp_path / "big.wav"
    path.write_bytes(data)
    for headers, status, want in (({}, 200, data), ({"range": "bytes=100000-"}, 206, data[100000:]),
                                  ({"range": "bytes=5-9"}, 206, data[5:10])):
        resp = _serve(path, headers)
        assert resp.status == status and isinstance(resp.body, FileBody)
        assert resp.headers["content-length"] == str(len(want))
        request = DummyRequest([b"x"])
        request._disconnected = False
        HttpRouter._finish(request, resp)
        assert b"".join(request.written) == want and request.finished
        assert max(len(c) for c in request.written) <= 65536 and resp.body.file.closed
    resp = _serve(path, {"range": "bytes=400000-"})
    assert resp.status == 416 and resp.headers["content-range"] == "bytes */300000" and resp.body == b""


def test_the_agents_keys_pause_and_resume_its_calls_recording_only(tmp_path: Path) -> None:
    import asyncio

    log: list[str] = []
    recs = recordings(tmp_path, "recording: {policy: always}", log)
    assert (recs.settings.pause_digits, recs.settings.resume_digits) == ("*1", "*2")     # the defaults
    agent, caller = Agent("a1"), Agent("c1")
    s = recs.start("c4", caller, agent, queue="sales", campaign=None)
    assert s is not None and s.recording
    for key in "*1":
        recs.on_digit(caller, key)             # the caller's keys do nothing
    recs.on_digit(agent, "*")
    recs.on_digit(Agent("other"), "1")
    assert not s.paused
    recs.on_digit(agent, "1")
    assert s.paused
    for key in "5*2":
        recs.on_digit(agent, key)
    assert not s.paused and len(s.pauses) == 1
    recs.on_digit(agent, "*")
    s.key_at -= 10                             # a key long after the last one starts a new sequence
    recs.on_digit(agent, "1")
    assert not s.paused
    asyncio.run(recs.finish(s))
    recs.on_digit(agent, "*")
    recs.on_digit(agent, "1")                  # the call is over: nothing to pause
    assert log.count("mute True") == 2


def test_keys_off_and_a_conference_party_mixed_in_once_recorded(tmp_path: Path) -> None:
    import asyncio

    from callcenter.cdr.record import CallRecord

    log: list[str] = []
    recs = recordings(tmp_path, "recording: {policy: on_demand, pause_digits: '', resume_digits: ''}", log)
    rec = CallRecord("c5", "outbound", "x", "y", 0.0, queue="sales", agent_id="1001")
    agent = Agent("a5")
    s = recs.begin(rec, Agent("c5"), agent)
    assert s is not None and not s.recording and s.agent_id == "1001"
    party = Agent("p1")
    recs.mix("c5", party, True)                # not recording yet: remembered
    recs.on_digit(agent, "*")
    recs.on_digit(agent, "2")                  # keys are off
    assert not s.recording
    recs.resume("c5")
    assert log[-1] == "mix c5.agent.wav p1 True"
    recs.mix("c5", party, False)
    assert log[-1] == "mix c5.agent.wav p1 False" and s.mixed == []
    asyncio.run(recs.end(s, rec))
    assert rec.recording is not None and rec.recording.endswith("c5.wav")


def test_every_take_of_a_call_is_counted_in_its_cdr_filed_under_its_start_and_purged(tmp_path: Path) -> None:
    """A call that started a second before midnight (UTC) is recorded twice (sales, then support after a transfer
    back to a queue): both takes are in the start's day folder, the CDR links the first and counts two (through
    the store too), the second is found from the CDR even once the first is purged, and retention deletes each
    take with its sidecar when its own queue's days are past."""
    import asyncio

    from callcenter.cdr.record import CallRecord
    from callcenter.cdr.sqlite_store import SqliteStore

    log: list[str] = []
    recs = recordings(tmp_path / "data", "recording: {queues: {sales: {policy: always, retention_days: 10}, "
                                         "support: {policy: always, retention_days: 30}}}", log)
    rec = CallRecord("c8", "inbound", "0901234567", "1800", 1767225599.0)       # 2025-12-31 23:59:59 UTC
    for queue in ("sales", "support"):
        asyncio.run(recs.end(recs.begin(rec, Agent("caller"), Agent(f"agent-{queue}"), queue), rec))
    day = tmp_path / "data" / "recordings" / "2025" / "12" / "31"
    first, second = day / "c8.wav", day / "c8-2.wav"
    assert rec.recording == str(first) and rec.recording_takes == 2
    assert sorted(p.name for p in day.iterdir()) == ["c8-2.json", "c8-2.wav", "c8.json", "c8.wav"]
    store = SqliteStore(tmp_path / "cdr.db")
    try:
        store.put_call(rec)
        stored = store.get_call("c8")
    finally:
        store.close()
    assert stored is not None and stored.recording == str(first) and stored.recording_takes == 2
    assert [recs.find("c8", stored.recording, take) for take in (1, 2, 3)] == [first, second, None]

    now = time.time()
    os.utime(first, (now - 20 * 86400, now - 20 * 86400))
    os.utime(second, (now - 20 * 86400, now - 20 * 86400))
    assert purge(tmp_path / "data" / "recordings", default_days=90, now=now) == 1        # sales' 10 days
    assert not first.exists() and not (day / "c8.json").exists()
    assert recs.find("c8", stored.recording, 2) == second                              # support's 30: kept
    assert purge(tmp_path / "data" / "recordings", default_days=90, now=now + 11 * 86400) == 1
    assert not day.exists()                                                            # every take, sidecars


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_store_made_before_takes_were_counted_gets_the_column(kind: str, tmp_path: Path,
                                                                request: pytest.FixtureRequest) -> None:
    """A CDR store made by an older version (no ``recording_takes``) gets the column when opened; its rows
    read as 0 (the first recording only, as the CDR linked then), new rows keep their count."""
    from callcenter.cdr.record import CallRecord
    from callcenter.cdr.writer import open_store

    url = f"sqlite:///{tmp_path}/cdr.db" if kind == "sqlite" else request.getfixturevalue("pg_dsn")
    store = open_store(url)
    try:
        store.put_call(CallRecord("old", "inbound", "0901", "100", 1.0, recording="2026/01/01/old.wav", version=1))
        store._execute("ALTER TABLE cdr_calls DROP COLUMN recording_takes")
    finally:
        store.close()
    store = open_store(url)
    try:
        store.put_call(CallRecord("new", "inbound", "0902", "100", 2.0, recording_takes=3, version=1))
        old, new = store.get_call("old"), store.get_call("new")
    finally:
        store.close()
    assert old is not None and old.recording_takes == 0 and old.recording == "2026/01/01/old.wav"
    assert new is not None and new.recording_takes == 3
