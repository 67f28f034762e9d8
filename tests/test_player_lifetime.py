"""Regression test for the event-thread crash at 1000 concurrent calls (issue 11).

The cause (HACKING.md "Media players and pjmedia's event thread"): a WAV player posts its EOF to
pjmedia's event thread; deleting the pjsua2 `AudioMediaPlayer` frees the C++ object at once while its
port lives on until the conference bridge drops it on the next clock tick, so an EOF event still
queued or in flight is delivered to the freed object (`eof_cb` -> `onEof2` through a freed vtable).
At 1000 calls the event thread lagged behind the prompts the IVR was tearing down; here it is made to
lag on purpose: one player's `onEof2` (a Python override, run on the event thread) sleeps, so the EOFs
of the players deleted meanwhile wait in the queue. Today's build segfaults; the fixed one
(scripts/pjproject-player-eof-lifetime.patch) detaches the callback before the object goes.

Only pjsua2, the null sound device and WAV files: no SIP peer is needed to reach the race.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import pytest

CHILD = textwrap.dedent("""
    import gc, sys, time
    import pjsua2 as pj
    from callcenter.telephony.softswitch import media_only_endpoint

    short, longer, rounds, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    class SlowEof(pj.AudioMediaPlayer):
        # Runs on pjmedia's event thread and holds it: every EOF posted meanwhile waits in its queue.
        def onEof2(self):
            time.sleep(0.4)

    ep = media_only_endpoint()
    sink = ep.audDevManager().getPlaybackDevMedia()   # the null device's clock reads what it hears

    for r in range(rounds):
        stall = SlowEof()
        stall.createPlayer(short, pj.PJMEDIA_FILE_NO_LOOP)
        stall.startTransmit(sink)
        players = []
        for _ in range(8):   # 8 + 1 EOFs fit the event queue (PJMEDIA_EVENT_MAX_EVENTS 16)
            p = pj.AudioMediaPlayer()
            if kind == "playlist":   # PjLeg.play with several prompts
                p.createPlaylist([short, short, short], "prompts", pj.PJMEDIA_FILE_NO_LOOP)
            else:
                p.createPlayer(longer, pj.PJMEDIA_FILE_NO_LOOP)
            p.startTransmit(sink)
            players.append(p)
        # The prompts end (EOF posted) while the event thread sleeps in stall.onEof2; then the app
        # drops them, as PjLeg.play does when its timer fires or a digit barges in.
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            ep.libHandleEvents(5)
        for p in players:
            p.stopTransmit(sink)
        del p, players
        gc.collect()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            ep.libHandleEvents(5)
        del stall
    ep.libDestroy()
    print("clean", flush=True)
""")


def write_wav(path: Path, seconds: float) -> str:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10" * int(8000 * seconds))
    return str(path)


@pytest.mark.parametrize("kind", ["player", "playlist"])
def test_deleting_players_with_eof_pending_does_not_crash(tmp_path: Path, kind: str) -> None:
    short = write_wav(tmp_path / "short.wav", 0.06)
    longer = write_wav(tmp_path / "longer.wav", 0.16)
    proc = subprocess.run([sys.executable, "-c", CHILD, short, longer, "5", kind], capture_output=True,
                          text=True, timeout=60)
    died = f" (signal {signal.Signals(-proc.returncode).name})" if proc.returncode < 0 else ""
    assert proc.returncode == 0 and "clean" in proc.stdout, (
        f"pjsua2 process exited {proc.returncode}{died}: an EOF reached a deleted AudioMediaPlayer\n"
        f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
