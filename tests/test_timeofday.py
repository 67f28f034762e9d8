"""The one HH:MM grammar of the config files (campaign calling hours, IVR calendars)."""

from __future__ import annotations

import datetime as dt

import pytest

from callcenter.timeofday import minutes, time_of_day


@pytest.mark.parametrize(("text", "expected"), [("00:00", 0), ("8:30", 510), ("08:30", 510), (" 17:05 ", 1025),
                                                ("24:00", 1440), (480, 480)])   # 480: YAML's unquoted 08:00
def test_times_of_day(text: object, expected: int) -> None:
    assert minutes(text) == expected


@pytest.mark.parametrize("bad", ["24:01", "25:00", "8:5", "08:60", "8", "08:00:00", "", "-1:00", -1, 1441, True,
                                 None])
def test_what_is_not_a_time_of_day(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a time HH:MM"):
        minutes(bad)


def test_as_datetime_time_the_end_of_the_day_is_time_max() -> None:
    assert time_of_day("13:30") == dt.time(13, 30)
    assert time_of_day("24:00") == dt.time.max
