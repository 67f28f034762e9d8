"""Times of day as the config files write them: "08:00", "17:30", "24:00" (the end of the day).

One grammar for every file that has opening or calling hours (IVR calendars, campaign calling hours):
H:MM or HH:MM from 00:00 to 24:00. YAML 1.1 reads an unquoted 08:00 as the base-60 integer 480; that
integer is taken as the same time.
"""

from __future__ import annotations

import datetime as dt
import re

DAY = 24 * 60
_HHMM = re.compile(r"(\d{1,2}):(\d{2})")


def minutes(value: object) -> int:
    """Minutes since midnight, 0 to 1440; ValueError (saying what is expected) for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        total = value
    else:
        m = _HHMM.fullmatch(str(value).strip())
        if m is None or int(m[2]) > 59:
            raise ValueError(f"expected a time HH:MM, got {value!r}")
        total = int(m[1]) * 60 + int(m[2])
    if not 0 <= total <= DAY:
        raise ValueError(f"expected a time HH:MM from 00:00 to 24:00, got {value!r}")
    return total


def time_of_day(value: object) -> dt.time:
    """The same as a ``datetime.time``; 24:00 is ``time.max`` (a window that runs to midnight)."""
    total = minutes(value)
    return dt.time.max if total == DAY else dt.time(total // 60, total % 60)
