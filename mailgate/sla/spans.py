"""The small text forms of the SLA config: opening hours and durations.

Kept apart from the arithmetic so the config can validate them without importing it.
"""

from __future__ import annotations

import re
from datetime import timedelta

MINUTES_A_DAY = 24 * 60
_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_DURATION = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": timedelta(hours=24), "h": timedelta(hours=1), "m": timedelta(minutes=1)}

Ranges = tuple[tuple[int, int], ...]  # (start, end) minutes after the day's midnight


def parse_ranges(text: str) -> Ranges:
    """``"08:00-12:00,13:00-17:00"`` -> ``((480, 720), (780, 1020))``.

    An end at or before its start runs past midnight into the next day:
    ``"22:00-06:00"`` -> ``((1320, 1800),)``. ``"00:00-24:00"`` is the whole day.
    """
    ranges = []
    for part in text.split(","):
        found = _RANGE.match(part.strip())
        if not found:
            raise ValueError(f"{part.strip()!r} is not a range like 08:00-17:00")
        start, end = _minutes(*found.group(1, 2)), _minutes(*found.group(3, 4))
        if start == MINUTES_A_DAY:
            raise ValueError(f"{part.strip()!r} starts at 24:00")
        if end == start:
            raise ValueError(f"{part.strip()!r} is empty (the whole day is 00:00-24:00)")
        ranges.append((start, end if end > start else end + MINUTES_A_DAY))
    return tuple(sorted(ranges))


def _minutes(hours: str, minutes: str) -> int:
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > MINUTES_A_DAY:
        raise ValueError(f"{hours}:{minutes} is not a time of day")
    return total


def parse_duration(text: str) -> timedelta:
    """``"1d 4h"``, ``"4h"``, ``"30m"`` -> a timedelta of business time.

    ``d`` is 24 hours of business time, not a business day: a target reads the same
    whatever the calendar's hours (with 09:00-17:00, ``"1d"`` is three working days).
    Write ``"8h"`` for "one working day" of an eight-hour calendar.
    """
    compact = text.replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + unit for n, unit in parts) != compact:
        raise ValueError(f"{text!r} is not a duration like 4h, 2d or 1h30m")
    total = sum((int(n) * _UNITS[unit] for n, unit in parts), timedelta())
    if not total:
        raise ValueError(f"{text!r} is no time at all")
    return total
