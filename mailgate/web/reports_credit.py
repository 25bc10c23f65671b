"""Whom the report credits: the agent who answered a ticket first, and who solved it.

The assignee is who has a ticket now, not who did the work: a ticket answered by one
agent, handed to another and solved by them credits the first with the first
response and the second with the resolution. The first answer is the ticket's
earliest agent reply; the solver is the actor of its latest status change into a
solved status (an API client or the system, if one of them solved it). A ticket
with no such record is credited to its assignee, by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Tickets
from mailgate.db.models import AuditEvent, Message

CHUNK = 500  # ticket ids per query: well under every backend's parameter limit


async def first_responders(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    """Ticket id -> the address of the agent whose reply was its first."""
    found: dict[int, str] = {}
    for chunk in _chunks(ids):
        first = (
            select(func.min(Message.id))
            .where(Message.ticket_id.in_(chunk), Message.kind == "agent")
            .group_by(Message.ticket_id)
        )
        rows = await session.execute(
            select(Message.ticket_id, Message.from_email).where(Message.id.in_(first))
        )
        found.update({ticket_id: email.lower() for ticket_id, email in rows})
    return found


async def solvers(session: AsyncSession, tickets: Tickets, ids: Iterable[int]) -> dict[int, str]:
    """Ticket id -> who last moved it into a solved status."""
    solved = {s.name.lower() for s in tickets.statuses if s.category == "solved"}
    found: dict[int, str] = {}
    for chunk in _chunks(ids):
        rows = await session.execute(
            select(AuditEvent.ticket_id, AuditEvent.actor, AuditEvent.data)
            .where(AuditEvent.ticket_id.in_(chunk), AuditEvent.action == "status")
            .order_by(AuditEvent.id)
        )
        for ticket_id, actor, data in rows:
            if str(data.get("new", "")).lower() in solved:
                found[ticket_id] = actor.lower()
    return found


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    every = sorted(set(ids))
    for start in range(0, len(every), CHUNK):
        yield every[start : start + CHUNK]
