"""Tones for the recording tests: A-law tone pcaps for sipp's play_pcap_audio, a phone that answers and
sends its own tone, and a Goertzel detector over a WAV's channels.

(A minimal stand-in for tests/tones.py, which was not committed when recording's tests were written.)"""

from __future__ import annotations

import array
import math
import struct
import wave
from pathlib import Path

import sipp
from rtp_pcap import write_dtmf_pcaps

RATE = 8000
FRAME = 160                # 20 ms of 8 kHz samples
_SEG_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def linear_to_alaw(sample: int) -> int:
    """G.711 A-law of a 16-bit linear sample (the reference g711.c algorithm)."""
    pcm = sample >> 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = next((i for i, end in enumerate(_SEG_END) if pcm <= end), 8)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return aval ^ mask


def write_pcap(path: Path, payloads: list[bytes], pt: int, ssrc: int) -> Path:
    """One RTP packet per payload, 20 ms apart in capture time (sipp paces its sending by it)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for k, payload in enumerate(payloads):
        rtp = struct.pack("!BBHII", 0x80, (0x80 if k == 0 else 0) | pt, (1000 + k) & 0xFFFF, 160_000 + k * FRAME,
                          ssrc) + payload
        udp = struct.pack("!HHHH", 49176, 10000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([192, 168, 0, 3]), bytes([192, 168, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        usec = k * 20_000
        out.append(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
    return path


def tone_pcap(path: Path, freq: float, seconds: float, amplitude: int = 8000, ssrc: int = 0x5EC0DE) -> Path:
    """``seconds`` of a sine tone as PCMA RTP (payload type 8), 20 ms a packet."""
    frames = int(seconds * RATE / FRAME)
    payloads = []
    for k in range(frames):
        payloads.append(bytes(linear_to_alaw(int(amplitude * math.sin(2 * math.pi * freq * (k * FRAME + i) / RATE)))
                              for i in range(FRAME)))
    return write_pcap(path, payloads, pt=8, ssrc=ssrc)


def tone_phone(port: int, pcap: Path, ring_ms: int = 300, timeout_s: int = 60) -> sipp.Sipp:
    """An agent's phone on 127.0.0.1:port: answers (PCMA), sends the tone in ``pcap``, waits for BYE."""
    xml = sipp._agent_xml("answer", ring_ms, 0, codecs="8", greeting=True)
    xml = xml.replace(f"{sipp.PCAP_DIR}/g711a.pcap", str(pcap))
    return sipp._start(f"tone{port}", xml, ["-m", "1", "-timeout", f"{timeout_s}s", "-timeout_error"], port=port)


def tone_caller(target: str, steps: list[tuple], pcap: Path, number: str, workdir: Path) -> sipp.Sipp:
    """A sipp caller doing ``steps``, where ("audio",) sends the tone in ``pcap`` (sipp.caller's steps)."""
    workdir.mkdir(parents=True, exist_ok=True)
    pcaps = write_dtmf_pcaps(workdir, [s[1] for s in steps if s[0] == "dtmf"])
    xml = sipp._caller_xml(steps, number, "8", 200, pcaps)
    xml = xml.replace(f"{sipp.PCAP_DIR}/g711a.pcap", str(pcap))
    args = [target, "-s", "hotline", "-m", "1", "-r", "1", "-l", "1", "-timeout", "120s", "-timeout_error"]
    return sipp._start("tone-caller", xml, args, workdir=workdir)


def channels(path: Path) -> tuple[list[int], list[int]]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        data = array.array("h", w.readframes(w.getnframes()))
    return list(data[0::2]), list(data[1::2])


def goertzel(block: list[int], freq: float) -> float:
    """Power of ``freq`` in ``block`` as a share of the block's energy (1.0: a pure tone of it)."""
    n = len(block)
    energy = sum(x * x for x in block)
    if energy == 0:
        return 0.0
    k = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for x in block:
        s1, s2 = x + k * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    return power / (energy * n / 2)


def blocks(samples: list[int], size: int = 800) -> list[list[int]]:
    """100 ms blocks."""
    return [samples[i:i + size] for i in range(0, len(samples) - size + 1, size)]


def tone_blocks(samples: list[int], freq: float, share: float = 0.6) -> list[bool]:
    """Per 100 ms block: is it (mostly) the tone ``freq``?"""
    return [goertzel(b, freq) >= share for b in blocks(samples)]


def silent_blocks(samples: list[int], level: int = 64) -> list[bool]:
    return [max(abs(x) for x in b) <= level for b in blocks(samples)]
