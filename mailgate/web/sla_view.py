"""How pages show a ticket's SLA: the ticket page's panel and the board card's line.

Times left and overdue are wall-clock time to or since the due time, to the nearest
minute: the due time itself already lies in business hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Settings
from mailgate.db.models import Ticket
from mailgate.sla.states import TargetState, nearest, target_states
from mailgate.sla.tickets import TicketSla, tickets_sla
from mailgate.web.formats import duration

LABELS = {
    "first_response": "First response",
    "next_response": "Next response",
    "resolution": "Resolution",
}


@dataclass(frozen=True)
class Row:
    label: str
    state: str
    due: datetime | None  # shown for targets not met yet
    text: str  # "Running: 3h left"; the page adds the time a target was met
    met: datetime | None = None


@dataclass(frozen=True)
class CardLine:
    text: str  # "First response: 3h left", "Resolution: overdue 2h"
    overdue: bool


@dataclass(frozen=True)
class Panel:
    policy: str
    rows: list[Row]


def panel(sla: TicketSla | None, category: str, now: datetime) -> Panel | None:
    """The ticket page's SLA panel; None where no policy applies."""
    if sla is None:
        return None
    rows = [
        Row(
            LABELS[s.name],
            s.state,
            s.due if s.met is None else None,
            _text(s, category, now),
            s.met,
        )
        for s in target_states(sla, category, now)
    ]
    return Panel(sla.policy, rows)


def card_line(sla: TicketSla | None, category: str, now: datetime) -> CardLine | None:
    """Time left or overdue for the target due first; None if none is due."""
    found = nearest(target_states(sla, category, now)) if sla else None
    if found is None:
        return None
    left = found.left(now)
    if left <= timedelta():
        return CardLine(f"{LABELS[found.name]}: overdue {_minutes(-left)}", True)
    paused = "paused, " if found.state == "paused" else ""
    return CardLine(f"{LABELS[found.name]}: {paused}{_minutes(left)} left", False)


async def card_lines(
    session: AsyncSession, settings: Settings, tickets: list[Ticket], now: datetime
) -> dict[int, CardLine | None]:
    """The SLA line of each board card, for all the cards at once."""
    slas = await tickets_sla(session, settings, tickets, now)
    category = settings.tickets.category_of
    return {t.id: card_line(slas[t.id], category(t.status) or "", now) for t in tickets}


def _text(state: TargetState, category: str, now: datetime) -> str:
    left = state.left(now)
    if state.state == "met":
        return "Met"
    if state.state == "breached":
        if state.met:
            return "Breached: met late"
        return f"Breached: overdue by {_minutes(-left)}" if left is not None else "Breached"
    if state.state == "running":
        return f"Running: {_minutes(left)} left"
    if state.state == "paused":
        return f"Paused while pending: {_minutes(left)} left"
    if category in ("solved", "closed"):
        return "Not running: the ticket is solved"
    return "Not running: no customer message waiting"


def _minutes(span: timedelta) -> str:
    """``span`` to the nearest minute, as the pages show durations."""
    return duration(timedelta(minutes=round(span.total_seconds() / 60)))
