"""A customer's tickets, read for the ticket page, the customer page and the API.

A customer is a ticket's ``customer_email`` (stored lower-cased), so every query
here is a range of the ``ix_tickets_customer_email`` index: a page of tickets, the
summary (counts by status, first contact) and the latest name, each one statement.
Tickets merged into another and those held back as spam are not counted: the inbox
does not list them either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import get_args
from urllib.parse import quote

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import StatusCategory, Tickets
from mailgate.db.models import Ticket
from mailgate.localtime import utc

CATEGORIES: tuple[str, ...] = get_args(StatusCategory)
NEWEST_FIRST = (Ticket.created_at.desc(), Ticket.id.desc())
# Narrows a SELECT over Ticket to what the reader may see (``AgentSession.visible``).
Visible = Callable[[Select], Select]


@dataclass(frozen=True)
class Customer:
    """Who a customer is, over the tickets one may see: their latest name, their
    first contact, and how many tickets are in each status category."""

    email: str
    name: str
    first_contact: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def customer_path(email: str) -> str:
    """The customer page of ``email`` (URL-encoded but for the ``@``)."""
    return f"/customers/{quote(email, safe='@')}"


def everything(query: Select) -> Select:
    """The ``visible`` of a reader who may see every ticket (the API's)."""
    return query


def tickets_of(email: str, visible: Visible, query: Select | None = None) -> Select:
    """``query`` (over Ticket; default the tickets) narrowed to those of ``email``
    that ``visible`` lets the reader see."""
    query = select(Ticket) if query is None else query
    return visible(query).where(
        Ticket.customer_email == email.lower(),
        Ticket.merged_into_id.is_(None),
        Ticket.spam.is_(False),
    )


async def other_tickets(
    session: AsyncSession, visible: Visible, ticket: Ticket, limit: int
) -> tuple[list[Ticket], int]:
    """Up to ``limit`` other tickets of ``ticket``'s customer, newest first, and how
    many there are."""
    others = tickets_of(ticket.customer_email, visible).where(Ticket.id != ticket.id)
    count = await session.scalar(select(func.count()).select_from(others.subquery()))
    if not count:
        return [], 0
    return list(await session.scalars(others.order_by(*NEWEST_FIRST).limit(limit))), count


async def customer_summary(
    session: AsyncSession, visible: Visible, email: str, tickets: Tickets
) -> Customer | None:
    """``email`` as a customer, over the tickets the reader may see; None if there
    are none."""
    by_status = select(Ticket.status, func.count(), func.min(Ticket.created_at))
    rows = (
        await session.execute(tickets_of(email, visible, by_status).group_by(Ticket.status))
    ).all()
    if not rows:
        return None
    counts = dict.fromkeys(CATEGORIES, 0)
    for status, count, _ in rows:
        category = tickets.category_of(status) or "open"  # a status since removed
        counts[category] += count
    name = await session.scalar(
        tickets_of(email, visible, select(Ticket.customer_name))
        .where(Ticket.customer_name != "")
        .order_by(*NEWEST_FIRST)
        .limit(1)
    )
    first = min(utc(first) for _, _, first in rows)
    return Customer(email.lower(), name or "", first, counts)
