"""Who has a ticket open, and who is typing on it: rows every node reads and writes.

The node serving a ticket page's live stream beats for it (``seen_at``); saving a
draft marks its author as typing. A row counts while its heartbeat is younger than
``[web] presence_timeout_seconds``, so a node that dies leaves no ghosts for long.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailgate.db.models import Presence
from mailgate.db.session import sessions
from mailgate.db.upsert import upsert
from mailgate.localtime import utc

TYPING_SECONDS = 6.0  # "typing" shows this long after the last keystroke saved


@dataclass(frozen=True)
class Here:
    """An agent on a ticket: ``typing`` is "reply", "note" or ""."""

    agent: str
    typing: str


async def beat(engine: AsyncEngine, pairs: Iterable[tuple[int, str]], now: datetime) -> None:
    """Heartbeats for (ticket id, agent) pairs viewed through this node."""
    async with sessions(engine).begin() as session:
        for ticket_id, agent in sorted(set(pairs)):
            values = {"ticket_id": ticket_id, "agent": agent, "seen_at": now, "typing": ""}
            await upsert(session, Presence, values, {"seen_at": now})


async def mark_typing(
    session: AsyncSession, ticket_id: int, agent: str, kind: str, now: datetime
) -> None:
    values = {"ticket_id": ticket_id, "agent": agent, "seen_at": now}
    typing = {"typing": kind, "typing_at": now}
    await upsert(session, Presence, {**values, **typing}, {"seen_at": now, **typing})


async def leave(engine: AsyncEngine, ticket_id: int, agent: str) -> None:
    """The agent closed their last page of the ticket on this node."""
    async with sessions(engine).begin() as session:
        await session.execute(
            delete(Presence).where(Presence.ticket_id == ticket_id, Presence.agent == agent)
        )


async def present(
    engine: AsyncEngine, ticket_ids: Iterable[int], now: datetime, timeout_seconds: float
) -> dict[int, frozenset[Here]]:
    """The agents on each of ``ticket_ids`` as of ``now``."""
    wanted = sorted(set(ticket_ids))
    if not wanted:
        return {}
    typing_since = now - timedelta(seconds=TYPING_SECONDS)
    async with sessions(engine)() as session:
        rows = await session.scalars(
            select(Presence).where(
                and_(
                    Presence.ticket_id.in_(wanted),
                    Presence.seen_at > now - timedelta(seconds=timeout_seconds),
                )
            )
        )
        found: dict[int, set[Here]] = {}
        for row in rows:
            typing = row.typing if row.typing_at and utc(row.typing_at) > typing_since else ""
            found.setdefault(row.ticket_id, set()).add(Here(row.agent, typing))
    return {ticket_id: frozenset(found.get(ticket_id, ())) for ticket_id in wanted}
