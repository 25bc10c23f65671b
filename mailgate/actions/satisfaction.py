"""A customer's satisfaction rating of a ticket: Good or Bad, with an optional comment.

The solved mail's links lead to the page that calls ``rate``. The rating is the
customer's to change until the ticket is closed; each change is an audit event in
the customer's name. One row per ticket, changed in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import ActionError
from mailgate.config import Settings, Tickets
from mailgate.db.locks import hold
from mailgate.db.models import SatisfactionRating, Ticket
from mailgate.db.records import audit
from mailgate.webhooks.queue import queue_event

SCORES = ("good", "bad")
MAX_COMMENT_CHARS = 4000


def can_rate(tickets: Tickets, ticket: Ticket) -> bool:
    """A rating can be given or changed until the ticket is closed."""
    return tickets.category_of(ticket.status) != "closed"


async def rate(
    session: AsyncSession, settings: Settings, ticket: Ticket, score: str, comment: str
) -> SatisfactionRating:
    """Record ``score`` and ``comment`` as the customer's rating of ``ticket`` (and
    tell the webhooks, with the rating as given)."""
    tickets = settings.tickets
    if score not in SCORES:
        raise ActionError("score", f"{score!r} is not one of {', '.join(SCORES)}")
    if len(comment) > MAX_COMMENT_CHARS:
        raise ActionError("comment", f"the comment is longer than {MAX_COMMENT_CHARS} characters")
    if not can_rate(tickets, ticket):
        raise ActionError("ticket", "the ticket is closed; its rating can no longer change")
    await hold(session, [f"satisfaction:{ticket.id}"])  # two first ratings at once: one row
    rating = await session.get(SatisfactionRating, ticket.id)
    old = rating.score if rating else None
    if rating is None:
        rating = SatisfactionRating(ticket_id=ticket.id)
        session.add(rating)
    now = datetime.now(UTC)
    rating.score, rating.comment, rating.at = score, comment.strip(), now
    audit(session, ticket, ticket.customer_email, "satisfaction", now, old=old, new=score)
    given = {"score": score, "comment": rating.comment, "at": now.isoformat()}
    queue_event(session, settings.webhooks, "satisfaction.rated", ticket, data={"rating": given})
    return rating


async def ratings_of(session: AsyncSession, ids: Iterable[int]) -> dict[int, SatisfactionRating]:
    """The ratings of the tickets ``ids`` that have one, by ticket id."""
    rows = await session.scalars(
        select(SatisfactionRating).where(SatisfactionRating.ticket_id.in_(list(ids)))
    )
    return {rating.ticket_id: rating for rating in rows}
