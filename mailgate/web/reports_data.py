"""The numbers of the report page, over the tickets an agent may see.

Open tickets (by status and queue) and those waiting on the customer are counted
now; solved per day and the median first-response and resolution times cover the
chosen period: first responses of tickets created in it, resolutions of tickets
solved in it. "By agent" credits the agent who answered first and the one who solved
the ticket (``reports_credit``), not whoever has it now. Days are the team's days, in
``[tickets] timezone``: the period's bounds are that zone's midnights, and each solved
ticket counts on its local day (bucketed here, the same on every database).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Tickets
from mailgate.db.models import Ticket
from mailgate.localtime import day_start, local_day, utc
from mailgate.numbers import whole_number
from mailgate.web.auth import AgentSession
from mailgate.web.reports_credit import first_responders, solvers

DEFAULT_DAYS = 30
MAX_DAYS = 366
# Dates a period may name: every day in between has a day after it and a year back.
EARLIEST, LATEST = date(1970, 1, 1), date(9998, 12, 31)
UNASSIGNED = "(unassigned)"


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive
    zone: ZoneInfo

    @classmethod
    def from_query(cls, query, now: datetime, zone: ZoneInfo) -> Period:
        """``from``/``to`` as YYYY-MM-DD, or ``days`` back from today; else 30 days.

        Raises ValueError (with a message for the person) for a value it cannot use."""
        today = local_day(now, zone)
        end = _day(query["to"]) if query.get("to") else today
        if query.get("from"):
            start = _day(query["from"])
        else:
            days = whole_number(query.get("days", "").strip() or str(DEFAULT_DAYS), MAX_DAYS)
            if not days:
                raise ValueError(f"days is a whole number from 1 to {MAX_DAYS}")
            start = end - timedelta(days=days - 1)
        start = max(min(start, end), end - timedelta(days=MAX_DAYS - 1))
        return cls(start, end, zone)

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """From the first day's local midnight to the midnight after the last day."""
        return day_start(self.start, self.zone), day_start(self.end + timedelta(days=1), self.zone)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def _day(text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        day = None
    if day is None or not EARLIEST <= day <= LATEST:
        raise ValueError(f"dates are written YYYY-MM-DD, from {EARLIEST} to {LATEST}")
    return day


@dataclass(frozen=True)
class Median:
    name: str
    seconds: float
    tickets: int


@dataclass(frozen=True)
class Report:
    period: Period
    open_counts: dict[tuple[str, str], int]  # (status, queue) -> tickets
    waiting: dict[str, int]  # queue -> tickets in a "pending" status
    solved_per_day: list[tuple[date, int]]
    first_response: dict[str, list[Median]]  # "queue" | "agent" -> medians
    resolution: dict[str, list[Median]]


async def build_report(
    session: AsyncSession, agent: AgentSession, tickets: Tickets, period: Period
) -> Report:
    open_counts = await _open_counts(session, agent, tickets)
    pending = {s.name for s in tickets.statuses if s.category == "pending"}
    waiting: Counter[str] = Counter()
    for (status, queue), count in open_counts.items():
        if status in pending:
            waiting[queue] += count
    start, end = period.bounds
    created = await _rows(session, agent, Ticket.created_at, start, end)
    solved = await _rows(session, agent, Ticket.solved_at, start, end)
    per_day = Counter(local_day(t.solved_at, period.zone) for t in solved)
    return Report(
        period=period,
        open_counts=open_counts,
        waiting=dict(waiting),
        solved_per_day=[(day, per_day.get(day, 0)) for day in period.days()],
        first_response=_medians(
            [t for t in created if t.first_response_at],
            lambda t: t.first_response_at,
            await first_responders(session, [t.id for t in created]),
        ),
        resolution=_medians(
            solved, lambda t: t.solved_at, await solvers(session, tickets, [t.id for t in solved])
        ),
    )


async def _open_counts(session, agent: AgentSession, tickets: Tickets) -> dict:
    active = [s.name for s in tickets.statuses if s.category in ("new", "open", "pending")]
    query = (
        agent.visible(select(Ticket.status, Ticket.queue, func.count()))
        .where(Ticket.merged_into_id.is_(None), Ticket.status.in_(active))
        .group_by(Ticket.status, Ticket.queue)
    )
    return {(status, queue): count for status, queue, count in await session.execute(query)}


async def _rows(session, agent: AgentSession, moment, start: datetime, end: datetime):
    query = agent.visible(
        select(Ticket).where(Ticket.merged_into_id.is_(None), moment >= start, moment < end)
    )
    return list(await session.scalars(query))


def _medians(rows: list[Ticket], finished, credit: dict[int, str]) -> dict[str, list[Median]]:
    """Median time from creation to ``finished(ticket)``, by queue and by the agent
    ``credit`` names for the ticket (its assignee if none)."""
    groups: dict[str, defaultdict[str, list[float]]] = {
        "queue": defaultdict(list),
        "agent": defaultdict(list),
    }
    for ticket in rows:
        seconds = (utc(finished(ticket)) - utc(ticket.created_at)).total_seconds()
        groups["queue"][ticket.queue].append(seconds)
        groups["agent"][credit.get(ticket.id) or ticket.assignee or UNASSIGNED].append(seconds)
    return {
        by: [
            Median(name, statistics.median(values), len(values))
            for name, values in sorted(found.items())
        ]
        for by, found in groups.items()
    }
