import pytest

from callcenter.dialer import phone
from callcenter.dialer.phone import PhoneError, normalize


@pytest.mark.parametrize("raw,expected", [
    ("0912345678", "+84912345678"),
    ("0912 345 678", "+84912345678"),
    ("091.234.5678", "+84912345678"),
    ("091-234-5678", "+84912345678"),
    ("(+84) 91 234 5678", "+84912345678"),
    ("+84912345678", "+84912345678"),
    ("84912345678", "+84912345678"),
    ("0084 912 345 678", "+84912345678"),
    ("+84 0912345678", "+84912345678"),      # trunk 0 typed after the country code
    ("912345678", "+84912345678"),           # Excel dropped the leading 0
    ("912345678.0", "+84912345678"),         # number column read as float
    ("'0912345678", "+84912345678"),         # Excel text marker
    ("0387654321", "+84387654321"),          # 03x Viettel
    ("0701234567", "+84701234567"),          # 07x
    ("0812345678", "+84812345678"),          # 08x
    ("0561234567", "+84561234567"),          # 05x
    ("0841234567", "+84841234567"),          # 084 Vinaphone, not the country code
    ("841234567", "+84841234567"),           # ... with the 0 lost
    ("024 3826 1234", "+842438261234"),      # Hanoi landline
    ("(028) 3822-1234", "+842838221234"),    # HCMC landline
    ("01688123456", "+84388123456"),         # 2018 renumbering 0168 -> 038
    ("0123 456 7890", "+84834567890"),       # 0123 -> 083
    ("+1 415 555 2671", "+14155552671"),     # generic E.164 path
    ("0044 20 7946 0958", "+442079460958"),
])
def test_normalize_vn_and_international(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw,reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("091234567", "digits"),                 # one short
    ("09123456789", "digits"),               # one long
    ("0112345678", "prefix"),
    ("8.4912345678E+10", "scientific"),
    ("0912345678 / 0987654321", "more than one"),
    ("0912abc678", "unexpected character"),
    ("+0912345678", "country code"),
    ("024 3826 123", "short"),
])
def test_normalize_rejects_with_reason(raw, reason):
    with pytest.raises(PhoneError) as exc:
        normalize(raw)
    assert reason in exc.value.reason


def test_other_region_needs_international_form_without_phonenumbers():
    if phone._pn is not None:
        assert normalize("(415) 555-2671", "US") == "+14155552671"
    else:
        with pytest.raises(PhoneError, match="international form"):
            normalize("(415) 555-2671", "US")


def test_country_zone_and_national():
    assert phone.country_time_zone("+84912345678") == "Asia/Ho_Chi_Minh"
    assert phone.country_time_zone("+14155552671") is None
    assert phone.national("+84912345678") == "0912345678"
