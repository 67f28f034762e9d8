"""Say numbers, money, dates, times and durations from recorded word prompts.

Like Asterisk's SayNumber: a value becomes a list of prompt *names* (``digits/1``,
``digits/hundred``...) that resolve to ``sounds/<lang>/<name>.wav``. Only words are
recorded, never whole numbers, so a studio can re-record ~60 files per language and
every amount a debt reminder needs can still be spoken.

Vietnamese rules (the ones a listener notices when they are wrong):
- 10 is "mười", 15 "mười lăm", 21 "hai mươi mốt", 25 "hai mươi lăm", 24 "hai mươi bốn"
  (or "hai mươi tư" with ``tu=True``), 105 "một trăm lẻ năm" ("linh" with ``le="linh"``).
- inner groups that are below 100 keep their hundreds: 1.050.000 is
  "một triệu không trăm năm mươi nghìn".
- thousands are "nghìn" (northern; the southern "ngàn" is a different recording).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

LANGUAGES = ("vi", "en")
SAY_KINDS = ("number", "digits", "currency", "date", "time", "duration")
CURRENCIES = ("VND", "USD")


class SayError(ValueError):
    """The value cannot be said as the requested kind."""


@dataclass(frozen=True)
class SayOptions:
    le: str = "le"          # vi: "lẻ" (le) or "linh" (linh) for a zero ten: 105
    tu: bool = False        # vi: say 4 after mươi as "tư" (hai mươi tư)
    currency: str = "VND"
    mung: bool = False      # vi dates: "mùng năm" for days 1-10


# ---------------------------------------------------------------- Vietnamese

def _vi_unit_after_tens(u: int, opts: SayOptions) -> list[str]:
    if u == 1:
        return ["digits/mot"]       # mốt
    if u == 5:
        return ["digits/lam"]       # lăm
    if u == 4 and opts.tu:
        return ["digits/tu"]        # tư
    return [f"digits/{u}"]


def _vi_triple(n: int, full: bool, opts: SayOptions) -> list[str]:
    """0 < n < 1000. ``full``: an inner group, which always says its hundreds."""
    h, rest = divmod(n, 100)
    t, u = divmod(rest, 10)
    out: list[str] = []
    if h or full:
        out += [f"digits/{h}", "digits/hundred"]
    if t == 0:
        if u:
            if out:
                out.append("digits/linh" if opts.le == "linh" else "digits/le")
            out.append(f"digits/{u}")
    elif t == 1:
        out.append("digits/10")
        if u == 5:
            out.append("digits/lam")
        elif u:
            out.append(f"digits/{u}")
    else:
        out += [f"digits/{t}", "digits/muoi"]
        if u:
            out += _vi_unit_after_tens(u, opts)
    return out


def _scales(n: int) -> tuple[list[tuple[int, str]], int]:
    """A positive n as (count, scale word) for its billions, millions and thousands, and the rest below
    1000; the count of billions may itself be 1000 or more."""
    parts: list[tuple[int, str]] = []
    for size, word in ((10**9, "digits/billion"), (10**6, "digits/million"), (10**3, "digits/thousand")):
        if n >= size:
            head, n = divmod(n, size)
            parts.append((head, word))
    return parts, n


def _vi_number(n: int, opts: SayOptions, full: bool = False) -> list[str]:
    if n <= 0:
        return ["digits/minus", *_vi_number(-n, opts)] if n else ["digits/0"]
    parts, rest = _scales(n)
    out: list[str] = []
    for head, word in parts:
        # above 999 tỷ the head is itself a number: "một nghìn tỷ"
        out += [*(_vi_number(head, opts, full) if head >= 1000 else _vi_triple(head, full, opts)), word]
        full = True
    return out + _vi_triple(rest, full, opts) if rest else out


# ---------------------------------------------------------------- English

def _en_below_100(n: int) -> list[str]:
    if n < 20:
        return [f"digits/{n}"]
    t, u = divmod(n, 10)
    return [f"digits/{t * 10}"] + ([f"digits/{u}"] if u else [])


def _en_number(n: int) -> list[str]:
    if n <= 0:
        return ["digits/minus", *_en_number(-n)] if n else ["digits/0"]
    parts, rest = _scales(n)
    out = [w for head, word in parts for w in (*_en_number(head), word)]
    if rest >= 100:
        h, rest = divmod(rest, 100)
        out += [f"digits/{h}", "digits/hundred"]
    return out + _en_below_100(rest) if rest else out


def _en_year(y: int) -> list[str]:
    if 2000 <= y <= 2009 or y % 1000 == 0 or y < 1000:
        return _en_number(y)
    hi, lo = divmod(y, 100)
    if lo == 0:
        return [*_en_below_100(hi), "digits/hundred"]
    if lo < 10:
        return [*_en_below_100(hi), "time/oh", f"digits/{lo}"]
    return [*_en_below_100(hi), *_en_below_100(lo)]


# ---------------------------------------------------------------- parsing values

def parse_int(value: object) -> int:
    """Integers as operators type them: 1250000, "1,250,000", "1.250.000", "1 250 000"."""
    if isinstance(value, bool):
        raise SayError(f"not a number: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    s = re.sub(r"[\s,_]", "", str(value).strip())
    if re.fullmatch(r"-?\d{1,3}(\.\d{3})+", s):  # Vietnamese thousands separator
        s = s.replace(".", "")
    if re.fullmatch(r"-?\d+(\.0+)?", s):
        return int(s.split(".")[0])
    raise SayError(f"not a whole number: {value!r}")


def _parse_money(value: object, currency: str) -> tuple[int, int]:
    if currency == "VND":
        return parse_int(value), 0
    s = re.sub(r"[\s,_$]", "", str(value).strip())
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise SayError(f"not an amount: {value!r}") from None
    if d < 0:
        raise SayError(f"negative amount: {value!r}")
    cents = int((d * 100).to_integral_value())
    return divmod(cents, 100)


def parse_date(value: object) -> dt.date:
    """ISO 2026-03-05, Vietnamese 05/03/2026 (day first), or a date/datetime."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    s = str(value).strip()
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?", s)
    try:
        if m:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        m = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})", s)
        if m:
            return dt.date(int(m[3]), int(m[2]), int(m[1]))
        m = re.fullmatch(r"(\d{2})(\d{2})(\d{4})", s)  # DDMMYYYY as typed on a keypad
        if m:
            return dt.date(int(m[3]), int(m[2]), int(m[1]))
    except ValueError as exc:
        raise SayError(f"not a date: {value!r} ({exc})") from None
    raise SayError(f"not a date: {value!r}")


def parse_time(value: object) -> dt.time:
    if isinstance(value, dt.datetime):
        return value.time()
    if isinstance(value, dt.time):
        return value
    m = re.fullmatch(r"(\d{1,2})[:hH](\d{2})(?::(\d{2}))?", str(value).strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise SayError(f"not a time: {value!r}")
    return dt.time(int(m[1]), int(m[2]))


def parse_duration(value: object) -> int:
    """Seconds: 3725, "3725", "1:02:05", "02:05"."""
    if isinstance(value, dt.timedelta):
        return int(value.total_seconds())
    s = str(value).strip()
    if ":" in s:
        parts = s.split(":")
        if not all(p.isdigit() for p in parts) or len(parts) > 3:
            raise SayError(f"not a duration: {value!r}")
        total = 0
        for p in parts:
            total = total * 60 + int(p)
        return total
    n = parse_int(value)
    if n < 0:
        raise SayError(f"negative duration: {value!r}")
    return n


# ---------------------------------------------------------------- the public entry

def say(kind: str, value: object, lang: str, options: SayOptions | None = None) -> list[str]:
    """Prompt names that speak ``value`` as ``kind`` in ``lang``. Raises SayError on a bad value."""
    opts = options or SayOptions()
    if lang not in LANGUAGES:
        raise SayError(f"no say-number rules for language {lang!r}")
    vi = lang == "vi"
    num = (lambda n: _vi_number(n, opts)) if vi else _en_number
    if kind == "number":
        return num(parse_int(value))
    if kind == "digits":
        s = str(value).strip()
        if not s or not re.fullmatch(r"[0-9*#+ ]+", s):
            raise SayError(f"not a digit string: {value!r}")
        names = {"*": "digits/star", "#": "digits/pound", "+": "digits/plus"}
        return [names.get(c, f"digits/{c}") for c in s if c != " "]
    if kind == "currency":
        cur = opts.currency.upper()
        if cur not in CURRENCIES:
            raise SayError(f"unknown currency {opts.currency!r}")
        major, minor = _parse_money(value, cur)
        if cur == "VND":
            return [*num(major), "currency/dong"]
        if vi:
            out = [*num(major), "currency/dollar"]
            return out + ([*num(minor), "currency/cent"] if minor else [])
        out = [*num(major), "currency/dollar" if major == 1 else "currency/dollars"]
        if minor:
            out += ["digits/and", *num(minor), "currency/cent" if minor == 1 else "currency/cents"]
        return out
    if kind == "date":
        d = parse_date(value)
        if vi:
            day = (["date/mung"] if opts.mung and d.day <= 10 else []) + num(d.day)
            month = ["date/month_4"] if d.month == 4 else num(d.month)  # "tháng tư", never "tháng bốn"
            return ["date/day", *day, "date/month", *month, "date/year", *num(d.year)]
        return [f"date/month_{d.month}", f"ordinals/{d.day}", *_en_year(d.year)]
    if kind == "time":
        t = parse_time(value)
        if vi:
            out = [*num(t.hour), "time/hour"]
            return out + ([*num(t.minute), "time/minute"] if t.minute else [])
        h12 = t.hour % 12 or 12
        out = _en_number(h12)
        if t.minute == 0:
            out.append("time/oclock")
        elif t.minute < 10:
            out += ["time/oh", f"digits/{t.minute}"]
        else:
            out += _en_below_100(t.minute)
        return out + ["time/am" if t.hour < 12 else "time/pm"]
    if kind == "duration":
        secs = parse_duration(value)
        hours, rem = divmod(secs, 3600)
        minutes, seconds = divmod(rem, 60)
        out = []
        for amount, unit in ((hours, "hour"), (minutes, "minute"), (seconds, "second")):
            if amount or (unit == "second" and not out):
                plural = "" if vi or amount == 1 else "s"
                out += [*num(amount), f"time/{unit}{plural}"]
        return out
    raise SayError(f"unknown say kind {kind!r} (one of {', '.join(SAY_KINDS)})")


def prompt_names(lang: str) -> set[str]:
    """Every prompt name :func:`say` can produce in ``lang`` (the files a language needs)."""
    names = {f"digits/{d}" for d in range(10)} | {"digits/star", "digits/pound", "digits/plus",
                                                  "digits/hundred", "digits/thousand", "digits/million",
                                                  "digits/billion", "digits/minus", "currency/dong",
                                                  "currency/dollar", "currency/cent"}
    if lang == "vi":
        names |= {"digits/10", "digits/muoi", "digits/mot", "digits/lam", "digits/tu", "digits/le",
                  "digits/linh", "date/day", "date/month", "date/year", "date/mung", "date/month_4",
                  "time/hour", "time/minute", "time/second"}
    else:
        names |= {f"digits/{n}" for n in range(10, 20)} | {f"digits/{n}" for n in range(20, 100, 10)}
        names |= {f"date/month_{m}" for m in range(1, 13)} | {f"ordinals/{d}" for d in range(1, 32)}
        names |= {"digits/and", "currency/dollars", "currency/cents", "time/oh", "time/oclock", "time/am",
                  "time/pm"}
        names |= {f"time/{u}{p}" for u in ("hour", "minute", "second") for p in ("", "s")}
    return names


def words(names: Iterable[str], texts: dict[str, dict[str, str]], lang: str) -> str:
    """The sentence a list of prompt names reads as (for logs, the simulator and tests)."""
    return " ".join(texts.get(n, {}).get(lang, f"<{n}>") for n in names)
