"""Deleting rows that have run out: rate events, browser sessions, login links,
webhook deliveries done with long ago, and the presence of agents on tickets.

A rate event counts for as long as the longest configured limit looks back; a
session or a login link until it expires; a webhook delivery, delivered or failed,
is listed on the admin page for ``WEBHOOK_DELIVERIES_KEPT``. Past that they only take room, and
``rate_events`` gains a row per mail sent. Every node may prune at any moment, alone
or beside others, with no leader: each deletes in small transactions (so SQLite's
write lock is never held for long), on PostgreSQL skipping rows another node is
deleting at that moment, and a row someone else deleted first is simply not there.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.config import Settings, parse_rate
from mailgate.db.models import AgentSession, LoginToken, Presence, RateEvent, WebhookDelivery
from mailgate.loop import LoopWorker, WorkLoop
from mailgate.runtime import RuntimeConfig

log = logging.getLogger(__name__)

CHUNK = 2000  # rows per transaction
PERIOD_SECONDS = 300.0
WEBHOOK_DELIVERIES_KEPT = timedelta(days=30)  # after their last attempt


def longest_look_back(settings: Settings) -> timedelta:
    """How far back any configured rate limit counts."""
    web, tickets = settings.web, settings.tickets
    rates = (
        web.login_rate_limit,
        web.login_ip_rate_limit,
        web.login_account_rate_limit,
        web.form_rate_limit,
        web.form_ip_rate_limit,
        tickets.ack_rate_limit,
        tickets.notify_rate_limit,
        tickets.notify_ticket_rate_limit,
    )
    return timedelta(seconds=max(parse_rate(rate)[1] for rate in rates))


async def prune_expired(engine: AsyncEngine, settings: Settings, now: datetime) -> dict[str, int]:
    """Delete what no limit counts any more and what has expired, as of ``now``;
    the rows deleted per table."""
    expired: list[tuple[type, ColumnElement[bool]]] = [
        (RateEvent, RateEvent.at < now - longest_look_back(settings)),
        (AgentSession, AgentSession.expires_at < now),
        (LoginToken, LoginToken.expires_at < now),
        (
            WebhookDelivery,  # a settled delivery's next_attempt_at is its last attempt
            WebhookDelivery.state.in_(("delivered", "failed"))
            & (WebhookDelivery.next_attempt_at < now - WEBHOOK_DELIVERIES_KEPT),
        ),
    ]
    deleted = {
        model.__tablename__: await _delete_in_chunks(engine, model, where)
        for model, where in expired
    }
    # Presence: a row per open ticket page, left behind by a node that died.
    gone = now - timedelta(seconds=settings.web.presence_timeout_seconds)
    async with engine.begin() as connection:
        result = await connection.execute(delete(Presence).where(Presence.seen_at < gone))
    return {**deleted, Presence.__tablename__: result.rowcount}


async def _delete_in_chunks(engine: AsyncEngine, model: type, where: ColumnElement[bool]) -> int:
    """Delete ``model``'s rows matching ``where``, ``CHUNK`` per transaction, oldest
    (lowest key) first."""
    key = model.__table__.primary_key.columns.values()[0]
    chunk = select(key).where(where).order_by(key).limit(CHUNK)
    if engine.dialect.name == "postgresql":
        chunk = chunk.with_for_update(skip_locked=True)
    deleted = 0
    while True:
        async with engine.begin() as connection:
            result = await connection.execute(delete(model).where(key.in_(chunk.scalar_subquery())))
        deleted += result.rowcount
        if result.rowcount < CHUNK:
            return deleted


class Pruner(LoopWorker):
    """Prunes every ``period_seconds`` with the settings in force, until ``stop()``."""

    def __init__(
        self, engine: AsyncEngine, runtime: RuntimeConfig, period_seconds: float = PERIOD_SECONDS
    ) -> None:
        self._engine = engine
        self._runtime = runtime
        # A pass never reports a full batch, so the loop waits a period after each.
        self.loop = WorkLoop("prune", self.prune_once, 1, period_seconds)

    async def prune_once(self) -> int:
        """One pass; returns 0 (the loop's "no more waiting now")."""
        deleted = await prune_expired(self._engine, self._runtime.settings, datetime.now(UTC))
        if any(deleted.values()):
            log.info("pruned expired rows: %s", deleted)
        return 0
