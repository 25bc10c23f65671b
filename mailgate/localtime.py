"""Local time: the configured IANA zones, and how an instant reads in one.

Everything is stored and computed in UTC; a zone only matters where a person reads
a time (pages, mail), where a day begins (ticket codes, report days), and where
business hours lie (calendars).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone_named(name: str) -> ZoneInfo:
    """The zone called ``name`` (``"Asia/Jakarta"``); ValueError for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not a known IANA time zone") from exc


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 with its UTC offset, as the API and webhooks show times; None stays."""
    return utc(moment).isoformat() if moment is not None else None


def local(moment: datetime, zone: ZoneInfo) -> datetime:
    return utc(moment).astimezone(zone)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day ``moment`` falls on in ``zone``."""
    return local(moment, zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The instant ``day`` begins in ``zone``, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def format_local(moment: datetime, zone: ZoneInfo) -> str:
    """``"2026-07-25 03:00 WIB"``: the time in ``zone`` with its abbreviation."""
    return local(moment, zone).strftime("%Y-%m-%d %H:%M %Z")
