"""Everything a ticket page shows, read in a handful of queries.

The timeline interleaves the messages (customer mail, agent replies, internal
notes) with the audit events, oldest first, each kind drawn differently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.satisfaction import ratings_of
from mailgate.config import Settings
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
from mailgate.sla.tickets import tickets_sla
from mailgate.web.auth import AgentSession
from mailgate.web.customer_history import other_tickets
from mailgate.web.events import SHOWN_AS_MESSAGES, EventLine, describe
from mailgate.web.listing import tags_by_ticket
from mailgate.web.names import namer
from mailgate.web.sla_view import Panel, panel

OTHERS_SHOWN = 10  # of the customer's other tickets; their page lists them all


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
    sla: Panel | None = None  # None where no SLA policy applies
    # The customer's other tickets the agent may see, newest first, and how many.
    others: list[Ticket] = field(default_factory=list)
    other_count: int = 0


async def find_ticket(session: AsyncSession, agent: AgentSession, code: str) -> Ticket:
    """The ticket ``code`` if ``agent`` may see it; 404 otherwise (never 403: a code
    that is not yours does not exist, as far as you can tell)."""
    ticket = await session.scalar(select(Ticket).where(Ticket.code == code.upper()))
    if ticket is None or not agent.can_see(ticket):
        raise web.HTTPNotFound(text=f"No ticket {code.upper()} here.")
    return ticket


async def load_view(
    session: AsyncSession, ticket: Ticket, agent: AgentSession, settings: Settings, now: datetime
) -> TicketView:
    """The ticket as ``agent`` sees it (they see only the customer's tickets they may),
    agents' addresses in events shown by their names."""
    name = namer(settings)
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
    sla = (await tickets_sla(session, settings, [ticket], now))[ticket.id]
    category = settings.tickets.category_of(ticket.status) or ""
    others, other_count = await other_tickets(session, agent.visible, ticket, OTHERS_SHOWN)
    return TicketView(
        ticket,
        tags.get(ticket.id, []),
        list(cc),
        timeline,
        list(failed),
        len(messages),
        ratings.get(ticket.id),
        panel(sla, category, now),
        others,
        other_count,
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
