"""Audio proved by audio: each party sends a pure tone of its own frequency, the test captures the RTP a
party receives and detects which tones are in it.

- `tone_pcm` / `write_tone_wav`: a tone as 8 kHz 16-bit PCM (a WAV for the worker's music on hold);
- `write_tone_pcap`: a tone as G.711 RTP in a pcap for sipp's play_pcap_audio (`("tone", hz, ms)` caller step);
- `PacketThread` (a socket read on a thread) and `loopback_udp` (every UDP datagram on loopback, raw socket);
- `Sniffer`: the RTP sent to given UDP ports on loopback (a raw socket, needs root), with arrival times,
  and the times marked SIP requests passed (so a test splits what was received by signalling, not by clocks);
- `decode` (G.711 A-law / µ-law -> PCM) and `detect(pcm, freqs)`: Goertzel energy of each frequency
  relative to the window's total energy.
"""

from __future__ import annotations

import math
import socket
import struct
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtp_pcap import write_rtp_pcap

RATE = 8000
FRAME = 160                 # samples in a 20 ms G.711 packet
PCMU, PCMA = 0, 8


# -- G.711 ---------------------------------------------------------------------------------------------

def _ulaw_encode(s: int) -> int:
    bias, clip = 0x84, 32635
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not s & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (s >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _ulaw_decode(b: int) -> int:
    b = ~b & 0xFF
    sign, exponent, mantissa = b & 0x80, (b >> 4) & 0x07, b & 0x0F
    s = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -s if sign else s


def _alaw_encode(s: int) -> int:
    sign = 0x80 if s >= 0 else 0
    s = min(abs(s) if s >= 0 else -s - 1, 32767) >> 3     # 13-bit magnitude
    if s < 32:
        code = s >> 1
    else:
        exponent = s.bit_length() - 5                       # 1..7
        code = (exponent << 4) | ((s >> exponent) & 0x0F)
    return (sign | code) ^ 0x55


def _alaw_decode(b: int) -> int:
    b ^= 0x55
    exponent, mantissa = (b >> 4) & 0x07, b & 0x0F
    s = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    return s if b & 0x80 else -s


_DECODE = {PCMU: [_ulaw_decode(b) for b in range(256)], PCMA: [_alaw_decode(b) for b in range(256)]}
_ENCODERS = {PCMU: _ulaw_encode, PCMA: _alaw_encode}


def encode(pcm: list[int], pt: int) -> bytes:
    enc = _ENCODERS[pt]
    return bytes(enc(s) for s in pcm)


def decode(payload: bytes, pt: int) -> list[int]:
    table = _DECODE[pt]
    return [table[b] for b in payload]


# -- tones ---------------------------------------------------------------------------------------------

def tone_pcm(hz: float, ms: int, amplitude: float = 0.3) -> list[int]:
    n = RATE * ms // 1000
    return [int(amplitude * 32767 * math.sin(2 * math.pi * hz * i / RATE)) for i in range(n)]


def write_tone_wav(path: Path, hz: float, ms: int, amplitude: float = 0.3) -> Path:
    """8 kHz mono 16-bit: what the worker plays (music on hold, prompts)."""
    pcm = tone_pcm(hz, ms, amplitude)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(struct.pack(f"<{len(pcm)}h", *pcm))
    return path


def sounds_with_tone(tmp: Path, name: str, hz: float, ms: int = 10_000) -> Path:
    """A sounds folder under tmp: the repository's prompts plus `name`.wav, a tone (a queue's music on hold that
    a test tells apart by its frequency)."""
    from repo import REPO

    sounds = tmp / "sounds"
    sounds.mkdir()
    for entry in (REPO / "sounds").iterdir():
        (sounds / entry.name).symlink_to(entry)
    write_tone_wav(sounds / f"{name}.wav", hz, ms)
    return sounds


def wav_pcm(path: Path, start_s: float = 0.0, last_s: float | None = None) -> list[int]:
    """A WAV's first channel as 8 kHz samples for detect() (a softphone's recording, any rate): from start_s on,
    or only its last last_s seconds."""
    with wave.open(str(path)) as f:
        rate, channels = f.getframerate(), f.getnchannels()
        frames = f.readframes(f.getnframes())
    samples = memoryview(frames).cast("h")
    n = len(samples) // channels
    first = int(start_s * rate) if last_s is None else max(0, n - int(last_s * rate))
    return [samples[i * channels] for i in range(first, n, rate // RATE)]


def write_tone_pcap(path: Path, hz: float, ms: int, pt: int = PCMA, amplitude: float = 0.3,
                    ssrc: int = 0x70E5) -> Path:
    """A pcap of 20 ms G.711 RTP packets of a pure tone (pt 8 A-law, 0 µ-law), for play_pcap_audio."""
    pcm = tone_pcm(hz, ms, amplitude)
    payloads = [encode(pcm[i:i + FRAME], pt) for i in range(0, len(pcm) - FRAME + 1, FRAME)]
    return write_rtp_pcap(path, payloads, pt, ssrc=ssrc, ts_step=FRAME)


def read_pcap_rtp(path: Path) -> list[tuple[int, bytes]]:
    """(payload type, payload) of every RTP packet of a little-endian Ethernet pcap of IPv4/UDP/RTP, as
    rtp_pcap writes them and as sip-tester ships g711a.pcap (236 packets of 240 bytes of a-law speech)."""
    data = path.read_bytes()
    if len(data) < 24 or struct.unpack("<I", data[:4])[0] != 0xA1B2C3D4 or struct.unpack("<I", data[20:24])[0] != 1:
        raise ValueError(f"{path}: not a little-endian Ethernet pcap")
    out, pos = [], 24
    while pos + 16 <= len(data):
        _, _, incl, _ = struct.unpack("<IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        rtp = ip[ihl + 8:]
        out.append((rtp[1] & 0x7F, _rtp_payload(rtp)))
    return out


def _rtp_payload(rtp: bytes) -> bytes:
    cc = rtp[0] & 0x0F
    start = 12 + 4 * cc
    if rtp[0] & 0x10 and len(rtp) >= start + 4:           # header extension
        start += 4 + 4 * struct.unpack("!H", rtp[start + 2:start + 4])[0]
    end = len(rtp) - (rtp[-1] if rtp[0] & 0x20 else 0)   # padding
    return rtp[start:end]


# -- detection -----------------------------------------------------------------------------------------

def goertzel_power(pcm: list[int], hz: float) -> float:
    """Power of one frequency in the window (same scale as the window's energy / len: Parseval)."""
    n = len(pcm)
    if n == 0:
        return 0.0
    k = round(n * hz / RATE)
    coeff = 2 * math.cos(2 * math.pi * k / n)
    s1 = s2 = 0.0
    for x in pcm:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2 / n


def detect(pcm: list[int], freqs: list[float], threshold: float = 0.1, window: int = 1600) -> set[float]:
    """Which of `freqs` are present: in windows of `window` samples (200 ms), a frequency counts in a
    window when its Goertzel power is at least `threshold` of the window's total energy, and it is
    present when it counts in at least half of the windows that are not near-silent. Silence: nothing."""
    hits: dict[float, int] = dict.fromkeys(freqs, 0)
    loud = 0
    for start in range(0, len(pcm) - window + 1, window):
        chunk = pcm[start:start + window]
        energy = sum(x * x for x in chunk)
        if energy / window < 100.0:        # below ~-50 dBFS: silence, comfort noise
            continue
        loud += 1
        for f in freqs:
            if goertzel_power(chunk, f) >= threshold * energy:
                hits[f] += 1
    return {f for f, n in hits.items() if loud and n * 2 >= loud}


# -- capture -------------------------------------------------------------------------------------------

@dataclass
class Received:
    at: float                 # time.monotonic() of arrival
    pt: int
    payload: bytes


class PacketThread:
    """Reads a socket on a daemon thread until close(), handing every datagram and its address to `handle`.
    The socket needs a timeout (the thread looks at close() between reads)."""

    def __init__(self, sock: socket.socket, handle: Callable[[bytes, Any], None]) -> None:
        self.sock = sock
        self._handle = handle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self._handle(data, addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def loopback_udp(handle: Callable[[int, str, int, bytes], None]) -> PacketThread:
    """Every UDP datagram crossing the loopback interface, once: handle(source port, destination address,
    destination port, payload). A raw socket: needs root (CAP_NET_RAW), else PermissionError."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sock.bind(("lo", 0))
    sock.settimeout(0.2)

    def frame(data: bytes, addr: Any) -> None:
        if addr[2] == socket.PACKET_OUTGOING:    # each loopback packet shows up going out and in
            return
        ip = data[14:]
        if len(ip) < 28 or ip[9] != 17:
            return
        ihl = (ip[0] & 0x0F) * 4
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        handle(sport, socket.inet_ntoa(ip[16:20]), dport, ip[ihl + 8:])

    return PacketThread(sock, frame)


@dataclass
class Sniffer:
    """RTP to the given UDP ports on loopback, and the arrival times of SIP messages that contain a marker.
    Needs root (CAP_NET_RAW); construct inside a test and `pytest.skip` on PermissionError."""

    ports: set[int]
    markers: dict[str, bytes] = field(default_factory=dict)    # name -> bytes a SIP message must contain
    rtp: dict[int, list[Received]] = field(default_factory=dict)
    marks: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rtp = {p: [] for p in self.ports}
        self.marks = {m: [] for m in self.markers}
        self._capture = loopback_udp(self._udp)

    def _udp(self, sport: int, dst: str, dport: int, data: bytes) -> None:
        now = time.monotonic()
        if dport in self.rtp and len(data) > 12 and data[0] >> 6 == 2:
            pt = data[1] & 0x7F
            if pt in _DECODE:
                self.rtp[dport].append(Received(now, pt, _rtp_payload(data)))
        elif self.markers:
            for name, needle in self.markers.items():
                if needle in data:
                    self.marks[name].append(now)

    def watch(self, port: int) -> None:
        """Capture the RTP to one more port from now on."""
        self.rtp.setdefault(port, [])

    def pcm(self, port: int, start: float = 0.0, end: float = math.inf) -> list[int]:
        """What arrived at port between two monotonic times, decoded, in arrival order."""
        out: list[int] = []
        for r in list(self.rtp[port]):
            if start <= r.at < end:
                out += decode(r.payload, r.pt)
        return out

    def heard(self, port: int, freqs: list[float], start: float = 0.0, end: float = math.inf) -> set[float]:
        return detect(self.pcm(port, start, end), freqs)

    def close(self) -> None:
        self._capture.close()
