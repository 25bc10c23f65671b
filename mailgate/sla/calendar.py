"""Business time: when a calendar is open, adding business time, measuring it.

A calendar's opening hours are wall-clock ranges per weekday in its own zone; each is
turned into real instants (UTC) day by day, so a range on a daylight-saving change day
is as long as the clock on the wall says it is open (``22:00-06:00`` across the March
change in Berlin is seven real hours). A range belongs to the day it starts on: a
holiday closes the ranges starting that day, and a range across midnight runs into
the next day even if that day is a holiday or closed.

Everything here is pure: instants in, instants out, no database and no clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mailgate.config import Calendar
from mailgate.localtime import utc, zone_named
from mailgate.sla.spans import Ranges, parse_ranges

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A calendar open at least once a week finds its next opening within days; holidays
# are a finite list. Past this many closed days in a row something is wrong.
MAX_CLOSED_DAYS = 3 * 366

Interval = tuple[datetime, datetime]  # [start, end) in UTC


@dataclass(frozen=True)
class BusinessCalendar:
    zone: ZoneInfo
    week: tuple[Ranges, ...]  # Monday first; () = closed
    holidays: frozenset[date] = frozenset()

    @classmethod
    def from_config(cls, calendar: Calendar) -> BusinessCalendar:
        week = tuple(parse_ranges(text) if text else () for text in calendar.week())
        return cls(zone_named(calendar.timezone), week, frozenset(calendar.holidays))

    def day_intervals(self, day: date) -> list[Interval]:
        """The real instants of the ranges starting on ``day`` (local), in order."""
        if day in self.holidays:
            return []
        midnight = datetime.combine(day, time(), self.zone)
        # Aware arithmetic within one zone is wall-clock arithmetic; the UTC offset is
        # looked up for the resulting wall time, which is what handles DST.
        found = []
        for start, end in self.week[day.weekday()]:
            begins = (midnight + timedelta(minutes=start)).astimezone(UTC)
            ends = (midnight + timedelta(minutes=end)).astimezone(UTC)
            if ends > begins:  # a range inside the hour skipped in spring is no time
                found.append((begins, ends))
        return found

    def open_from(self, moment: datetime) -> Iterator[Interval]:
        """The open intervals ending after ``moment``, in order, without end.

        Where a range across midnight overlaps the next day's, the overlap counts once.
        """
        day = utc(moment).astimezone(self.zone).date() - timedelta(days=1)
        last_end = utc(moment)
        closed_days = 0
        while closed_days <= MAX_CLOSED_DAYS:
            intervals = self.day_intervals(day)
            closed_days = 0 if intervals else closed_days + 1
            for begins, ends in intervals:
                begins = max(begins, last_end)
                if ends > begins:
                    last_end = ends
                    yield begins, ends
            day += timedelta(days=1)
        raise ValueError(f"the calendar is closed for {MAX_CLOSED_DAYS} days on end")


def add_business(calendar: BusinessCalendar, start: datetime, span: timedelta) -> datetime:
    """The instant when ``span`` of business time has passed since ``start``."""
    start = utc(start)
    if span <= timedelta():
        return start
    left = span
    for begins, ends in calendar.open_from(start):
        begins = max(begins, start)
        if ends - begins >= left:
            return begins + left
        left -= ends - begins
    raise AssertionError("open_from never ends")


def business_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """The business time from ``start`` to ``end`` (nothing if ``end`` is not later)."""
    start, end = utc(start), utc(end)
    total = timedelta()
    if end <= start:
        return total
    for begins, ends in calendar.open_from(start):
        if begins >= end:
            break
        total += min(ends, end) - max(begins, start)
    return total


# A route without a calendar counts around the clock.
ALWAYS = BusinessCalendar(ZoneInfo("UTC"), (((0, 24 * 60),),) * 7)
