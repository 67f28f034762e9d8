"""Prompt generation (espeak-ng + sox): telephony format, regeneration rules, studio files kept;
and the `ivr simulate` dry run."""

from __future__ import annotations

import argparse
import os
import shutil
import wave
from pathlib import Path

import pytest
from repo import REPO

from callcenter.exceptions import ConfigError
from callcenter.ivr import prompts
from callcenter.ivr.cli import simulate_command

needs_tools = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                 reason="espeak-ng and sox are needed")


def fmt(p: Path) -> tuple[int, int, int, float]:
    with wave.open(str(p)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / w.getframerate()


@needs_tools
def test_generate_keeps_studio_files_and_regenerates_stale_ones(tmp_path):
    texts = {"hello": {"vi": "Xin chào", "en": "Hello"}, "system/beep": {"vi": "@tone 1000 0.4"}}
    r = prompts.generate(texts, tmp_path)
    assert sorted(r.generated) == ["en/hello.wav", "vi/hello.wav", "vi/system/beep.wav"]
    for rel in r.generated:
        rate, channels, width, seconds = fmt(tmp_path / rel)
        assert (rate, channels, width) == (8000, 1, 2) and 0.2 < seconds < 5
    assert fmt(tmp_path / "vi/system/beep.wav")[3] == pytest.approx(0.4, abs=0.01)

    r = prompts.generate(texts, tmp_path)
    assert r.generated == [] and r.up_to_date == 3

    texts["hello"]["en"] = "Hello there"                # text changed: our file is stale
    assert prompts.generate(texts, tmp_path).generated == ["en/hello.wav"]

    studio = tmp_path / "vi" / "hello.wav"              # a studio recording replaces ours
    shutil.copyfile(tmp_path / "vi/system/beep.wav", studio)
    os.utime(studio, ns=(1, 1))
    texts["hello"]["vi"] = "Xin chào quý khách"
    r = prompts.generate(texts, tmp_path, force=True)
    assert "vi/hello.wav" in r.kept_custom and "vi/hello.wav" not in r.generated
    assert fmt(studio)[3] == pytest.approx(0.4, abs=0.01)   # untouched
    assert "vi/hello.wav" in prompts.generate(texts, tmp_path).kept_custom

    (tmp_path / "en/hello.wav").unlink()                # deleted: generated again
    assert prompts.generate(texts, tmp_path).generated == ["en/hello.wav"]


@needs_tools
def test_music_on_hold(tmp_path):
    out = tmp_path / "moh.wav"
    assert prompts.make_moh(out, 20)
    rate, channels, width, seconds = fmt(out)
    assert (rate, channels, width) == (8000, 1, 2) and seconds == pytest.approx(20, abs=0.1)
    custom = out.read_bytes()[:-2] + b"\0\0"
    out.write_bytes(custom)
    assert prompts.make_moh(out, 20) is False and out.read_bytes() == custom


def test_prompt_texts_errors_name_the_line(tmp_path):
    f = tmp_path / "prompts.yaml"
    f.write_text("hello:\n  vi: Xin chào\n  fr: Bonjour\n")
    with pytest.raises(ConfigError, match=r"prompts.yaml:3: hello.fr: unknown language"):
        prompts.load_texts(f)


def test_shipped_prompt_texts_load():
    texts = prompts.load_texts(REPO / "sounds" / "prompts.yaml")
    assert len(texts) > 100 and texts["digits/lam"] == {"vi": "lăm"}


def _sim(capsys, script: str, **kw) -> str:
    args = argparse.Namespace(script=str(REPO / "ivr_scripts" / script), digits="", caller="0901234567",
                              called="1900", var=[], lang=None, sounds=str(REPO / "sounds"),
                              queue_outcome="connected", hangup_when_done=False)
    for k, v in kw.items():
        setattr(args, k, v)
    assert simulate_command(args) == 0
    return capsys.readouterr().out


def test_simulate_debt_reminder(capsys):
    out = _sim(capsys, "debt_reminder.yaml", var=["amount_due=1250000", "due_date=2026-12-15", "name=An"],
               digits="3")
    assert "một triệu hai trăm năm mươi nghìn đồng" in out
    assert "ngày mười lăm tháng mười hai năm hai nghìn không trăm hai mươi sáu" in out
    assert "event: already_paid {'amount': '1250000'}" in out
    assert "path: debt_reminder.have_data>debt_reminder.greet>" in out


def test_simulate_hotline_english_closed(capsys, monkeypatch):
    monkeypatch.setenv("CRM_URL", "http://127.0.0.1:1")
    out = _sim(capsys, "hotline.yaml", digits="2,", var=["force_hours=closed"])
    assert "play [en] hotline/closed hotline/press_1_voicemail" in out
    assert "outcome: hangup  language: en" in out
