"""Counting in the database, with an engine of the suite's own (never the daemon's).

Tickets are counted by the marker in their subject; work is "waiting" while a journal
entry is pending or claimed, or an outgoing mail queued or claimed; "claimed" items
are those a process holds at an instant (a crash strands them until taken over).
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.db.models import JournalEntry, OutboxItem, Ticket
from tests.faults.load import SUBJECT

JOURNAL_WAITING = ("pending", "processing")
OUTBOX_WAITING = ("queued", "sending")


class Census:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def tickets(self, tag: str) -> Counter[str]:
        """Marker -> number of tickets whose subject carries it, for markers of ``tag``."""
        prefix = f"{SUBJECT} "
        query = select(Ticket.subject).where(Ticket.subject.like(f"{prefix}{tag}-%"))
        async with self.engine.connect() as connection:
            subjects = (await connection.scalars(query)).all()
        return Counter(subject.removeprefix(prefix) for subject in subjects)

    async def waiting(self) -> int:
        journal = select(func.count()).where(JournalEntry.state.in_(JOURNAL_WAITING))
        outbox = select(func.count()).where(OutboxItem.state.in_(OUTBOX_WAITING))
        async with self.engine.connect() as connection:
            return await connection.scalar(journal) + await connection.scalar(outbox)

    async def claimed(self) -> set[tuple[str, int]]:
        """(``journal``|``outbox``, id) of every item claimed by some process now."""
        journal = select(JournalEntry.id).where(JournalEntry.state == "processing")
        outbox = select(OutboxItem.id).where(OutboxItem.state == "sending")
        async with self.engine.connect() as connection:
            held = {("journal", id_) for id_ in await connection.scalars(journal)}
            return held | {("outbox", id_) for id_ in await connection.scalars(outbox)}
