"""Business-time arithmetic: weekends, holidays, split days, ranges across midnight
and daylight-saving change days, plus properties over random instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgate.config import ConfigError, parse_config
from mailgate.sla.calendar import BusinessCalendar, add_business, business_between
from mailgate.sla.spans import parse_duration, parse_ranges


def calendar(timezone: str = "Asia/Jakarta", holidays: str = "[]", **hours: str):
    days = "\n".join(f'{day} = "{text}"' for day, text in hours.items())
    text = (
        f'[[calendars]]\nname = "c"\ntimezone = "{timezone}"\nholidays = {holidays}\n'
        f"[calendars.hours]\n{days}\n"
    )
    return BusinessCalendar.from_config(parse_config(text, "t.toml").calendars[0])


WEEKDAYS = dict.fromkeys(["mon", "tue", "wed", "thu", "fri"], "08:00-17:00")
JAKARTA = calendar(**WEEKDAYS)
SPLIT = calendar(**dict.fromkeys(WEEKDAYS, "08:00-12:00,13:00-17:00"))
NIGHTS = calendar(**dict.fromkeys(WEEKDAYS, "22:00-06:00"))
HOLIDAY = calendar(holidays="[2026-07-23]", **WEEKDAYS)  # a Thursday
BERLIN_NIGHTS = calendar("Europe/Berlin", sat="22:00-06:00", sun="00:00-06:00")


def wib(text: str) -> datetime:
    """A Jakarta wall time (UTC+7, no DST) as a UTC instant."""
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("cal", "start", "span", "due"),
    [
        (JAKARTA, "2026-07-24 16:00", "2h", "2026-07-27 09:00"),  # Friday -> Monday
        (JAKARTA, "2026-07-25 10:00", "30m", "2026-07-27 08:30"),  # from a Saturday
        (JAKARTA, "2026-07-27 06:00", "9h", "2026-07-27 17:00"),  # ends at closing
        (JAKARTA, "2026-07-27 08:00", "1d", "2026-07-29 14:00"),  # 24h of business time
        (HOLIDAY, "2026-07-22 16:00", "2h", "2026-07-24 09:00"),  # Thursday is off
        (SPLIT, "2026-07-27 11:00", "2h", "2026-07-27 14:00"),  # over lunch
        (NIGHTS, "2026-07-24 23:00", "4h", "2026-07-25 03:00"),  # Friday night into Saturday
        (NIGHTS, "2026-07-25 06:00", "1h", "2026-07-27 23:00"),  # next opening Monday 22:00
    ],
)
def test_adding_business_time(cal, start, span, due):
    assert add_business(cal, wib(start), parse_duration(span)) == wib(due)
    assert business_between(cal, wib(start), wib(due)) == parse_duration(span)


def test_a_holiday_keeps_the_night_that_started_the_day_before():
    nights = calendar(holidays="[2026-07-28]", **dict.fromkeys(WEEKDAYS, "22:00-06:00"))
    assert business_between(nights, wib("2026-07-27 12:00"), wib("2026-07-29 12:00")) == timedelta(
        hours=8
    )  # Monday 22:00 to Tuesday 06:00; Tuesday's own night is the holiday's


def test_daylight_saving_change_days_in_berlin():
    # 29 March 2026: 02:00 CET becomes 03:00 CEST; 25 October: 03:00 CEST becomes 02:00 CET.
    spring_saturday = at("2026-03-28T12:00:00+01:00")
    assert business_between(
        BERLIN_NIGHTS, spring_saturday, spring_saturday + timedelta(days=2)
    ) == timedelta(hours=7)  # Sat 22:00-Sun 06:00 is 7 real hours; Sunday 00-06 lies inside
    autumn_saturday = at("2026-10-24T12:00:00+02:00")
    assert business_between(
        BERLIN_NIGHTS, autumn_saturday, autumn_saturday + timedelta(days=2)
    ) == timedelta(hours=9)
    sunday_morning = calendar("Europe/Berlin", sun="00:00-06:00")
    due = add_business(sunday_morning, at("2026-03-28T12:00:00+01:00"), timedelta(hours=5))
    assert due == at("2026-03-29T06:00:00+02:00")
    due = add_business(sunday_morning, at("2026-10-24T12:00:00+02:00"), timedelta(hours=6))
    assert due == at("2026-10-25T05:00:00+01:00")  # the hour 02:00-03:00 came twice


def test_nothing_is_measured_backwards_and_nothing_added_is_the_start():
    start = wib("2026-07-25 10:00")
    assert business_between(JAKARTA, start, start - timedelta(days=3)) == timedelta()
    assert add_business(JAKARTA, start, timedelta()) == start


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[calendars.hours]\nmon = "8-17"', "not a range like 08:00-17:00"),
        ('[calendars.hours]\nmon = "09:00-09:00"', "is empty"),
        ('[calendars.hours]\nmon = "09:60-10:00"', "not a time of day"),
        ('[calendars.hours]\nmonday = "09:00-10:00"', "unknown key"),
        ("[calendars.hours]\n", "opening hours on at least one day"),
        ('timezone = "Nowhere/Land"\n[calendars.hours]\nmon = "09:00-10:00"', "IANA"),
    ],
)
def test_a_bad_calendar_is_a_config_error(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(f'[[calendars]]\nname = "office"\n{text}\n', "t.toml")


def test_a_route_must_name_a_calendar_that_exists():
    text = (
        '[[routes]]\naddress = "support@example.test"\ncalendar = "ofice"\n\n'
        '[[calendars]]\nname = "office"\n[calendars.hours]\nmon = "09:00-17:00"\n'
    )
    with pytest.raises(ConfigError, match=r"t.toml:3: routes\[0\]\.calendar: .*'ofice'"):
        parse_config(text, "t.toml")
    assert parse_config(text.replace("ofice", "office"), "t.toml").routes[0].calendar == "office"


def test_ranges_and_durations_parse():
    assert parse_ranges("13:00-17:00, 08:00-12:00") == ((480, 720), (780, 1020))
    assert parse_ranges("22:00-06:00") == ((1320, 1800),)
    assert parse_ranges("00:00-24:00") == ((0, 1440),)
    assert parse_duration("1d 2h30m") == timedelta(hours=26, minutes=30)
    for bad in ("", "4", "h", "0m", "4x", "-1h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


CALENDARS = st.sampled_from([JAKARTA, SPLIT, NIGHTS, HOLIDAY, BERLIN_NIGHTS])
INSTANTS = st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC))
SPANS = st.timedeltas(timedelta(), timedelta(hours=120))


@settings(max_examples=300, deadline=None)
@given(CALENDARS, INSTANTS, SPANS)
def test_what_is_added_is_measured_back(cal, start, span):
    due = add_business(cal, start, span)
    assert due >= start
    assert business_between(cal, start, due) == span


@settings(max_examples=200, deadline=None)
@given(CALENDARS, INSTANTS, INSTANTS, SPANS, SPANS)
def test_later_starts_and_longer_spans_are_never_due_earlier(cal, one, two, short, long):
    one, two = sorted((one, two))
    short, long = sorted((short, long))
    assert add_business(cal, one, short) <= add_business(cal, one, long)
    assert add_business(cal, one, short) <= add_business(cal, two, short)
    assert business_between(cal, one, two) <= two - one
