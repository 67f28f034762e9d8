"""What the recording tests read in a stereo recording: its channels, and per 100 ms block whether it is
(mostly) a given tone (tests/tones.py's Goertzel) or silence."""

from __future__ import annotations

import array
import wave
from pathlib import Path

from tones import RATE, goertzel_power


def channels(path: Path) -> tuple[list[int], list[int]]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        data = array.array("h", w.readframes(w.getnframes()))
    return list(data[0::2]), list(data[1::2])


def blocks(samples: list[int], size: int = 800) -> list[list[int]]:
    """100 ms blocks."""
    return [samples[i:i + size] for i in range(0, len(samples) - size + 1, size)]


def tone_blocks(samples: list[int], freq: float, share: float = 0.6) -> list[bool]:
    """Per 100 ms block: is it (mostly) the tone ``freq`` (its power at least ``share`` of the block's)?"""
    out = []
    for b in blocks(samples):
        energy = sum(x * x for x in b)
        out.append(energy > 0 and goertzel_power(b, freq) >= share * energy)
    return out


def silent_blocks(samples: list[int], level: int = 64) -> list[bool]:
    return [max(abs(x) for x in b) <= level for b in blocks(samples)]
