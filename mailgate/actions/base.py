"""What every ticket action shares: its context, its errors, and mail it queues.

The caller owns the transaction: an action adds rows and outgoing mail to the
session it is given, and the caller commits (then wakes the delivery worker).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Route
from mailgate.db.bulk import add_row
from mailgate.db.models import Message, OutboxItem, ThreadRef, Ticket
from mailgate.outbox.compose import Composer, InReplyTo, Outgoing
from mailgate.outbox.queue import enqueue_outgoing
from mailgate.runtime import RuntimeConfig

# Outgoing mail the customer and the CC participants see, in their thread.
CUSTOMER_FACING = ("acknowledgement", "agent_reply", "solved")


@dataclass(frozen=True)
class ActionContext:
    runtime: RuntimeConfig
    composer: Composer


class ActionError(ValueError):
    """An unknown status/priority/agent/tag value etc.; .field and .message (human readable)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Unset(enum.Enum):
    UNSET = "UNSET"


UNSET = Unset.UNSET  # "assignee not given", as opposed to None: "nobody"


def route_of(runtime: RuntimeConfig, ticket: Ticket) -> Route:
    """The route a ticket came in by; a stand-in if it was removed from the config."""
    route = runtime.routes.match(ticket.route_address)
    if route is not None:
        return route
    return Route(address=ticket.route_address, queue=ticket.queue, locale=ticket.locale)


def agent_name(runtime: RuntimeConfig, email: str) -> str:
    for agent in runtime.settings.agents:
        if agent.email.lower() == email.lower():
            return agent.name
    return ""


def known_agent(runtime: RuntimeConfig, email: str) -> str:
    """``email`` lower-cased, if it is a configured agent; else ActionError."""
    if email.lower() not in runtime.agent_emails():
        raise ActionError("agent", f"{email!r} is not a configured agent")
    return email.lower()


def queue_mail(session: AsyncSession, ticket: Ticket, outgoing: Outgoing) -> None:
    """Put ``outgoing`` in the outbox; a reply to it threads back to ``ticket``."""
    enqueue_outgoing(session, outgoing, ticket)
    add_row(session, ThreadRef, message_id=outgoing.message_id, ticket=ticket)


async def customer_thread(session: AsyncSession, ticket: Ticket) -> InReplyTo:
    """The thread the customer sees: their own mail and ours to them, oldest first.

    Mail to the customer answers their latest message and references the rest.
    """
    customer = await session.execute(
        select(Message.created_at, Message.message_id).where(
            Message.ticket_id == ticket.id, Message.kind == "customer"
        )
    )
    ours = await session.execute(
        select(OutboxItem.created_at, OutboxItem.message_id).where(
            OutboxItem.ticket_id == ticket.id, OutboxItem.kind.in_(CUSTOMER_FACING)
        )
    )
    theirs = sorted(tuple(row) for row in customer)
    every = [message_id for _, message_id in sorted([*theirs, *(tuple(row) for row in ours)])]
    parent = theirs[-1][1] if theirs else (every[-1] if every else f"<{ticket.code}@mailgate>")
    return InReplyTo(parent, tuple(m for m in every if m != parent))
