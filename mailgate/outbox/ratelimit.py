"""Rate limits, counted in the database so every node agrees.

Each limit is a key (``ack:carol@client.test``, ``notify:alice@example.test``,
``login:bob@example.test``) and ``(count, seconds)``: at most ``count`` events under
the key in ``seconds``. The keys are held (``db.locks.hold``) from the count to the
commit, so concurrent requests on any node are counted one after the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.bulk import add_row
from mailgate.db.locks import hold
from mailgate.db.models import RateEvent
from mailgate.outbox.queue import suppressed

Limit = tuple[str, tuple[int, int]]  # key, (count, seconds)


def ack_key(email: str) -> str:
    """Acknowledgements to one sender."""
    return f"ack:{email}"


def notify_key(agent: str, code: str = "") -> str:
    """Notifications to one agent (about one ticket, with ``code``)."""
    return f"notify:{agent}:{code}" if code else f"notify:{agent}"


async def hold_keys(session: AsyncSession, keys: Iterable[str]) -> None:
    """Hold ``keys`` (``db.locks.hold``) until the session's transaction ends.

    A notification about a ticket is always counted together with the agent's own
    key (``notify_agents`` takes both), so one lock per agent guards both: a batch
    about a hundred tickets takes a lock per agent, not a hundred per agent.
    """
    await hold(session, {_lock_key(key) for key in keys})


def _lock_key(key: str) -> str:
    kind, _, rest = key.partition(":")
    return f"{kind}:{rest.partition(':')[0]}" if kind == "notify" else key


async def take(session: AsyncSession, limits: Sequence[Limit], now: datetime) -> str | None:
    """Count one event under every key, if all of them are below their limit.

    Returns None when the event may happen (and records it), else the key that is
    over its limit (and records nothing). The keys stay held until the session's
    transaction ends.
    """
    await hold_keys(session, [key for key, _ in limits])
    for key, (count, seconds) in limits:
        recent = await session.scalar(
            select(func.count())
            .select_from(RateEvent)
            .where(RateEvent.key == key, RateEvent.at > now - timedelta(seconds=seconds))
        )
        if recent >= count:
            return key
    for key, _ in limits:
        add_row(session, RateEvent, key=key, at=now)
    return None


class SendingLimits(Protocol):
    """What decides whether automatic mail may go out: suppressions and rate limits."""

    async def suppressed(self, addresses: Iterable[str]) -> set[str]: ...

    async def take(self, limits: Sequence[Limit], now: datetime) -> str | None: ...


class StoredLimits:
    """``SendingLimits`` read from the database on every question."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def suppressed(self, addresses: Iterable[str]) -> set[str]:
        return await suppressed(self._session, addresses)

    async def take(self, limits: Sequence[Limit], now: datetime) -> str | None:
        return await take(self._session, limits, now)
