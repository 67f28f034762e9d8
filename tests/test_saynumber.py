"""Say-number in Vietnamese and English: the prompt file lists and the sentences they read as."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from repo import REPO

from callcenter.ivr import prompts
from callcenter.ivr.saynumber import SayError, SayOptions, prompt_names, say, words

TEXTS = prompts.load_texts(REPO / "sounds" / "prompts.yaml")


def vi(kind: str, value: object, **opts: object) -> str:
    return words(say(kind, value, "vi", SayOptions(**opts)), TEXTS, "vi")  # type: ignore[arg-type]


def en(kind: str, value: object, **opts: object) -> str:
    return words(say(kind, value, "en", SayOptions(**opts)), TEXTS, "en")  # type: ignore[arg-type]


@pytest.mark.parametrize("n, files", [
    (0, ["digits/0"]),
    (10, ["digits/10"]),
    (15, ["digits/10", "digits/lam"]),
    (21, ["digits/2", "digits/muoi", "digits/mot"]),
    (105, ["digits/1", "digits/hundred", "digits/le", "digits/5"]),
    (1_000_000, ["digits/1", "digits/million"]),
    (1_250_000, ["digits/1", "digits/million", "digits/2", "digits/hundred", "digits/5", "digits/muoi",
                 "digits/thousand"]),
])
def test_vi_prompt_files(n, files):
    assert say("number", n, "vi") == files


@pytest.mark.parametrize("n, text", [
    (0, "không"),
    (5, "năm"),
    (10, "mười"),
    (11, "mười một"),
    (14, "mười bốn"),
    (15, "mười lăm"),
    (20, "hai mươi"),
    (21, "hai mươi mốt"),
    (24, "hai mươi bốn"),
    (25, "hai mươi lăm"),
    (55, "năm mươi lăm"),
    (100, "một trăm"),
    (105, "một trăm lẻ năm"),
    (111, "một trăm mười một"),
    (115, "một trăm mười lăm"),
    (121, "một trăm hai mươi mốt"),
    (1_000, "một nghìn"),
    (1_005, "một nghìn không trăm lẻ năm"),
    (1_050, "một nghìn không trăm năm mươi"),
    (2_026, "hai nghìn không trăm hai mươi sáu"),
    (10_000, "mười nghìn"),
    (15_000, "mười lăm nghìn"),
    (21_000, "hai mươi mốt nghìn"),
    (1_000_000, "một triệu"),
    (1_000_005, "một triệu không trăm lẻ năm"),
    (1_050_000, "một triệu không trăm năm mươi nghìn"),
    (1_250_000, "một triệu hai trăm năm mươi nghìn"),
    (25_500_000, "hai mươi lăm triệu năm trăm nghìn"),
    (1_000_000_000, "một tỷ"),
    (2_001_000_000, "hai tỷ không trăm lẻ một triệu"),
    (1_000_000_000_000, "một nghìn tỷ"),
    (-15, "âm mười lăm"),
])
def test_vi_numbers(n, text):
    assert vi("number", n) == text


def test_vi_options_linh_and_tu():
    assert vi("number", 105, le="linh") == "một trăm linh năm"
    assert vi("number", 24, tu=True) == "hai mươi tư"
    assert vi("number", 14, tu=True) == "mười bốn"   # "tư" only after mươi


def test_vi_currency():
    assert vi("currency", 1_250_000) == "một triệu hai trăm năm mươi nghìn đồng"
    assert vi("currency", "1.250.000") == "một triệu hai trăm năm mươi nghìn đồng"
    assert vi("currency", "1,250,000") == "một triệu hai trăm năm mươi nghìn đồng"
    assert say("currency", 1_250_000, "vi")[-1] == "currency/dong"
    assert vi("currency", "12.50", currency="USD") == "mười hai đô la năm mươi xu"


def test_vi_dates_times_durations():
    assert vi("date", "2026-03-15") == "ngày mười lăm tháng ba năm hai nghìn không trăm hai mươi sáu"
    assert vi("date", "21/04/2026").startswith("ngày hai mươi mốt tháng tư năm")   # April is "tháng tư"
    assert vi("date", dt.date(2026, 1, 5), mung=True).startswith("ngày mùng năm tháng một")
    assert say("date", "2026-03-15", "vi")[:4] == ["date/day", "digits/10", "digits/lam", "date/month"]
    assert vi("time", "14:30") == "mười bốn giờ ba mươi phút"
    assert vi("time", "08:00") == "tám giờ"
    assert vi("duration", 3725) == "một giờ hai phút năm giây"
    assert vi("duration", 0) == "không giây"
    assert vi("digits", "0901") == "không chín không một"


@pytest.mark.parametrize("n, text", [
    (0, "zero"), (10, "ten"), (15, "fifteen"), (21, "twenty one"), (105, "one hundred five"),
    (1_000_000, "one million"), (1_250_000, "one million two hundred fifty thousand"),
    (2_026, "two thousand twenty six"), (999_999, "nine hundred ninety nine thousand nine hundred ninety nine"),
])
def test_en_numbers(n, text):
    assert en("number", n) == text


def test_en_prompt_files():
    assert say("number", 21, "en") == ["digits/20", "digits/1"]
    assert say("number", 105, "en") == ["digits/1", "digits/hundred", "digits/5"]


def test_en_currency_dates_times():
    assert en("currency", 1_250_000) == "one million two hundred fifty thousand dong"
    assert en("currency", "12.50", currency="USD") == "twelve dollars and fifty cents"
    assert en("currency", "1.01", currency="USD") == "one dollar and one cent"
    assert en("date", "2026-03-15") == "March fifteenth twenty twenty six"
    assert en("date", "2005-12-01") == "December first two thousand five"
    assert en("date", "1999-07-04") == "July fourth nineteen ninety nine"
    assert en("time", "14:05") == "two oh five p m"
    assert en("time", "00:00") == "twelve o'clock a m"
    assert en("duration", "1:00:01") == "one hour one second"
    assert en("duration", 125) == "two minutes five seconds"


@pytest.mark.parametrize("kind, value", [
    ("number", "abc"), ("number", "12.5"), ("date", "2026-02-30"), ("date", "tomorrow"),
    ("time", "25:00"), ("digits", "12a"), ("currency", "ten"), ("duration", "-5"),
])
def test_bad_values_raise(kind, value):
    with pytest.raises(SayError):
        say(kind, value, "vi")


def test_every_word_has_text_in_prompts_yaml():
    for lang in ("vi", "en"):
        missing = [n for n in prompt_names(lang) if lang not in TEXTS.get(n, {})]
        assert not missing, f"{lang}: {missing}"


def test_generated_words_stay_in_vocabulary():
    for lang in ("vi", "en"):
        vocab = prompt_names(lang)
        for n in [*range(0, 1200), 10**6, 1_250_000, 10**9 + 7, 10**12, 123_456_789]:
            assert set(say("number", n, lang)) <= vocab, n
        assert set(say("date", "2026-04-30", lang)) <= vocab
        assert set(say("time", "23:59", lang)) <= vocab
        assert set(say("currency", "99.99", lang, SayOptions(currency="USD"))) <= vocab


# ------------------------------------------------------------ property: the words read back as the number

_SCALES = {"digits/thousand": 10**3, "digits/million": 10**6, "digits/billion": 10**9}


def _vi_read(names: list[str]) -> int:
    """A listener's reading of Vietnamese number words, checking the placement rules on the way."""
    total = section = 0
    prev = None
    for name in names:
        word = name.split("/")[1]
        if word in ("mot", "lam", "tu"):
            assert prev == "digits/muoi" or (word == "lam" and prev == "digits/10"), names
            section += {"mot": 1, "lam": 5, "tu": 4}[word]
        elif word in ("le", "linh"):
            assert prev == "digits/hundred", names
        elif word == "muoi":
            section = section - section % 100 + (section % 100) * 10
        elif word == "hundred":
            section = section - section % 100 + (section % 100) * 100
        elif word == "10":
            section += 10
        elif name == "digits/billion":
            total = (total + section) * 10**9
            section = 0
        elif name in _SCALES:
            total += section * _SCALES[name]
            section = 0
        else:
            assert not (word in ("1", "5") and prev == "digits/muoi"), names   # must be mốt / lăm
            section += int(word)
        prev = name
    return total + section


def _en_read(names: list[str]) -> int:
    total = section = 0
    for name in names:
        word = name.split("/")[1]
        if word == "hundred":
            section = section - section % 100 + (section % 100) * 100
        elif name in _SCALES:
            total += section * _SCALES[name]
            section = 0
        else:
            section += int(word)
    return total + section


@given(st.integers(min_value=0, max_value=10**13))
def test_vi_words_read_back(n):
    assert _vi_read(say("number", n, "vi")) == n


@given(st.integers(min_value=0, max_value=10**12 - 1))
def test_en_words_read_back(n):
    assert _en_read(say("number", n, "en")) == n
