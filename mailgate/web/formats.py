"""How pages show times, durations and sizes (Jinja2 filters).

``when`` shows a time in the page's ``zone`` (the signed-in agent's, else the team's:
see ``mailgate.web.pages``) with the zone's abbreviation, ``2026-07-25 03:00 WIB``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import jinja2

from mailgate.localtime import format_local, utc
from mailgate.web.customer_history import customer_path

UTC_ZONE = ZoneInfo("UTC")


@jinja2.pass_context
def when(context: jinja2.runtime.Context, moment: datetime | None) -> str:
    return format_local(moment, context.get("zone") or UTC_ZONE) if moment else "—"


def duration(span: timedelta | float | None) -> str:
    """``timedelta(hours=26)`` -> ``"1d 2h"``; short, for tables and charts."""
    if span is None:
        return "—"
    seconds = int(span.total_seconds() if isinstance(span, timedelta) else span)
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else "<1m"


def age(moment: datetime | None) -> str:
    """How long ago: ``"5m"``, ``"3h"``, ``"2d"``."""
    if moment is None:
        return "—"
    span = datetime.now(UTC) - utc(moment)
    return duration(timedelta(seconds=(span.total_seconds() // 60) * 60 or 1))


def size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


FILTERS = {
    "when": when,
    "duration": duration,
    "age": age,
    "size": size,
    "customer_path": customer_path,
}
