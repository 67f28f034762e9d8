"""What never leaves a worker in the clear: phone numbers and secrets in log lines, and the
modes of the files it keeps (recordings, the CDR store, Redis data).

Numbers are found by *pattern*, not by the key they sit under, because they also arrive inside
request paths (``DELETE /dnc/0912345678``), exception messages, tracebacks and pjsip traces.
A phone-like run is 7-15 digits, with an optional ``+`` (or ``%2B``) and optional single spaces,
dots or dashes between digit groups (``0912 345 678``, ``091-234-5678``, ``(028) 3912 3456``).
It is masked keeping only its last 3 digits and the ``+``: ``+84912345678`` -> ``+********678``,
``0912 345 678`` -> ``*******678``, so an operator can still tell two callers apart.

Kept as they are, so logs stay useful: uuids and hex call ids (digits glued to letters), ISO dates
and times, IPv4 addresses with ports, decimals (``1732950000.25``), Redis stream ids, digit runs
longer than 15 without separators (nanosecond stamps), and values under numeric keys (``port``,
``duration``, ``*_ms``...). A bare 7-15 digit run anywhere else (an epoch in seconds written into
text, an amount like ``1.500.000``) is masked too: the filter cannot tell it from a number.

Secrets: values under keys like password, token, authorization, cookie, api_key are replaced
whole by ``***``; inside text, ``Authorization: Bearer ...``, ``Cookie: ...`` and ``password=...``
/ ``"token": "..."`` lose their value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

MASK = "***"


def _spellings(*words: str) -> list[str]:
    out: list[str] = []
    for w in words:
        out += [v for v in (w, w.lower(), w.upper()) if v not in out]
    return out


_ONE_DIGIT = r"\d?"


def _build() -> re.Pattern[str]:
    """One regex, one pass per string, and a Python call only for what is masked.

    Every alternative starts with a literal character, so the regex engine skips at C speed the
    positions that cannot start anything (an alternative starting with a class or a lookaround is
    tried at every position: 2-4x slower, bench/log_bench.py). Look-alikes that are kept (ISO
    dates, IPv4 addresses, uuids, Redis stream ids) are refused by lookarounds where a number would
    start, so they never reach ``_replace``."""
    sep = r"""["']?\s*[:=]\s*["']?"""
    to_line_end = sep + r"""[^\r\n"']+"""                                # a header: up to the line's end
    one_value = sep + r"""(?:[Bb]earer\s+|[Bb]asic\s+)?[^\s"'&,;]+"""   # key=value, "key": "value"
    group = r"(?:[ .-]\d{2,8})"                     # a separator and a group of digits
    end = r"(?![A-Za-z0-9]|\.\d)"                  # not glued to a word, not a decimal's integer part
    grouped_or_plain = rf"(?:\(\d{{1,4}}\)[ .-]?\d{{2,8}}{group}{{0,4}}|\d{{1,4}}{group}{{1,5}}|\d{{7,}})"
    octet = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    # the rest of an IPv4 address's first octet once its first digit is known
    octet_rest = {"0": "", "1": r"(?:\d\d?)?", "2": r"(?:[0-4]\d|5[0-5]|\d)?"}   # others: r"\d?"
    secrets = [(w, to_line_end) for w in _spellings("Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
                                                    "X-Api-Key")]
    secrets += [(w, one_value) for w in _spellings("Password", "Passwd", "Secret", "Token", "Api_Key", "Api-Key",
                                                   "ApiKey")]
    by_first: dict[str, list[str]] = {}
    for word, tail in secrets:   # one alternative per first letter: fewer branches tried per position
        by_first.setdefault(word[0], []).append(re.escape(word[1:]) + tail)
    alts = [c + "(?:" + "|".join(rests) + ")" for c, rests in by_first.items()]
    for c in "0123456789":
        alts.append(
            c
            + rf"(?<![A-Za-z0-9.]{c})"             # glued to a word (hex ids) or after a decimal point
            + r"(?=[\d .()-]{6})"                   # 7 characters at least
            + rf"(?<![0-9a-fA-F]{{4}}-{c})"        # a uuid's later segment, a date's month
            + r"(?!\d{3}-[01]\d-[0-3]\d)"           # ISO date
            + r"(?![0-9a-fA-F]{7}-[0-9a-fA-F]{4}-)"  # a uuid's first segment
            + r"(?!\d{12}-\d)"                     # Redis stream id
            + rf"(?!{octet_rest.get(c, _ONE_DIGIT)}(?:\.{octet}){{3}}(?![\d.]))"            # IPv4
            + rf"(?:\d{{0,3}}{group}{{1,5}}|\d{{6,}}){end}")
    alts += [r"\+(?<![A-Za-z0-9.]\+)" + grouped_or_plain + end,
             r"%2[Bb](?<![A-Za-z0-9.]%2[Bb])" + grouped_or_plain + end,                  # URL-encoded +
             r"\((?<![A-Za-z0-9.]\()\d{1,4}\)[ .-]?\d{2,8}" + group + "{0,4}" + end]
    return re.compile("|".join(alts))


_PATTERN = _build()
_SECRET_NAME = re.compile(r"""[A-Za-z_-]+["']?\s*[:=]\s*["']?""")
_NON_DIGITS = re.compile(r"\D")
# A string without a digit, ':' or '=' can carry neither a number nor an inline secret.
_MAYBE = re.compile(r"[\d:=]")


def _replace(m: re.Match[str]) -> str:
    text = m.group(0)
    if text[0].isalpha():
        name = _SECRET_NAME.match(text)
        assert name is not None     # the pattern's secret alternative starts with this very name
        return name.group(0) + MASK
    prefix = "+" if text[0] == "+" else ("%2B" if text[0] == "%" else "")
    body = text[len(prefix):] if prefix else text
    digits = _NON_DIGITS.sub("", body)
    n = len(digits)
    if n < 7 or (n > 15 and n == len(body)):
        return text    # too short for a phone number; a long plain run is an id or a stamp
    return prefix + "*" * (n - 3) + digits[-3:]


def mask_text(text: str) -> str:
    """The text with every phone-like number masked to its last 3 digits and every inline secret
    replaced by ``***``."""
    if len(text) < 7 or not _MAYBE.search(text):
        return text
    return _PATTERN.sub(_replace, text)


def mask_number(value: str) -> str:
    """A number (or text carrying numbers) as it may appear in a log: ``+********678``."""
    return mask_text(value)


# Keys whose values are always phone numbers: masked even when they are ints.
PHONE_KEYS = frozenset({"caller", "called", "number", "phone", "callee", "caller_id", "from_uri", "to_uri",
                        "uri", "contact", "destination", "msisdn", "e164"})
# Keys whose values are secrets whatever they look like (compared lower-case, "-" read as "_").
SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "authorization", "proxy_authorization",
                         "cookie", "set_cookie", "api_key", "apikey", "x_api_key", "access_token",
                         "refresh_token", "client_secret", "session", "session_id", "csrf", "csrf_token"})
_SECRET_SUFFIXES = ("_password", "_secret", "_token")
# Keys whose values are measurements or protocol numbers: never phone numbers, never masked.
NUMERIC_KEYS = frozenset({"port", "sip_port", "http_port", "rtp_port", "agents_port", "pid", "duration",
                          "ms", "seconds", "ts", "timestamp", "version", "bytes", "size", "count", "status",
                          "code", "sip_code", "lineno", "attempt", "steps", "stream_id", "entry_id"})
_NUMERIC_SUFFIXES = ("_ms", "_seconds", "_port", "_bytes", "_count", "_ts")


def is_secret_key(key: str) -> bool:
    k = key.lower().replace("-", "_")
    return k in SECRET_KEYS or k.endswith(_SECRET_SUFFIXES)


_PLAIN, _SECRET, _NUMERIC, _PHONE, _ID = range(1, 6)   # truthy: a cache miss is None
_key_kinds: dict[str, int] = {}          # log keys are few: classify each once


def _classify(key: str) -> int:
    if is_secret_key(key):
        kind = _SECRET
    elif key in NUMERIC_KEYS or key.endswith(_NUMERIC_SUFFIXES):
        kind = _NUMERIC
    elif key in PHONE_KEYS:
        kind = _PHONE
    elif key == "id" or key.endswith("_id"):
        kind = _ID
    else:
        kind = _PLAIN
    if len(_key_kinds) < 4096:       # keys of logged payloads (headers, rows) are not bounded
        _key_kinds[key] = kind
    return kind


_HEX_ID = re.compile(r"[0-9a-f]{32}")   # our call, leg and event ids (uuid4().hex)


def redact(value: Any, key: str = "") -> Any:
    """A copy of a log value with numbers and secrets masked, recursively through dicts, lists and
    tuples. Numbers (int/float) pass unchanged except under phone keys; any other object is logged
    as its masked ``str``."""
    kind = (_key_kinds.get(key) or _classify(key)) if key else _PLAIN
    if kind == _SECRET:
        return MASK
    if kind == _NUMERIC:
        return value
    if type(value) is str:       # most values: checked first, and short ones hold neither number nor secret
        if len(value) < 7 or (kind == _ID and _HEX_ID.fullmatch(value)):
            return value
        return _PATTERN.sub(_replace, value) if _MAYBE.search(value) else value
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return mask_text(str(value)) if kind == _PHONE else value
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact(v, k if isinstance(k, str) else "")
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, key) for v in value]
    if isinstance(value, bytes):
        return mask_text(value.decode("utf-8", "replace"))
    return mask_text(str(value))


# ---------------------------------------------------------------- files at rest

# Recordings, the CDR store and Redis's data are personal data: readable by the service's group
# (an operator's backup job), never by other users of the machine.
UMASK = 0o027
DIR_MODE = 0o750
FILE_MODE = 0o640


def restrict_umask() -> int:
    """Set the process umask to 027 (files 0640, directories 0750); returns the previous one."""
    return os.umask(UMASK)


def private_dir(path: str | Path) -> Path:
    """Create the directory (and missing parents) and give it mode 0750 whatever the umask."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(p, DIR_MODE)
    return p


def private_file(path: str | Path) -> Path:
    """Give an existing file mode 0640 (chmod: it holds even when the umask was wider)."""
    p = Path(path)
    os.chmod(p, FILE_MODE)
    return p
