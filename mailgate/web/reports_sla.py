"""The SLA part of the report page: the share of tickets within each target, by queue
and by agent.

It covers the tickets created in the chosen period (as the median first response
does), on the tickets the agent may see: a team lead asks "how did we do for the
tickets that came in last week". Of those, a target counts once it is decided: met
in time (within) or breached (missed). A target still running or paused is counted
apart, not in the share, and one that never ran (no follow-up from the customer, a
ticket solved without a reply) is not counted. The share of a week can still change
while its tickets' targets run.

"By agent" credits the first and next responses to the agent who answered first, and
the resolution to the one who solved the ticket (``reports_credit``); the assignee
where there is no such record.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Settings
from mailgate.db.models import Ticket
from mailgate.sla.tickets import TARGET_NAMES, TicketSla, tickets_sla
from mailgate.web.auth import AgentSession
from mailgate.web.reports_credit import CHUNK, first_responders, solvers
from mailgate.web.reports_data import UNASSIGNED, Period
from mailgate.web.reports_satisfaction import Share, share_of, shares_of

CREDIT = {"first_response": "first", "next_response": "first", "resolution": "solver"}


@dataclass(frozen=True)
class TargetShares:
    """One target's figures: ``Share.good`` is the tickets within it."""

    name: str
    overall: Share
    by_queue: list[Share]
    by_agent: list[Share]
    running: int  # tickets whose target is not decided yet


async def sla_report(
    session: AsyncSession, agent: AgentSession, settings: Settings, period: Period, now: datetime
) -> list[TargetShares]:
    """The figures of each target some policy sets; [] without SLA policies."""
    names = [n for n in TARGET_NAMES if any(getattr(p, n) for p in settings.sla)]
    if not names:
        return []
    start, end = period.bounds
    query = agent.visible(
        select(Ticket).where(
            Ticket.merged_into_id.is_(None),
            Ticket.spam.is_(False),
            Ticket.created_at >= start,
            Ticket.created_at < end,
        )
    )
    tickets = list(await session.scalars(query))
    slas: dict[int, TicketSla | None] = {}
    for first in range(0, len(tickets), CHUNK):
        slas.update(await tickets_sla(session, settings, tickets[first : first + CHUNK], now))
    ids = [t.id for t in tickets if slas[t.id]]
    credit = {
        "first": await first_responders(session, ids),
        "solver": await solvers(session, settings.tickets, ids),
    }
    return [_shares(name, tickets, slas, credit[CREDIT[name]]) for name in names]


def _shares(name: str, tickets: list[Ticket], slas, credit: dict[int, str]) -> TargetShares:
    queues: defaultdict[str, list[bool]] = defaultdict(list)
    agents: defaultdict[str, list[bool]] = defaultdict(list)
    running = 0
    for ticket in tickets:
        outcome = _outcome(slas[ticket.id], name)
        if outcome == "running":
            running += 1
        elif outcome is not None:
            within = outcome == "within"
            queues[ticket.queue].append(within)
            agents[credit.get(ticket.id) or ticket.assignee or UNASSIGNED].append(within)
    every = [within for found in queues.values() for within in found]
    return TargetShares(name, share_of("all", every), shares_of(queues), shares_of(agents), running)


def _outcome(sla: TicketSla | None, name: str) -> str | None:
    """within, missed, running; None where the target does not apply or never ran."""
    if sla is None or getattr(sla.targets, name) is None:
        return None
    if name in sla.due.breached:
        return "missed"
    if name in sla.due.met:
        return "within"
    return "running" if getattr(sla.due, name) else None
