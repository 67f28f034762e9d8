"""Prompt files: their length, and the one format the bridge plays (8 kHz mono 16-bit WAV).

Playback end is detected with a timer from the WAV's length, not pjsua2's EOF callback:
that callback runs on the conference clock thread while the bridge lock is held, and
calling into Python there is the GIL/bridge-lock deadlock of pjproject #3125.
"""

from __future__ import annotations

import functools
import wave

from callcenter.exceptions import TelephonyError

# Everything runs at 8 kHz (pjproject is built without the resampler).
CLOCK_RATE = 8000


@functools.lru_cache(maxsize=4096)
def wav_seconds(path: str) -> float:
    """Length of a prompt; raises TelephonyError naming the file if it is not an 8 kHz mono 16-bit WAV."""
    try:
        with wave.open(path, "rb") as w:
            rate, channels, width, frames = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
    except (OSError, wave.Error, EOFError) as exc:
        raise TelephonyError(f"{path}: cannot read prompt: {exc}") from None
    if rate != CLOCK_RATE or channels != 1 or width != 2:
        raise TelephonyError(f"{path}: prompt must be 8000 Hz mono 16-bit WAV "
                             f"(is {rate} Hz, {channels} ch, {8 * width}-bit)")
    return frames / rate


def wav_closed(path: str) -> bool:
    """Whether pjmedia has written the WAV's header (it writes sizes of 0 when it opens the file and the real
    ones as the bridge lets go of the recorder's port, a clock tick after the recorder was freed). A file
    that is gone or unreadable counts as closed: there is nothing to wait for."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return True
    return len(head) < 8 or int.from_bytes(head[4:8], "little") != 0
