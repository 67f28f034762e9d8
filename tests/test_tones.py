"""The tone harness itself (tests/tones.py): G.711 both ways, Goertzel detection on synthetic signals
(one tone, two mixed, silence, noise) and on a tone pcap written and read back as sipp would send it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import tones

A, B, C = 600.0, 1000.0, 1400.0
ALL = [A, B, C]


@pytest.mark.parametrize("pt", [tones.PCMA, tones.PCMU])
def test_g711_round_trip_is_close(pt: int) -> None:
    pcm = list(range(-32768, 32768, 97))
    back = tones.decode(tones.encode(pcm, pt), pt)
    for x, y in zip(pcm, back, strict=True):
        assert abs(x - y) <= max(16, abs(x) // 16), (pt, x, y)     # G.711: ~4 bits of mantissa
    assert tones.decode(tones.encode([0], pt), pt)[0] in range(-16, 17)


def test_g711_matches_the_known_code_words() -> None:
    # ITU-T G.711: silence is 0xFF in µ-law and 0xD5 in A-law; full scale positive 0x80 / 0xAA.
    assert tones.encode([0], tones.PCMU) == b"\xff"
    assert tones.encode([0], tones.PCMA) == b"\xd5"
    assert tones.encode([32767], tones.PCMU) == b"\x80"
    assert tones.encode([32767], tones.PCMA) == b"\xaa"


def test_single_tone() -> None:
    assert tones.detect(tones.tone_pcm(A, 1000), ALL) == {A}
    assert tones.detect(tones.tone_pcm(C, 1000, amplitude=0.02), ALL) == {C}


def test_two_tones_mixed() -> None:
    mix = [x + y for x, y in zip(tones.tone_pcm(A, 1000), tones.tone_pcm(B, 1000), strict=True)]
    assert tones.detect(mix, ALL) == {A, B}


def test_silence_has_no_tone() -> None:
    assert tones.detect([0] * 8000, ALL) == set()
    assert tones.detect([], ALL) == set()


def test_noise_has_no_tone() -> None:
    rnd = random.Random(13)
    noise = [int(rnd.gauss(0, 3000)) for _ in range(8000)]
    assert tones.detect(noise, ALL) == set()


def test_tone_in_noise_is_found() -> None:
    rnd = random.Random(7)
    signal = [x + int(rnd.gauss(0, 1500)) for x in tones.tone_pcm(B, 1000)]
    assert tones.detect(signal, ALL) == {B}


def test_tone_for_only_part_of_the_window_counts_when_mostly_there() -> None:
    half = tones.tone_pcm(A, 400) + [0] * 3200 + tones.tone_pcm(A, 600)    # silence does not vote
    assert tones.detect(half, ALL) == {A}
    short = tones.tone_pcm(A, 200) + tones.tone_pcm(B, 800)
    assert tones.detect(short, ALL) == {B}


@pytest.mark.parametrize("pt", [tones.PCMA, tones.PCMU])
def test_pcap_written_then_decoded(tmp_path: Path, pt: int) -> None:
    path = tones.write_tone_pcap(tmp_path / "a.pcap", B, 2000, pt=pt)
    packets = tones.read_pcap_rtp(path)
    assert len(packets) == 100 and {p for p, _ in packets} == {pt}
    assert all(len(payload) == tones.FRAME for _, payload in packets)
    pcm = [s for p, payload in packets for s in tones.decode(payload, p)]
    assert tones.detect(pcm, ALL) == {B}


def test_wav_is_8khz_mono_16bit(tmp_path: Path) -> None:
    import wave
    path = tones.write_tone_wav(tmp_path / "c.wav", C, 500)
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (8000, 1, 2, 4000)
