"""Answering-machine detection on the first seconds of audio (8 kHz linear PCM), pure Python.

Cadence, like Asterisk's app_amd: a person answers with a short greeting ("Alô?", "A lô, ai
đấy ạ?") and then waits in silence for the caller; a voicemail greeting talks on for seconds
with many words and only short pauses. Frames of 20 ms are voiced when their RMS energy is
above both an absolute floor and a multiple of the line's own noise floor, so a noisy mobile
line does not look like endless speech.

The worker feeds the first ``AmdConfig.total`` seconds of the answered leg's audio to
:func:`classify` (or :func:`classify_pcm16` for raw bytes) and treats ``unknown`` as a person:
hanging up on a human is worse than talking to a machine.
"""

from __future__ import annotations

import array
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class AmdConfig:
    initial_silence: float = 2.5        # nobody speaks this long after answer -> unknown
    greeting: float = 1.5               # speech longer than this from the first word -> machine
    after_greeting_silence: float = 0.8  # silence this long after a short greeting -> human
    total: float = 5.0                  # analysis stops here
    min_word: float = 0.1               # voiced run shorter than this is a click, not a word
    between_words: float = 0.05         # a gap shorter than this does not end a word
    max_words: int = 3                  # more words than this -> machine
    frame: float = 0.02
    min_rms: float = 200.0              # absolute voice floor (16-bit scale, about -44 dBFS)
    noise_factor: float = 3.0           # voice must be this many times the noise floor


@dataclass(frozen=True)
class AmdResult:
    verdict: str                        # human | machine | unknown
    reason: str
    words: int
    speech_seconds: float
    decided_at: float                   # seconds of audio needed for the verdict


def _frame_rms(samples: Sequence[int], n: int) -> list[float]:
    out = []
    for i in range(0, len(samples) - n + 1, n):
        acc = 0
        for s in samples[i:i + n]:
            acc += s * s
        out.append(math.sqrt(acc / n))
    return out


def classify(samples: Sequence[int], rate: int = 8000, cfg: AmdConfig | None = None) -> AmdResult:
    """Classify signed 16-bit samples at ``rate`` Hz as human, machine or unknown."""
    cfg = cfg or AmdConfig()
    n = max(1, int(rate * cfg.frame))
    frames = _frame_rms(samples[: int(rate * cfg.total)], n)
    if not frames:
        return AmdResult("unknown", "no audio", 0, 0.0, 0.0)
    quiet = sorted(frames)[max(0, len(frames) // 10)]      # 10th percentile: the line's noise floor
    threshold = max(cfg.min_rms, quiet * cfg.noise_factor)
    f = cfg.frame
    words = 0
    voiced_run = silence_run = 0.0
    speech = 0.0
    first_word_at: float | None = None
    in_word = False
    t = 0.0
    for rms in frames:
        t += f
        if rms >= threshold:
            voiced_run += f
            speech += f
            silence_run = 0.0
            if not in_word and voiced_run >= cfg.min_word:
                in_word = True
                words += 1
                if first_word_at is None:
                    first_word_at = t - voiced_run
                if words > cfg.max_words:
                    return AmdResult("machine", f"more than {cfg.max_words} words", words, speech, t)
            if first_word_at is not None and in_word and t - first_word_at > cfg.greeting:
                return AmdResult("machine", f"greeting longer than {cfg.greeting} s", words, speech, t)
        else:
            silence_run += f
            if silence_run >= cfg.between_words:
                in_word = False
                voiced_run = 0.0
            if first_word_at is None and silence_run >= cfg.initial_silence:
                return AmdResult("unknown", "silence after answer", 0, speech, t)
            if first_word_at is not None and silence_run >= cfg.after_greeting_silence:
                return AmdResult("human", "short greeting then silence", words, speech, t)
    if first_word_at is None:
        return AmdResult("unknown", "no speech", 0, speech, t)
    return AmdResult("unknown", "analysis window ended", words, speech, t)


def classify_pcm16(data: bytes, rate: int = 8000, cfg: AmdConfig | None = None) -> AmdResult:
    """:func:`classify` for raw little-endian signed 16-bit mono PCM (a WAV body, a media frame stream)."""
    samples = array.array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return classify(samples, rate, cfg)
