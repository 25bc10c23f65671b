"""Rate limits kept in the database (``RateEvent``), so every node sees the same count."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import RateEvent


async def take(session: AsyncSession, limits: Mapping[str, tuple[int, int]], now: datetime) -> bool:
    """Count one event under every key of ``limits`` unless some key already had its
    (count, seconds) worth of events; True when allowed. In the caller's transaction."""
    for key, (count, seconds) in limits.items():
        recent = await session.scalar(
            select(func.count())
            .select_from(RateEvent)
            .where(RateEvent.key == key, RateEvent.at > now - timedelta(seconds=seconds))
        )
        if recent >= count:
            return False
    session.add_all(RateEvent(key=key, at=now) for key in limits)
    return True
