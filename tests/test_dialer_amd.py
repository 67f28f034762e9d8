"""AMD on synthetic 8 kHz audio: syllable-modulated noise stands in for speech."""

import array
import math
import random

from callcenter.dialer.amd import classify, classify_pcm16

RATE = 8000


def silence(seconds, noise=0, rng=None):
    rng = rng or random.Random(1)
    return [int(rng.gauss(0, noise)) if noise else 0 for _ in range(int(seconds * RATE))]


def speech(seconds, amp=6000, rng=None, syllable_hz=4.0):
    """Noise shaped by a syllable envelope (~4 syllables/s), loud enough to be voice."""
    rng = rng or random.Random(2)
    out = []
    for i in range(int(seconds * RATE)):
        env = 0.55 + 0.45 * math.sin(2 * math.pi * syllable_hz * i / RATE)
        out.append(int(max(-32768, min(32767, rng.gauss(0, amp * env)))))
    return out


def words(n, word=0.35, gap=0.15, rng=None):
    out = []
    for _ in range(n):
        out += speech(word, rng=rng) + silence(gap)
    return out


def test_human_short_greeting_then_silence():
    audio = silence(0.4) + speech(0.6) + silence(2.0)          # "Alô?" ... waits
    r = classify(audio)
    assert r.verdict == "human" and r.words == 1 and 1.7 < r.decided_at < 2.0


def test_human_two_words_on_noisy_line():
    rng = random.Random(3)
    audio = silence(0.3, noise=150, rng=rng) + speech(0.3) + silence(0.12, noise=150, rng=rng) \
        + speech(0.4) + silence(2.0, noise=150, rng=rng)     # "A lô, ai đấy?" over line noise
    assert classify(audio).verdict == "human"


def test_machine_long_greeting():
    audio = silence(0.5) + speech(4.0)                         # continuous voicemail prompt
    r = classify(audio)
    assert r.verdict == "machine" and "greeting" in r.reason


def test_machine_many_words_with_short_pauses():
    audio = silence(0.3) + words(8, word=0.25, gap=0.1)
    r = classify(audio)
    assert r.verdict == "machine"


def test_silence_is_unknown_not_machine():
    r = classify(silence(5.0, noise=50))
    assert r.verdict == "unknown" and r.reason == "silence after answer"


def test_loud_noise_alone_is_not_speech():
    rng = random.Random(4)
    r = classify(silence(5.0, noise=900, rng=rng))             # steady hiss: the floor adapts
    assert r.verdict == "unknown"


def test_pcm16_bytes_and_empty():
    audio = silence(0.4) + speech(0.6) + silence(1.5)
    data = array.array("h", audio).tobytes()
    assert classify_pcm16(data).verdict == "human"
    assert classify([]).verdict == "unknown"
