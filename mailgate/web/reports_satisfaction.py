"""The satisfaction part of the report page: the share of Good ratings by queue and
by agent, and the comments customers wrote.

It covers the ratings given (or last changed) in the chosen period, on the tickets
the agent may see. "By agent" credits the agent who solved the ticket, as the
resolution times do (``reports_credit``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Tickets
from mailgate.db.models import SatisfactionRating, Ticket
from mailgate.web.auth import AgentSession
from mailgate.web.reports_credit import solvers
from mailgate.web.reports_data import UNASSIGNED, Period

MAX_COMMENTS = 100


@dataclass(frozen=True)
class Share:
    name: str
    good: int
    total: int

    @property
    def percent(self) -> float:
        return 100 * self.good / self.total if self.total else 0.0


@dataclass(frozen=True)
class Comment:
    code: str
    agent: str
    score: str
    text: str
    at: datetime


@dataclass(frozen=True)
class Satisfaction:
    overall: Share
    by_queue: list[Share]
    by_agent: list[Share]
    comments: list[Comment]  # newest first, at most MAX_COMMENTS


async def satisfaction_report(
    session: AsyncSession, agent: AgentSession, tickets: Tickets, period: Period
) -> Satisfaction:
    start, end = period.bounds
    query = agent.visible(
        select(Ticket, SatisfactionRating)
        .join(SatisfactionRating, SatisfactionRating.ticket_id == Ticket.id)
        .where(SatisfactionRating.at >= start, SatisfactionRating.at < end)
        .order_by(SatisfactionRating.at.desc(), Ticket.id.desc())
    )
    rows = (await session.execute(query)).tuples().all()
    credit = await solvers(session, tickets, [ticket.id for ticket, _ in rows])
    queues: defaultdict[str, list[bool]] = defaultdict(list)
    agents: defaultdict[str, list[bool]] = defaultdict(list)
    comments = []
    for ticket, rating in rows:
        solver = credit.get(ticket.id) or ticket.assignee or UNASSIGNED
        queues[ticket.queue].append(rating.score == "good")
        agents[solver].append(rating.score == "good")
        if rating.comment:
            comments.append(Comment(ticket.code, solver, rating.score, rating.comment, rating.at))
    every = [score for scores in queues.values() for score in scores]
    return Satisfaction(
        share_of("all", every), shares_of(queues), shares_of(agents), comments[:MAX_COMMENTS]
    )


def shares_of(groups: dict[str, list[bool]]) -> list[Share]:
    """A share per group name (sorted), of the True values in its list."""
    return [share_of(name, scores) for name, scores in sorted(groups.items())]


def share_of(name: str, scores: list[bool]) -> Share:
    return Share(name, sum(scores), len(scores))
