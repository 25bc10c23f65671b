"""The delivery worker: claims due outbox items, sends them, records every attempt.

Claims are short transactions (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
nodes never take the same item); sending happens outside any transaction; results
are written back in one transaction per batch. Temporary failures retry with
exponential backoff and jitter until ``give_up_after``; permanent ones fail at once.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.db.models import DeliveryAttempt, OutboxItem
from mailgate.db.session import is_postgres, sessions
from mailgate.loop import WorkLoop
from mailgate.outbox.transport import Outgoing, SendResult, Transport

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=10)
_DONE_STATES = {"sent": "sent", "captured": "captured", "permanent": "failed"}


class DeliveryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        transport: Transport,
        node_id: str,
        *,
        batch_size: int = 100,
        poll_seconds: float = 5.0,
        backoff_base: float = 30.0,
        backoff_cap: float = 3600.0,
        give_up_after: timedelta = timedelta(days=3),
    ) -> None:
        self._engine = engine
        self._sessions = sessions(engine)
        self._transport = transport
        self._node = node_id
        self._batch = batch_size
        self._base = backoff_base
        self._cap = backoff_cap
        self._give_up_after = give_up_after
        self.loop = WorkLoop("delivery", self.deliver_due, batch_size, poll_seconds)

    def wake(self) -> None:
        """New mail is in the outbox: deliver now rather than at the next poll."""
        self.loop.wake()

    def stop(self) -> None:
        self.loop.stop()

    async def run(self) -> None:
        await self.loop.run()

    async def deliver_due(self) -> int:
        """One pass: claim due items, send them, record the results."""
        items = await self._claim()
        if items:
            results = await self._transport.send(items)
            await self._record(items, results)
        return len(items)

    async def _claim(self) -> list[Outgoing]:
        now = datetime.now(UTC)
        sending = OutboxItem.state == "sending"
        due = or_(
            (OutboxItem.state == "queued") & (OutboxItem.next_attempt_at <= now),
            sending & (OutboxItem.claimed_by == self._node),  # left by a database outage
            sending & (OutboxItem.claimed_at < now - STALE_CLAIM),  # a node that died
        )
        query = select(OutboxItem).where(due).order_by(OutboxItem.id).limit(self._batch)
        if is_postgres(self._engine):
            query = query.with_for_update(skip_locked=True)
        async with self._sessions.begin() as session:
            rows = list(await session.scalars(query))
            for row in rows:
                row.state, row.claimed_by, row.claimed_at = "sending", self._node, now
        return [Outgoing(r.id, r.mail_from, tuple(r.recipients), r.raw) for r in rows]

    async def _record(self, items: list[Outgoing], results: list[SendResult]) -> None:
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            for item, result in zip(items, results, strict=True):
                row = await session.get(OutboxItem, item.id)
                row.attempts += 1
                row.claimed_by = row.claimed_at = None
                session.add(
                    DeliveryAttempt(
                        outbox_id=row.id,
                        at=now,
                        ok=result.outcome in ("sent", "captured"),
                        detail=result.detail[:4000],
                    )
                )
                self._settle(row, result, now)

    def _settle(self, row: OutboxItem, result: SendResult, now: datetime) -> None:
        if result.outcome in _DONE_STATES:
            row.state = _DONE_STATES[result.outcome]
            row.sent_at = now if result.outcome != "permanent" else None
            row.last_error = result.detail if result.outcome == "permanent" else None
            log.info("outbox %d %s: %s", row.id, row.state, row.message_id)
            return
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        row.last_error = result.detail
        if now - created > self._give_up_after:
            row.state = "failed"
            log.error("outbox %d failed after %d attempts: %s", row.id, row.attempts, result.detail)
            return
        delay = min(self._cap, self._base * 2 ** (row.attempts - 1))
        row.state = "queued"
        row.next_attempt_at = now + timedelta(seconds=delay * random.uniform(0.9, 1.1))
        log.warning("outbox %d deferred %.0fs: %s", row.id, delay, result.detail)
