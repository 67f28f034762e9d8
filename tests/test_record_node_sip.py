"""The IVR record node's silence detection over real SIP: it reads the level of what the caller sends
(PjLeg.record, pjsua2's getTxLevel on the call's port), so a caller still talking is not cut off, and a
silent one is cut after ``silence_seconds``. The caller's tone is proved in the recording itself."""

from __future__ import annotations

import io
import shutil
import wave
from typing import Any

import pytest
import sipp
import tones
from repo import REPO
from worker_proc import WorkerProc, flush, new_worker

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

TONE_HZ = 700.0
FLOW = """name: rec
languages: [vi]
default_language: vi
start: message
nodes:
  message:
    type: record
    variable: message
    max_seconds: 20
    silence_seconds: 2
    next: bye
  bye:
    type: hangup
"""


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Any:
    tmp = tmp_path_factory.mktemp("record-node")
    ivr = tmp / "ivr"
    shutil.copytree(REPO / "ivr_scripts", ivr)
    (ivr / "rec.yaml").write_text(FLOW)
    flush(redis_server.url)
    w = new_worker(tmp, redis_server.url)
    w.write_config(ivr_scripts=ivr, routes={"rec": "rec", "default": "hotline"})
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


def recorded(w: WorkerProc, number: str, steps: list[tuple]) -> list[int]:
    """The samples the record node saved of a call from `number` making `steps` (the worker hangs up)."""
    caller = sipp.caller(w.target, steps, number=number, service="rec", codecs="8")
    assert caller.wait(60) == 0, caller.errors() + w.tail()
    cdr = w.call_from(number)
    wav = w.tmp / "recordings" / f"{cdr.call_id}-rec-message.wav"
    with wave.open(io.BytesIO(wav.read_bytes())) as f:
        assert f.getframerate() == 8000 and f.getsampwidth() == 2 and f.getnchannels() == 1
        frames = f.readframes(f.getnframes())
    return [int.from_bytes(frames[i:i + 2], "little", signed=True) for i in range(0, len(frames), 2)]


def test_a_caller_still_talking_is_not_cut_off(worker: WorkerProc) -> None:
    """6 s of tone then silence, silence_seconds 2: the recording runs to ~ the tone's end + 2 s."""
    pcm = recorded(worker, "0901700001", [("tone", TONE_HZ, 6000), ("wait_bye", 30000)])
    seconds = len(pcm) / 8000
    assert 6.0 <= seconds <= 10.0, seconds
    assert tones.detect(pcm[8000:8000 * 5], [TONE_HZ, 1000.0]) == {TONE_HZ}   # the caller's tone, recorded
    assert tones.detect(pcm[-8000:], [TONE_HZ]) == set()                       # and the quiet that ended it


def test_a_silent_caller_is_cut_after_silence_seconds(worker: WorkerProc) -> None:
    pcm = recorded(worker, "0901700002", [("wait_bye", 30000)])
    seconds = len(pcm) / 8000
    assert 1.5 <= seconds <= 4.0, seconds
