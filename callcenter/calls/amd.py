"""Answering-machine detection on a live outbound leg: record the first seconds after answer and let
``dialer.amd`` classify them."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import wave
from pathlib import Path

from callcenter import logs
from callcenter.calls.records import LiveCalls
from callcenter.dialer.amd import classify_pcm16
from callcenter.exceptions import TelephonyError
from callcenter.telephony.api import Leg

log = logs.get("calls.amd")

AMD_SECONDS = 2.5


class MachineDetector:
    """``detect`` is the dialer engine's ``amd`` callable; a machine's call record reads "voicemail"."""

    def __init__(self, live: LiveCalls) -> None:
        self.live = live
        self.dir = Path(tempfile.mkdtemp(prefix="cc-amd-"))

    async def detect(self, leg: Leg) -> bool:
        """True when a machine answered; ``unknown`` (and a recording that failed) counts as a person."""
        path = self.dir / f"{leg.id}.wav"
        try:
            await leg.record(str(path), max_seconds=AMD_SECONDS)
            verdict = await asyncio.to_thread(classify_wav, path)
        except (TelephonyError, OSError, wave.Error, EOFError) as exc:
            log.warning("amd failed, treating as a person", call_id=leg.id, error=str(exc))
            return False
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        log.info("amd", call_id=leg.id, verdict=verdict)
        if verdict == "machine":
            rec = self.live.records.get(leg.id)
            if rec is not None:
                rec.outcome = "voicemail"
            return True
        return False

    def close(self) -> None:
        for f in self.dir.glob("*"):
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            self.dir.rmdir()


def classify_wav(path: Path) -> str:
    """Classify a pjmedia recording. Its RIFF sizes are only fixed up when the recorder closes,
    so the chunks are walked by hand and the data chunk is read to the end of the file."""
    raw = path.read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise wave.Error(f"not a WAVE file ({len(raw)} bytes, starts {raw[:12]!r})")
    pos, rate, bits, channels = 12, 8000, 16, 1
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], int.from_bytes(raw[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            channels = int.from_bytes(raw[pos + 10:pos + 12], "little")
            rate = int.from_bytes(raw[pos + 12:pos + 16], "little")
            bits = int.from_bytes(raw[pos + 22:pos + 24], "little")
        elif cid == b"data":
            if bits != 16 or channels != 1:
                return "unknown"
            return classify_pcm16(raw[pos + 8:], rate).verdict
        pos += 8 + size + (size & 1)
    raise wave.Error("no data chunk")
