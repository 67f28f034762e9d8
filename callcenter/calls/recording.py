"""Call recording: who is recorded (the policy per queue and per campaign), the two mono taps of a bridged
call, pause/resume (API and the agent's keypad), the stereo WAV, failures and retention.

Every conversation of a caller (customer) with an agent is recorded from one place, :meth:`Recordings.begin`
(its queue's or campaign's policy decides) and stored by :meth:`Recordings.end`, which links it in the CDR:
queue calls and campaign calls handed to an agent (``calls.queueing``), callbacks, preview dials and
click-to-call (``calls.outbound.OutboundCalls.talk``). A conference (``calls.conference``) stays one file:
each added party is mixed into the agent's channel (:meth:`Recordings.mix`; muted, it is taken out).

A recorded call is two mono taps (``telephony.recorder.PjTap``, each fed only by one party's received
audio, the agent's also by the conference's added parties, and written by pjmedia's clock thread) that
start together when caller and agent are bridged. When
the call ends the taps are closed on the loop thread and merged in a worker thread into one 8 kHz 16-bit
stereo WAV, caller on the left, agent on the right, at ``<dir>/YYYY/MM/DD/<call_id>.wav`` (UTC date of
the call's start, mode 0640; a call recorded again, a caller transferred back to a queue and answered by another
agent: ``<call_id>-2.wav``, ``-3``, ... in the same folder; the CDR links the first, ``recording``, and counts them,
``recording_takes``: ``GET /recordings/{call_id}?take=N``); the mono files are removed. A ``<call_id>.json``
beside each says how long to keep it (``retention_days``, its own queue's); :func:`purge` deletes what is past it
(the worker runs it hourly).

Pause mutes both taps (the paused stretch is silence of its real length). The agent pauses from its phone
by keying ``pause_digits`` (default ``*1``) and resumes with ``resume_digits`` (``*2``): RFC 2833 / SIP INFO
keys reach the worker out of band, so the bridge never plays them to the caller. A disk-full or write error
never touches the call: the recording is dropped and ``callcenter_recording_failures_total{reason}``
counts it (alert ``CallcenterRecordingFailing``).

This module does not import pjsua2: the worker hands :class:`Recordings` a tap factory.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import errno
import json
import os
import random
import re
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from callcenter import logs, metrics, privacy
from callcenter.cdr.record import CallRecord
from callcenter.telephony.api import Leg
from callcenter.yamlsrc import Reader

log = logs.get("recording")

ALWAYS, NEVER, SAMPLE, ON_DEMAND = "always", "never", "sample", "on_demand"
MODES = (ALWAYS, NEVER, SAMPLE, ON_DEMAND)
RATE = 8000
ORPHAN_SECONDS = 86400    # a mono part this old belongs to no live call (purge deletes it)
SETTLE_SECONDS = 2.0      # how long pjmedia may take to close a tap's file (a few clock ticks)
FAILURE_REASONS = ("disk_full", "write_error", "too_many")   # callcenter_recording_failures_total{reason}
CALL_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")      # what a recording's file may be named after
RECENT = 1000             # stored paths kept in memory for the CDR writer's lag (Recordings.recent)
DIGITS = re.compile(r"^[0-9*#]{1,4}$")             # a pause/resume key sequence
DIGIT_GAP = 3.0           # seconds allowed between the keys of one sequence
_STORED = re.compile(r"(?:^|/)(\d{4}/\d{2}/\d{2})/([0-9A-Za-z_-]{1,64})\.wav$")   # a stored file's day and name
_TAKE = re.compile(r"-(\d{1,4})$")        # a call's second, third, ... recording: <call_id>-2.wav


@dataclass(frozen=True)
class Policy:
    """``always``, ``never``, ``on_demand`` (starts only when the API asks) or ``sample`` (``percent``)."""

    mode: str = NEVER
    percent: float = 0.0
    retention_days: int | None = None     # None: the recording section's retention_days
    consent_prompt: str | None = None     # a prompt name (sounds/<lang>/<name>.wav) played before the agent joins

    def wants(self, draw: Callable[[], float] = random.random) -> bool:
        """Record this call from the bridge on? (on_demand: no, until asked)."""
        if self.mode == ALWAYS:
            return True
        if self.mode == SAMPLE:
            return self.percent >= 100 or draw() * 100 < self.percent
        return False


@dataclass(frozen=True)
class RecordingSettings:
    dir: Path
    default: Policy = field(default_factory=Policy)
    retention_days: int = 90
    queues: dict[str, Policy] = field(default_factory=dict)
    campaigns: dict[str, Policy] = field(default_factory=dict)
    pause_digits: str = "*1"               # the agent's keys that pause a recording ("": none)
    resume_digits: str = "*2"              # ... and resume it (or start an on_demand one)

    def with_campaigns(self, own: dict[str, Policy]) -> RecordingSettings:
        """These settings with the policies campaign files set in their own ``recording:`` section (each wins
        over the ``campaigns:`` entry of this section); one without a consent prompt takes the section's."""
        filled = {cid: p if p.consent_prompt else replace(p, consent_prompt=self.default.consent_prompt)
                  for cid, p in own.items()}
        return replace(self, campaigns={**self.campaigns, **filled})

    def policy(self, queue: str | None, campaign: str | None) -> Policy:
        """A campaign's policy wins over its queue's (outbound calls queue for an agent too)."""
        if campaign and campaign in self.campaigns:
            return self.campaigns[campaign]
        if queue and queue in self.queues:
            return self.queues[queue]
        return self.default

    def retention(self, policy: Policy) -> int:
        return self.retention_days if policy.retention_days is None else policy.retention_days

    def consent_prompt(self, queue: str | None, campaign: str | None) -> str | None:
        """The prompt a caller of this queue (campaign) hears before the agent joins; None when the call is
        never recorded or no prompt is configured."""
        policy = self.policy(queue, campaign)
        return None if policy.mode == NEVER else policy.consent_prompt


RECORDING_KEYS = ("dir", "policy", "sample", "retention_days", "consent_prompt", "queues", "campaigns",
                  "pause_digits", "resume_digits")
POLICY_KEYS = ("policy", "sample", "retention_days", "consent_prompt")
CONSENT_LANGUAGES = ("vi", "en")


def _policy(r: Reader, default_mode: str = NEVER, consent: str | None = None,
            sounds: Path | None = None) -> Policy:
    """``policy: always|never|on_demand|sample`` with ``sample: <percent>`` (``sample`` alone means it),
    ``retention_days`` and ``consent_prompt`` (checked in ``sounds`` for every language, when given)."""
    mode = r.text("policy", SAMPLE if "sample" in r else default_mode, choices=MODES)
    percent = r.number("sample", 0.0, 0, 100) if "sample" in r else 0.0
    if "sample" in r and mode != SAMPLE:
        raise r.fail("sample", f"a sampled percentage needs policy: sample, not {mode}")
    if mode == SAMPLE and "sample" not in r:
        raise r.fail("policy", "policy sample needs sample: <percent>")
    days = r.integer("retention_days", None, 1, 36500)
    prompt = r.text("consent_prompt", consent or "") or None
    if prompt is not None and sounds is not None and "consent_prompt" in r:
        missing = [lang for lang in CONSENT_LANGUAGES if not (sounds / lang / f"{prompt}.wav").is_file()]
        if missing:
            raise r.fail("consent_prompt", f"prompt file missing in {sounds}/{','.join(missing)}: {prompt} "
                                           "(run scripts/make_prompts.py)")
    return Policy(mode, percent, days, prompt)


def campaign_policy(r: Reader) -> Policy:
    """A campaign file's own ``recording:`` section (``dialer.campaign``): the keys of a queue's policy."""
    r.refuse_unknown(POLICY_KEYS)
    return _policy(r)


def _digits(s: Reader) -> tuple[str, str]:
    """``pause_digits`` / ``resume_digits``: 1-4 keys each (quoted in YAML: ``"*1"``), both or neither."""
    keys = (s.text("pause_digits", "*1"), s.text("resume_digits", "*2"))
    for name, value in zip(("pause_digits", "resume_digits"), keys, strict=True):
        if value and not DIGITS.match(value):
            raise s.fail(name, f"expected 1 to 4 keys of 0-9, * and # (quote it: \"*1\"), or \"\" for none; "
                               f"got {value!r}")
    pause, resume = keys
    if bool(pause) != bool(resume):
        raise s.fail("resume_digits" if pause else "pause_digits", "pause_digits and resume_digits go together")
    if pause and (pause.endswith(resume) or resume.endswith(pause)):
        raise s.fail("resume_digits", f"{resume!r} and pause_digits {pause!r}: neither may end the other")
    return pause, resume


def parse_settings(top: Reader, data_dir: Path, sounds: Path | None = None) -> RecordingSettings:
    """The ``recording:`` section of the worker config (see callcenter.yaml). A queue or campaign without
    its own ``consent_prompt`` takes the section's."""
    s = top.section("recording", RECORDING_KEYS)
    raw_dir = Path(s.text("dir", "recordings"))
    default = _policy(s, sounds=sounds)
    pause, resume = _digits(s)
    queues: dict[str, Policy] = {}
    campaigns: dict[str, Policy] = {}
    for key, into in (("queues", queues), ("campaigns", campaigns)):
        for name, own in s.section(key).sections():
            own.refuse_unknown(POLICY_KEYS)
            into[name] = _policy(own, consent=default.consent_prompt, sounds=sounds)
    return RecordingSettings(dir=raw_dir if raw_dir.is_absolute() else data_dir / raw_dir,
                             default=Policy(default.mode, default.percent, consent_prompt=default.consent_prompt),
                             retention_days=default.retention_days or 90, queues=queues, campaigns=campaigns,
                             pause_digits=pause, resume_digits=resume)


# -- the stereo file ---------------------------------------------------------------------------------


class RecordingError(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _os_reason(exc: OSError, where: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "disk_full"
    return "disk_full" if _nearly_full(where) else "write_error"


def _nearly_full(where: Path) -> bool:
    try:
        st = os.statvfs(where)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def _read_mono(path: Path, settle: float = 0.0) -> array.array[int]:
    """The samples of a mono part. pjmedia writes its WAV header when the bridge lets go of the recorder's
    port, a clock tick after the tap closed: wait up to ``settle`` seconds for a header that counts what
    the file holds (44 bytes + the data). A header counting more than the file holds after that: frames
    pjmedia could not write (disk full or a write error mid-call)."""
    deadline = time.monotonic() + settle
    while True:
        try:
            with wave.open(str(path), "rb") as w:
                if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != RATE:
                    raise RecordingError(f"{path.name}: not 8 kHz mono 16-bit", "write_error")
                expected = w.getnframes()
                data = w.readframes(expected)
            size = path.stat().st_size
            problem = "" if len(data) == expected * 2 and size == 44 + expected * 2 else \
                f"{path.name}: {len(data) // 2} of {expected} frames on disk ({size} bytes)"
        except (wave.Error, EOFError, OSError) as exc:
            problem = f"{path.name}: {exc}"
        if not problem:
            break
        if time.monotonic() >= deadline:
            raise RecordingError(problem, "disk_full" if _nearly_full(path.parent) else "write_error")
        time.sleep(0.02)
    samples = array.array("h")
    samples.frombytes(data)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def merge_stereo(left: Path, right: Path, out: Path, settle: float = 0.0) -> float:
    """Interleave two 8 kHz mono 16-bit WAVs into ``out`` (left, right); the shorter is padded with
    silence. Returns the length in seconds. Raises RecordingError (with a metric reason). ``settle``:
    how long a part's header may take to be written (see _read_mono)."""
    a, b = _read_mono(left, settle), _read_mono(right, settle)
    n = max(len(a), len(b))
    a.extend([0] * (n - len(a)))
    b.extend([0] * (n - len(b)))
    both = array.array("h", bytes(4 * n))
    both[0::2] = a
    both[1::2] = b
    if sys.byteorder == "big":
        both.byteswap()
    tmp = out.with_suffix(".part")
    try:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(both.tobytes())
        privacy.private_file(tmp)
        os.replace(tmp, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise RecordingError(f"{out.name}: {exc.strerror}", _os_reason(exc, out.parent)) from None
    return n / RATE


# -- live recordings ---------------------------------------------------------------------------------


class Tap(Protocol):
    """One party's received audio into a mono WAV (``telephony.recorder.PjTap``)."""

    def mute(self, muted: bool) -> None: ...

    def mix(self, leg: Leg, on: bool) -> None:
        """Also record what ``leg`` receives (a conference party), mixed in; or (``on=False``) no longer."""

    def close(self) -> None: ...


TapFactory = Callable[[Leg, str], Tap]


@dataclass
class Session:
    call_id: str
    policy: Policy
    path: Path                               # the stereo file it becomes
    caller: Leg
    agent: Leg
    agent_id: str | None = None
    started: float = 0.0
    taps: list[Tap] = field(default_factory=list)
    paused: bool = False
    pauses: list[tuple[float, float | None]] = field(default_factory=list)   # offsets into the recording
    failed: str | None = None
    mixed: list[Leg] = field(default_factory=list)   # conference parties in the agent's channel
    keys: str = ""                                   # the agent's last keys (pause/resume_digits)
    key_at: float = 0.0

    @property
    def recording(self) -> bool:
        return bool(self.taps)


class Recordings:
    """This worker's recorded calls, by call id (the API pauses and resumes them here)."""

    def __init__(self, settings: RecordingSettings, tap: TapFactory, *,
                 draw: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self._tap = tap
        self._draw = draw
        self.live: dict[str, Session] = {}
        self._agents: dict[str, Session] = {}     # by the agent's leg id: its keypad pauses and resumes
        # just stored here, by call id: found before the CDR writer has stored the call's link (oldest go first)
        self.recent: collections.OrderedDict[str, Path] = collections.OrderedDict()

    def path_for(self, call_id: str, when: float, take: int = 1) -> Path:
        """Where the ``take``-th recording of a call started at ``when`` is stored."""
        day = time.strftime("%Y/%m/%d", time.gmtime(when))
        return self.settings.dir / day / (f"{call_id}.wav" if take == 1 else f"{call_id}-{take}.wav")

    def _fresh_path(self, call_id: str, when: float) -> Path:
        """The call's first free recording path: a caller transferred back to a queue is recorded again with its
        next agent, into a file of its own (never over the first, stored or still being recorded)."""
        live = self.live.get(call_id)
        take = 1
        while True:
            path = self.path_for(call_id, when, take)
            if not (live is not None and live.path == path or path.exists()
                    or path.with_suffix(".caller.wav").exists()):
                return path
            take += 1

    def find(self, call_id: str, recorded: str | None, take: int = 1) -> Path | None:
        """The stored recording of a finished call from ``recorded``, the path its CDR names (its
        ``recording`` column): no search. Only the day folder and name count, under this worker's recording
        dir (the dir may have moved since; a path naming another call or outside a day folder is no one's).
        None when the CDR names none or the file is gone (purged). A call this worker just stored whose CDR
        is not in the store yet: the path it stored. ``take`` 2, 3, ...: the call's next recordings, beside
        the first (``<call_id>-2.wav``, in its day folder: every take of a call is filed under the call's start),
        found even when the first is gone (each take has its own retention)."""
        if not CALL_ID.match(call_id):
            return None
        if not recorded:
            recent = self.recent.get(call_id)
            recorded = str(recent) if recent is not None else None
        m = _STORED.search((recorded or "").replace(os.sep, "/"))
        name = m.group(2) if m is not None else ""
        if m is None or name != call_id and not (name.startswith(call_id) and _TAKE.fullmatch(name[len(call_id):])):
            return None
        if take > 1:
            name = f"{call_id}-{take}"
        path = self.settings.dir / m.group(1) / f"{name}.wav"
        return path if path.is_file() else None

    def start(self, call_id: str, caller: Leg, agent: Leg, *, queue: str | None, campaign: str | None,
              agent_id: str | None = None, when: float | None = None) -> Session | None:
        """Caller and agent were just bridged: start recording if the policy says so (on_demand: ready
        for the API's resume). Never raises: a failure leaves the call unrecorded. ``when``: the call's start
        (its day folder holds all its takes; default now)."""
        policy = self.settings.policy(queue, campaign)
        if policy.mode == NEVER or not CALL_ID.match(call_id):
            return None
        path = self._fresh_path(call_id, time.time() if when is None else when)
        session = Session(call_id, policy, path, caller, agent, agent_id)
        self.live[call_id] = session
        self._agents[agent.id] = session
        if policy.wants(self._draw):
            self._open(session)
        return session

    def _open(self, s: Session) -> None:
        try:
            privacy.private_dir(s.path.parent)
        except OSError as exc:
            self._fail(s, _os_reason(exc, self.settings.dir), str(exc))
            return
        try:
            for leg, side in ((s.caller, "caller"), (s.agent, "agent")):
                part = s.path.with_suffix(f".{side}.wav")
                s.taps.append(self._tap(leg, str(part)))
                privacy.private_file(part)
        except Exception as exc:  # noqa: BLE001 - a recording never takes the call down
            reason = getattr(exc, "reason", "write_error")
            self._close_taps(s)
            self._remove_parts(s)
            self._fail(s, reason if reason in FAILURE_REASONS else "write_error", str(exc))
            return
        for leg in s.mixed:
            self._mix(s, leg, True)
        s.started = time.monotonic()
        metrics.RECORDINGS_STARTED_TOTAL.inc()
        log.info("recording started", call_id=s.call_id, policy=s.policy.mode)

    def _fail(self, s: Session, reason: str, error: str) -> None:
        s.failed = reason
        metrics.RECORDING_FAILURES_TOTAL.labels(reason=reason).inc()
        log.error("recording failed; the call goes on unrecorded", call_id=s.call_id, reason=reason, error=error)

    def begin(self, rec: CallRecord, caller: Leg, agent: Leg, queue: str | None = None) -> Session | None:
        """The customer and the agent of the call ``rec`` were just bridged (a queue or campaign call, a
        callback, a preview dial, a click-to-call): record it if the policy of its campaign or of ``queue``
        (the queue that answered it; default its record's) says so. Every conversation is recorded from
        here; :meth:`end` stores it."""
        return self.start(rec.call_id, caller, agent, queue=queue or rec.queue, campaign=rec.campaign,
                          agent_id=rec.agent_id, when=rec.start)

    async def end(self, s: Session | None, rec: CallRecord) -> None:
        """The conversation :meth:`begin` recorded is over: store it and link it in ``rec`` (None when it was
        not recorded or failed): the first in ``recording``, every one counted in ``recording_takes`` (the
        takes' files are numbered 1..N without a gap: each gets the first free name)."""
        if s is not None:
            stored = await self.finish(s, consent=rec.recording_consent)
            if stored is not None:
                if rec.recording is None:     # the call's first recording stays linked
                    rec.recording = str(stored)
                rec.recording_takes += 1

    def mix(self, call_id: str, leg: Leg, on: bool) -> None:
        """A conference party of the call joined (or was muted, or left: ``on=False``): its audio goes into
        the agent's channel, or no longer. A call not recorded (yet: on_demand) remembers it."""
        s = self.live.get(call_id)
        if s is None:
            return
        if on and leg not in s.mixed:
            s.mixed.append(leg)
        elif not on and leg in s.mixed:
            s.mixed.remove(leg)
        if s.recording:
            self._mix(s, leg, on)

    def _mix(self, s: Session, leg: Leg, on: bool) -> None:
        try:
            s.taps[-1].mix(leg, on)
        except Exception as exc:  # noqa: BLE001 - a recording never takes the call down
            log.warning("conference party not mixed into the recording", call_id=s.call_id, leg=leg.id,
                        error=str(exc))

    def on_digit(self, leg: Leg, digit: str) -> None:
        """A key pressed on any leg (the softswitch's digit listeners): on the agent's leg of a live
        conversation, ``pause_digits`` pauses its recording and ``resume_digits`` resumes it, like the API."""
        s = self._agents.get(leg.id)
        pause, resume = self.settings.pause_digits, self.settings.resume_digits
        if s is None or not pause:
            return
        now = time.monotonic()
        s.keys = (s.keys[-3:] if now - s.key_at <= DIGIT_GAP else "") + digit
        s.key_at = now
        if s.keys.endswith(pause):
            s.keys = ""
            self.pause(s.call_id, by="phone")
        elif s.keys.endswith(resume):
            s.keys = ""
            self.resume(s.call_id, by="phone")

    def pause(self, call_id: str, by: str = "api") -> Session:
        s = self._session(call_id)
        if s.recording and not s.paused:
            for t in s.taps:
                t.mute(True)
            s.paused = True
            s.pauses.append((time.monotonic() - s.started, None))
            log.info("recording paused", call_id=call_id, by=by)
        return s

    def resume(self, call_id: str, by: str = "api") -> Session:
        """Unmute a paused recording; an on-demand call not recorded yet starts now."""
        s = self._session(call_id)
        if not s.recording and s.failed is None:
            self._open(s)
        elif s.paused:
            for t in s.taps:
                t.mute(False)
            s.paused = False
            begun, _ = s.pauses[-1]
            s.pauses[-1] = (begun, time.monotonic() - s.started)
            log.info("recording resumed", call_id=call_id, by=by)
        return s

    def _session(self, call_id: str) -> Session:
        s = self.live.get(call_id)
        if s is None:
            raise KeyError(call_id)
        return s

    async def finish(self, s: Session, *, consent: bool | None = None) -> Path | None:
        """The bridge ended: close the taps (here, on the loop thread), merge off the loop. The path of
        the stereo WAV, or None (not recorded, or failed: counted)."""
        if self.live.get(s.call_id) is s:
            del self.live[s.call_id]
        if self._agents.get(s.agent.id) is s:
            del self._agents[s.agent.id]
        if not s.recording:
            return None
        self._close_taps(s)
        days = self.settings.retention(s.policy)
        meta = {"call_id": s.call_id, "policy": s.policy.mode, "retention_days": days, "consent": consent,
                "pauses": [[round(a, 3), None if b is None else round(b, 3)] for a, b in s.pauses]}
        try:
            seconds = await asyncio.to_thread(self._store, s, meta)
        except RecordingError as exc:
            self._fail(s, exc.reason, str(exc))
            return None
        finally:
            await asyncio.to_thread(self._remove_parts, s)
        log.info("recording stored", call_id=s.call_id, seconds=round(seconds, 2), path=str(s.path))
        self.recent.setdefault(s.call_id, s.path)        # the first, as the CDR links it
        while len(self.recent) > RECENT:
            self.recent.popitem(last=False)
        return s.path

    @staticmethod
    def _store(s: Session, meta: dict[str, object]) -> float:
        seconds = merge_stereo(s.path.with_suffix(".caller.wav"), s.path.with_suffix(".agent.wav"), s.path,
                               settle=SETTLE_SECONDS)
        sidecar = s.path.with_suffix(".json")
        try:
            sidecar.write_text(json.dumps(meta))
            privacy.private_file(sidecar)
        except OSError as exc:
            with contextlib.suppress(OSError):
                s.path.unlink()
            raise RecordingError(f"{sidecar.name}: {exc.strerror}", _os_reason(exc, sidecar.parent)) from None
        return seconds

    @staticmethod
    def _close_taps(s: Session) -> None:
        taps, s.taps = s.taps, []
        for t in taps:
            try:
                t.close()
            except Exception as exc:  # noqa: BLE001 - the leg may be gone; the file is closed regardless
                log.warning("closing a recording tap failed", call_id=s.call_id, error=str(exc))

    @staticmethod
    def _remove_parts(s: Session) -> None:
        for side in ("caller", "agent"):
            with contextlib.suppress(FileNotFoundError):
                s.path.with_suffix(f".{side}.wav").unlink()


def purge(root: Path, default_days: int, now: float | None = None) -> int:
    """Delete recordings past their retention (the sidecar's ``retention_days``, else ``default_days``,
    counted from the file's mtime); empty day directories go too. Returns how many were deleted."""
    now = time.time() if now is None else now
    deleted = 0
    for wav in root.glob("*/*/*/*.wav"):
        if wav.name.count(".") > 1:
            # a mono part: of a call in progress, or left by a worker that died (a day old: no call lasts that)
            with contextlib.suppress(OSError):
                if wav.stat().st_mtime + ORPHAN_SECONDS < now:
                    wav.unlink()
                    log.warning("orphaned recording part deleted", path=str(wav))
            continue
        sidecar = wav.with_suffix(".json")
        days = default_days
        with contextlib.suppress(OSError, ValueError, TypeError):
            days = int(json.loads(sidecar.read_text()).get("retention_days") or default_days)
        try:
            if wav.stat().st_mtime + days * 86400 > now:
                continue
            wav.unlink()
        except FileNotFoundError:
            continue
        with contextlib.suppress(FileNotFoundError):
            sidecar.unlink()
        deleted += 1
    for day in sorted(root.glob("*/*/*"), reverse=True):
        with contextlib.suppress(OSError):
            day.rmdir()     # only when empty
    if deleted:
        metrics.RECORDINGS_PURGED_TOTAL.inc(deleted)
        log.info("recordings purged", deleted=deleted)
    return deleted
