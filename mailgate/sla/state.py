"""The SLA state stored on each ticket, so that lists sort and filter by it at scale.

``tickets.sla_due_at`` is the earliest due time of a target not met yet, while the
ticket's clock runs (new or open); pending, solved and closed tickets have none, as
their clock is not running, and neither do tickets held back as spam. ``sla_breached``
lists the targets broken so far.

Why the timer keeps it, not every write: a ticket changes in many places (the
pipeline, agents' mail, the web and the API, merges, splits, bounces), and a place
that forgot to update the state would leave it wrong with nothing to notice. Every one
of them does set ``updated_at``, which the inbox's "updated" order relies on already.
So the state records the ``updated_at`` it was worked out from (``sla_seen_at``), and
the timer works it out again for every ticket where the two differ: a write anywhere,
by any node, is caught at the timer's next pass. The update is conditional on
``updated_at`` being unchanged, so a write that lands meanwhile leaves the ticket
stale for the next pass rather than being overwritten. A partial index holds just
the stale tickets, so a pass costs what changed, not the size of the table. A changed
SLA config (policies, calendars, routes, statuses) marks every unsolved ticket stale.

Time passing changes nothing here but ``sla_breached``: "overdue" is ``sla_due_at``
before now, asked at query time. The timer's notice pass rewrites the state of the
tickets whose due time has come, which brings ``sla_breached`` along.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailgate.config import Settings
from mailgate.db.models import SLA_STALE, Ticket
from mailgate.db.session import sessions
from mailgate.sla.tickets import TicketSla, tickets_sla

RUNNING = ("new", "open")  # the status categories in which the clock runs
BATCH = 500
# Each ticket's state, written only if the ticket did not change since it was read.
_STORE = (
    update(Ticket)
    .where(Ticket.id == bindparam("b_id"), Ticket.updated_at == bindparam("b_seen"))
    .values(
        sla_due_at=bindparam("b_due"),
        sla_breached=bindparam("b_breached"),
        sla_seen_at=bindparam("b_seen"),
    )
)


def clock_runs(settings: Settings, ticket: Ticket) -> bool:
    """New or open, and not held back as spam (no agent has seen it: no notices)."""
    return settings.tickets.category_of(ticket.status) in RUNNING and not ticket.spam


def due_at(settings: Settings, ticket: Ticket, sla: TicketSla | None) -> datetime | None:
    """The earliest due time of a target not met yet; None while the clock stops."""
    if sla is None or not clock_runs(settings, ticket):
        return None
    times = [sla.due.first_response, sla.due.next_response, sla.due.resolution]
    return min((at for at in times if at is not None), default=None)


async def store(
    session: AsyncSession, settings: Settings, tickets: list[Ticket], now: datetime
) -> dict[int, TicketSla | None]:
    """Work out and store the state of ``tickets`` (each only if it did not change
    since it was read); returns their SLA state."""
    slas = await tickets_sla(session, settings, tickets, now)
    if tickets:  # one statement for the batch, not one per ticket
        params = [_state(settings, ticket, slas[ticket.id]) for ticket in tickets]
        await (await session.connection()).execute(_STORE, params)
    return slas


def _state(settings: Settings, ticket: Ticket, sla: TicketSla | None) -> dict:
    """Bind values of ``_STORE`` for ``ticket``."""
    return {
        "b_id": ticket.id,
        "b_seen": ticket.updated_at,
        "b_due": due_at(settings, ticket, sla),
        "b_breached": ",".join(sla.due.breached) if sla else "",
    }


def stale_tickets():
    """Up to ``BATCH`` tickets whose state is stale; the condition word for word the
    partial index's, so both databases read the index, not the table."""
    return select(Ticket).where(text(SLA_STALE)).order_by(Ticket.id).limit(BATCH)


async def refresh_changed(engine: AsyncEngine, settings: Settings, now: datetime) -> int:
    """Store the state of up to ``BATCH`` tickets changed since it was worked out;
    returns how many."""
    async with sessions(engine)() as session:
        tickets = list(await session.scalars(stale_tickets()))
        if tickets:
            await store(session, settings, tickets, now)
            await session.commit()
    return len(tickets)


async def forget_unsolved(engine: AsyncEngine, settings: Settings) -> None:
    """Mark every ticket not solved or closed stale (the SLA config changed)."""
    unsolved = [s.name for s in settings.tickets.statuses if s.category in (*RUNNING, "pending")]
    async with engine.begin() as connection:
        await connection.execute(
            update(Ticket)
            .where(or_(Ticket.status.in_(unsolved), Ticket.sla_due_at.is_not(None)))
            .values(sla_seen_at=None)
        )
