"""Prompt texts, prompt files, and their generation with espeak-ng + sox.

The texts live in ``sounds/prompts.yaml`` (name -> {vi: text, en: text}); the WAVs in
``sounds/<lang>/<name>.wav`` are generated at setup and are not in git. A studio recording
dropped in with the same name wins: the generator keeps a manifest
(``sounds/.generated.json``: file -> text hash and size/mtime it wrote) and only rewrites a file
that is missing, or that it wrote itself and whose text changed since.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from callcenter import yamlsrc
from callcenter.ivr.saynumber import LANGUAGES

MANIFEST = ".generated.json"
# Telephony format: what pjsua2 plays without resampling on a G.711 call.
SOX_FORMAT = ["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]
VOICES = {"vi": ["-v", "vi", "-s", "140"], "en": ["-v", "en-us", "-s", "150"]}
GENERATOR_VERSION = "1"


def load_texts(path: str | Path) -> dict[str, dict[str, str]]:
    """Read prompts.yaml; raises ConfigError naming file:line for a bad entry."""
    data, loc = yamlsrc.load(path)
    if not isinstance(data, dict):
        raise loc.error("", "prompts file must map prompt name -> {vi: text, en: text}")
    out: dict[str, dict[str, str]] = {}
    for name, texts in data.items():
        if not isinstance(texts, dict) or not texts:
            raise loc.error(str(name), "must be {vi: text, en: text}")
        for lang, text in texts.items():
            if lang not in LANGUAGES:
                raise loc.error(f"{name}.{lang}", f"unknown language (one of {', '.join(LANGUAGES)})")
            if not isinstance(text, str | int) or not str(text).strip():
                raise loc.error(f"{name}.{lang}", "text must be a non-empty string")
        out[str(name)] = {lang: str(text) for lang, text in texts.items()}
    return out


def path(sounds_dir: str | Path, name: str, lang: str) -> str:
    d = str(sounds_dir)
    if not os.path.isabs(d):     # relative to the current directory: resolved each time
        return str(Path(d).resolve() / lang / f"{name}.wav")
    return _absolute(d, name, lang)


@functools.lru_cache(maxsize=4096)
def _absolute(sounds_dir: str, name: str, lang: str) -> str:
    # Every prompt of every call comes through here; resolve() is a realpath (a syscall per path
    # component): 3% of a worker's CPU at 50 calls/s. Resolved once per process, like the prompt's
    # length (telephony.media.wav_seconds): swap a sounds directory by restarting the worker.
    return str(Path(sounds_dir).resolve() / lang / f"{name}.wav")


def paths(names: Iterable[str], lang: str, sounds_dir: str | Path) -> list[str]:
    """Absolute WAV paths for prompt names, as Leg.play takes them."""
    return [path(sounds_dir, n, lang) for n in names]


def _hash(text: str, lang: str) -> str:
    return hashlib.sha256(f"{GENERATOR_VERSION}|{lang}|{VOICES[lang]}|{text}".encode()).hexdigest()[:16]


def _stamp(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


def synthesize(text: str, lang: str, out: Path) -> None:
    """espeak-ng to a temporary WAV, then sox to 8 kHz mono 16-bit. "@tone FREQ SECONDS" is a beep."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if text.startswith("@tone"):
        _, freq, secs = text.split()
        part = out.with_suffix(".part.wav")
        subprocess.run(["sox", "-n", *SOX_FORMAT, str(part), "synth", secs, "sine", freq,
                        "fade", "q", "0.01", secs, "0.02", "vol", "0.5"], check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.replace(part, out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", *VOICES[lang], "-w", str(raw), text], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        part = out.with_suffix(".part.wav")
        subprocess.run(["sox", str(raw), *SOX_FORMAT, str(part), "gain", "-n", "-3"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        os.replace(part, out)


@dataclass
class GenerateReport:
    generated: list[str]
    kept_custom: list[str]      # files not written by us (studio recordings): left alone
    up_to_date: int


def generate(texts: dict[str, dict[str, str]], sounds_dir: str | Path, force: bool = False) -> GenerateReport:
    """Write every missing or stale generated prompt. Never overwrites a file it did not write."""
    sounds = Path(sounds_dir)
    sounds.mkdir(parents=True, exist_ok=True)
    manifest_path = sounds / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    report = GenerateReport([], [], 0)
    try:
        for name, by_lang in sorted(texts.items()):
            for lang, text in sorted(by_lang.items()):
                rel = f"{lang}/{name}.wav"
                out = sounds / rel
                h = _hash(text, lang)
                entry = manifest.get(rel)
                if out.exists():
                    ours = entry is not None and entry.get("stamp") == _stamp(out)
                    if not ours:
                        report.kept_custom.append(rel)
                        manifest.pop(rel, None)
                        continue
                    if entry.get("hash") == h and not force:
                        report.up_to_date += 1
                        continue
                synthesize(text, lang, out)
                manifest[rel] = {"hash": h, "stamp": _stamp(out)}
                report.generated.append(rel)
    finally:
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, manifest_path)
    return report


def make_moh(out: str | Path, seconds: int = 24) -> bool:
    """A calm music-on-hold loop: a slow arpeggio of soft sine chords (C, Am, F, G), 8 kHz mono.

    Returns False when the file exists and was not written by us (kept)."""
    out = Path(out)
    manifest_path = out.parent / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    key = out.name
    if out.exists() and manifest.get(key, {}).get("stamp") != _stamp(out):
        return False
    if out.exists() and manifest.get(key, {}).get("hash") == f"moh{seconds}v3":
        return True
    chords = [("C4", "E4", "G4"), ("A3", "C4", "E4"), ("F3", "A3", "C4"), ("G3", "B3", "D4")]
    per_note = seconds / (len(chords) * 2 * 3)
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for ci, chord in enumerate(chords * 2):
            for ni, note in enumerate(chord):
                p = Path(tmp) / f"{ci:02d}{ni}.wav"
                # two sines are two channels: "remix -" folds them into one soft interval
                subprocess.run(["sox", "-n", "-r", "8000", "-b", "16", str(p), "synth",
                                f"{per_note:.3f}", "sine", note, "sine", chord[0], "remix", "-", "fade", "q",
                                "0.05", f"{per_note:.3f}", "0.25", "vol", "0.25"], check=True, timeout=60)
                parts.append(str(p))
        mix = Path(tmp) / "moh.wav"
        subprocess.run(["sox", *parts, *SOX_FORMAT, str(mix), "reverb", "30", "fade", "t", "0.5", f"{seconds}", "1"],
                       check=True, timeout=120)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mix, out)
    manifest[key] = {"hash": f"moh{seconds}v3", "stamp": _stamp(out)}
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return True


class EspeakTts:
    """Runtime TTS for ``say: text`` (names from a CRM): cached per text, never blocks the loop."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache = Path(cache_dir)

    async def __call__(self, text: str, lang: str) -> str | None:
        out = self.cache / lang / f"{_hash(text, lang)}.wav"
        if not out.exists():
            try:
                await asyncio.to_thread(synthesize, text, lang, out)
            except (OSError, subprocess.SubprocessError):
                return None
        return str(out.resolve())
