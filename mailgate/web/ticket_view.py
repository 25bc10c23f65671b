"""Everything a ticket page shows, read in a handful of queries.

The timeline interleaves the messages (customer mail, agent replies, internal
notes) with the audit events, oldest first, each kind drawn differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.satisfaction import ratings_of
from mailgate.db.models import (
    Attachment,
    AuditEvent,
    Message,
    OutboxItem,
    Participant,
    SatisfactionRating,
    Ticket,
)
from mailgate.localtime import utc
from mailgate.web.auth import AgentSession
from mailgate.web.events import SHOWN_AS_MESSAGES, EventLine, describe
from mailgate.web.listing import tags_by_ticket


@dataclass(frozen=True)
class Entry:
    """One item of the timeline: a message with its attachments, or an event."""

    at: datetime
    message: Message | None = None
    attachments: list[Attachment] = field(default_factory=list)
    event: EventLine | None = None

    @property
    def kind(self) -> str:
        return self.message.kind if self.message else "event"


@dataclass(frozen=True)
class TicketView:
    ticket: Ticket
    tags: list[str]
    cc: list[Participant]
    timeline: list[Entry]
    failed: list[OutboxItem]  # outgoing mail that could not be delivered
    message_count: int
    satisfaction: SatisfactionRating | None = None  # the customer's rating, if given


async def find_ticket(session: AsyncSession, agent: AgentSession, code: str) -> Ticket:
    """The ticket ``code`` if ``agent`` may see it; 404 otherwise (never 403: a code
    that is not yours does not exist, as far as you can tell)."""
    ticket = await session.scalar(select(Ticket).where(Ticket.code == code.upper()))
    if ticket is None or not agent.can_see(ticket):
        raise web.HTTPNotFound(text=f"No ticket {code.upper()} here.")
    return ticket


async def load_view(
    session: AsyncSession, ticket: Ticket, name: Callable[[str], str] = str
) -> TicketView:
    """The ticket's page; ``name`` shows agents' addresses in events as names."""
    messages = await _messages(session, ticket)
    events = await session.scalars(
        select(AuditEvent)
        .where(AuditEvent.ticket_id == ticket.id, AuditEvent.action.not_in(SHOWN_AS_MESSAGES))
        .order_by(AuditEvent.id)
    )
    timeline = messages + [Entry(utc(e.at), event=describe(e, name)) for e in events]
    timeline.sort(key=lambda entry: (entry.at, entry.message is None))
    cc = await session.scalars(
        select(Participant)
        .where(Participant.ticket_id == ticket.id, Participant.role != "customer")
        .order_by(Participant.email)
    )
    failed = await session.scalars(
        select(OutboxItem)
        .where(OutboxItem.ticket_id == ticket.id, OutboxItem.state == "failed")
        .order_by(OutboxItem.id)
    )
    tags = await tags_by_ticket(session, [ticket.id])
    ratings = await ratings_of(session, [ticket.id])
    return TicketView(
        ticket,
        tags.get(ticket.id, []),
        list(cc),
        timeline,
        list(failed),
        len(messages),
        ratings.get(ticket.id),
    )


async def _messages(session: AsyncSession, ticket: Ticket) -> list[Entry]:
    """The ticket's messages in order, each with its attachments."""
    messages = list(
        await session.scalars(
            select(Message)
            .where(Message.ticket_id == ticket.id)
            .order_by(Message.created_at, Message.id)
        )
    )
    attachments: dict[int, list[Attachment]] = {}
    for item in await session.scalars(
        select(Attachment)
        .where(Attachment.message_id.in_([m.id for m in messages]))
        .order_by(Attachment.id)
    ):
        attachments.setdefault(item.message_id, []).append(item)
    return [Entry(utc(m.created_at), m, attachments.get(m.id, [])) for m in messages]
