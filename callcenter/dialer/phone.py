"""Phone numbers to E.164, Vietnam first.

Call lists come from spreadsheets typed by people: ``0912 345 678``, ``(+84) 91.234.5678``,
``84912345678``, ``912345678`` (Excel ate the leading zero), old 11-digit mobiles ``0168...``
(renumbered in 2018) and landlines ``024 3826 1234``. Vietnam is handled here without any
dependency; other regions accept international forms (``+CC...`` / ``00CC...``) always, and
national forms only when the optional ``phonenumbers`` package is installed.
"""

from __future__ import annotations

import re

try:  # optional: national numbers of regions other than VN
    import phonenumbers as _pn
except ImportError:  # pragma: no cover - depends on the environment
    _pn = None


class PhoneError(ValueError):
    """The text is not a dialable phone number; ``reason`` says why in operator words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# 2018 renumbering of 11-digit mobile prefixes (MIC Decision 798/QD-BTTTT).
OLD_MOBILE_PREFIXES = {
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036", "0167": "037",
    "0168": "038", "0169": "039",
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    "0186": "056", "0188": "058", "0199": "059",
}
_MOBILE_LEAD = "35789"          # 03x 05x 07x 08x 09x
_SEPARATORS = re.compile(r"[\s.\-()/\u00a0\u200b']")
_EXTENSION = re.compile(r"(?:ext\.?|x|#|máy lẻ)\s*\d+$", re.IGNORECASE)
# Single-zone countries a dialer commonly reaches; others use the campaign's time zone.
COUNTRY_TZ = {"84": "Asia/Ho_Chi_Minh", "66": "Asia/Bangkok", "65": "Asia/Singapore", "63": "Asia/Manila",
              "81": "Asia/Tokyo", "82": "Asia/Seoul", "856": "Asia/Vientiane", "855": "Asia/Phnom_Penh",
              "44": "Europe/London", "49": "Europe/Berlin", "33": "Europe/Paris"}


def _vn_national(nsn: str) -> str:
    """Validate a Vietnamese national significant number (no trunk 0); return E.164."""
    if len(nsn) == 9 and nsn[0] in _MOBILE_LEAD:
        return "+84" + nsn
    if len(nsn) == 10 and nsn[0] == "2":
        return "+84" + nsn
    if len(nsn) == 9 and nsn[0] == "2":
        raise PhoneError("landline is one digit short (02x numbers have 11 digits with the 0)")
    if len(nsn) == 10 and "0" + nsn[:3] in OLD_MOBILE_PREFIXES:
        return "+84" + OLD_MOBILE_PREFIXES["0" + nsn[:3]][1:] + nsn[3:]
    if nsn[:1] in ("1",) and len(nsn) <= 5:
        raise PhoneError("short code / service number, not a subscriber")
    if nsn[:1] in _MOBILE_LEAD:
        return _len_error(nsn, 9, "mobile")
    if nsn[:1] == "2":
        return _len_error(nsn, 10, "landline")
    raise PhoneError(f"not a Vietnamese mobile or landline prefix (0{nsn[:2]})")


def _len_error(nsn: str, want: int, kind: str) -> str:
    have = len(nsn) + 1
    raise PhoneError(f"{kind} number has {have} digits with the leading 0, expected {want + 1}")


def _digits_only(text: str) -> str:
    s = _SEPARATORS.sub("", text)
    s = _EXTENSION.sub("", s)
    return s


def normalize(raw: object, region: str = "VN") -> str:
    """Return the E.164 form (``+84912345678``) of ``raw`` or raise PhoneError with a reason."""
    if raw is None:
        raise PhoneError("phone is empty")
    text = str(raw).strip().lstrip("'")        # a leading ' is Excel's "treat as text" marker
    if not text:
        raise PhoneError("phone is empty")
    if re.fullmatch(r"\d(?:[.,]\d+)?[eE]\+?\d+", text):
        raise PhoneError("number in scientific notation (Excel); format the column as text and export again")
    if re.search(r"[;,]|\s(?:/|or|hoặc)\s", text) or len(re.findall(r"\d{9,}", _SEPARATORS.sub(" ", text))) > 1:
        raise PhoneError("more than one number in the cell")
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]                     # a number column read as float
    s = _digits_only(text)
    plus = s.startswith("+")
    if plus:
        s = s[1:]
    if not s:
        raise PhoneError("phone has no digits")
    if not s.isdigit():
        bad = next(c for c in s if not c.isdigit())
        raise PhoneError(f"unexpected character {bad!r} in phone")
    if not plus and s.startswith("00"):
        plus, s = True, s[2:]
    region = region.upper()
    if plus:
        return _international(s)
    if region == "VN":
        if s.startswith("84") and len(s) in (11, 12):
            return _vn_national(s[2:])
        if s.startswith("0"):
            return _vn_national(s[1:])
        return _vn_national(s)               # Excel stripped the leading 0
    return _other_region(s, region)


def _international(digits: str) -> str:
    if digits.startswith("84"):
        nsn = digits[2:]
        if nsn.startswith("0"):                  # +84 0912... : a trunk 0 people add by habit
            nsn = nsn[1:]
        return _vn_national(nsn)
    if digits.startswith("0"):
        raise PhoneError("country code cannot start with 0")
    if not 8 <= len(digits) <= 15:
        raise PhoneError(f"international number has {len(digits)} digits, E.164 allows 8 to 15")
    if _pn is not None:
        try:
            parsed = _pn.parse("+" + digits, None)
        except _pn.NumberParseException as exc:
            raise PhoneError(f"not a valid international number: {exc}") from None
        if not _pn.is_valid_number(parsed):
            raise PhoneError("not a valid number for its country")
        return str(_pn.format_number(parsed, _pn.PhoneNumberFormat.E164))
    return "+" + digits


def _other_region(digits: str, region: str) -> str:
    if _pn is None:
        raise PhoneError(f"national number for region {region} needs the international form +CC... "
                         "(or install the 'phonenumbers' package)")
    try:
        parsed = _pn.parse(digits, region)
    except _pn.NumberParseException as exc:
        raise PhoneError(f"not a valid {region} number: {exc}") from None
    if not _pn.is_valid_number(parsed):
        raise PhoneError(f"not a valid {region} number")
    return str(_pn.format_number(parsed, _pn.PhoneNumberFormat.E164))


def national(e164: str) -> str:
    """Vietnamese national form (0912345678) of a +84 number; other numbers unchanged without '+'."""
    if e164.startswith("+84"):
        return "0" + e164[3:]
    return e164.lstrip("+")


def country_time_zone(e164: str) -> str | None:
    """The IANA zone of a single-zone country, None when the country spans zones or is unknown."""
    digits = e164.lstrip("+")
    for n in (3, 2, 1):
        tz = COUNTRY_TZ.get(digits[:n])
        if tz:
            return tz
    return None
