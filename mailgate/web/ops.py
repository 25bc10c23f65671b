"""The numbers behind ``/status`` and ``/metrics``, read from the database in one go.

Everything here is derived from rows the daemon keeps anyway (journal, tickets,
outbox, delivery attempts), so every node of a cluster reports the same totals and
a restart loses no counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailgate.db.models import DeliveryAttempt, JournalEntry, Message, Node, OutboxItem, Ticket

# Seconds from a message's arrival in the journal to the end of its processing.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
ACK_DONE = ("sent", "captured")


@dataclass(frozen=True)
class Latency:
    buckets: tuple[tuple[float, int], ...]  # (upper bound, entries at or under it)
    count: int
    total_seconds: float


@dataclass(frozen=True)
class Snapshot:
    journal: dict[str, int]  # state -> entries
    received: dict[str, int]  # source -> entries
    tickets: int
    outbox: dict[str, int]  # state -> messages
    acks_sent: int
    delivery_failures: dict[str, int]  # failed delivery attempts by outcome
    loop_failures: dict[str, int]  # failed passes of the workers, by role
    latency: Latency
    oldest_pending_at: datetime | None
    spam_checks: dict[str, int]  # stored customer messages by spam check result

    @property
    def quarantined(self) -> int:
        return self.journal.get("quarantined", 0)

    @property
    def failed_attempts(self) -> int:
        return sum(self.delivery_failures.values())

    @property
    def outbox_backlog(self) -> int:
        return self.outbox.get("queued", 0) + self.outbox.get("sending", 0)


async def take_snapshot(engine: AsyncEngine) -> Snapshot:
    async with AsyncSession(engine) as session:
        journal = await _grouped(session, JournalEntry.state)
        received = await _grouped(session, JournalEntry.source)
        # Kinds and states in one statement, so the backlog and the acknowledgements
        # sent are counted at the same moment (delivery runs in another process).
        rows = await session.execute(
            select(OutboxItem.kind, OutboxItem.state, func.count()).group_by(
                OutboxItem.kind, OutboxItem.state
            )
        )
        outbox: dict[str, int] = {}
        acks = 0
        for kind, state, count in rows:
            outbox[state] = outbox.get(state, 0) + count
            acks += count if kind == "acknowledgement" and state in ACK_DONE else 0
        tickets = await session.scalar(select(func.count()).select_from(Ticket))
        failures = await session.execute(
            select(func.coalesce(DeliveryAttempt.outcome, "temporary"), func.count())
            .where(DeliveryAttempt.ok.is_(False))
            .group_by(DeliveryAttempt.outcome)
        )
        loop_failures = await session.execute(
            select(Node.role, func.sum(Node.failures_total)).group_by(Node.role)
        )
        oldest = await session.scalar(
            select(func.min(JournalEntry.received_at)).where(JournalEntry.state == "pending")
        )
        latency = await _latency(session)
        spam_checks = await _grouped(session, Message.spam_check, Message.spam_check.is_not(None))
    return Snapshot(
        journal,
        received,
        tickets,
        outbox,
        acks,
        _summed(failures),
        _summed(loop_failures),
        latency,
        oldest,
        spam_checks,
    )


def _summed(rows) -> dict[str, int]:
    totals: dict[str, int] = {}
    for key, count in rows:
        totals[key] = totals.get(key, 0) + int(count or 0)
    return totals


async def _grouped(session: AsyncSession, column, *where) -> dict[str, int]:
    rows = await session.execute(select(column, func.count()).where(*where).group_by(column))
    return {key: count for key, count in rows}


async def _latency(session: AsyncSession) -> Latency:
    seconds = _seconds_between(session, JournalEntry.received_at, JournalEntry.processed_at)
    columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in LATENCY_BUCKETS]
    row = (
        await session.execute(
            select(func.count(), func.sum(seconds), *columns).where(
                JournalEntry.state == "done", JournalEntry.processed_at.is_not(None)
            )
        )
    ).one()
    count, total, *under = row
    buckets = tuple(zip(LATENCY_BUCKETS, (int(n or 0) for n in under), strict=True))
    return Latency(buckets, int(count or 0), float(total or 0.0))


def _seconds_between(session: AsyncSession, start, end):
    if session.bind.dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0
