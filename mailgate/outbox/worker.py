"""The delivery worker: claims due outbox items, sends them, records every attempt.

A claim is one short statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so nodes
sharing a database pass over each other's rows); sending happens outside any
transaction, over a few connections at once. Each message's outcome is written as
soon as the smarthost answers it, before that connection hands over the next one, so
a crash re-sends at most the messages in flight (one per connection): delivery is
at least once, a re-sent message with the same Message-ID. Temporary
failures retry with exponential backoff and jitter until ``give_up_after``;
permanent ones fail at once. Each message leaves with its own return path
(``return_path``: the signed bounce address), and automatic mail is not handed over
to addresses suppressed after a hard bounce (state ``suppressed`` when none is left).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailgate.db.models import DeliveryAttempt, OutboxItem
from mailgate.db.nodes import claim_due
from mailgate.loop import LoopWorker, WorkLoop, backoff
from mailgate.outbox.queue import is_automatic, suppressed
from mailgate.outbox.record import OutcomesUnwritten, OutcomeWriter
from mailgate.outbox.transport import Delivery, SendResult, Transport

log = logging.getLogger(__name__)

_O = OutboxItem
_RAW = _O.raw.label("raw")  # the bytes, from outbox_raw
_CLAIMED = (_O.id, _O.message_id, _O.mail_from, _O.recipients, _RAW, _O.attempts, _O.created_at)
# Written back only while the claim is still ours: a node whose claim was taken over
# (it was silent too long) must not overwrite the newer outcome.
_SETTLE = (
    update(OutboxItem)
    .where(_O.id == bindparam("b_id"), _O.claimed_by == bindparam("b_node"))
    .values(
        state=bindparam("b_state"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        last_error=bindparam("b_error"),
        sent_at=bindparam("b_sent"),
        claimed_by=None,
        claimed_at=None,
    )
)

# Its attempt row, likewise only while the claim is ours (so written before the settle):
# outcomes written again after a COMMIT whose answer was lost add no second row.
_A = DeliveryAttempt
_ATTEMPT = insert(DeliveryAttempt).from_select(
    ["outbox_id", "at", "ok", "detail", "outcome"],
    select(
        _O.id,
        bindparam("a_at", type_=_A.at.type),
        bindparam("a_ok", type_=_A.ok.type),
        bindparam("a_detail", type_=_A.detail.type),
        bindparam("a_outcome", type_=_A.outcome.type),
    ).where(_O.id == bindparam("b_id"), _O.claimed_by == bindparam("b_node")),
)
# An item claimed but not handed over because the database failed: due again.
_RELEASE = (
    update(OutboxItem)
    .where(_O.id == bindparam("b_id"), _O.claimed_by == bindparam("b_node"))
    .values(state="queued", claimed_by=None, claimed_at=None)
)


class DeliveryWorker(LoopWorker):
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
        node_timeout: float = 30.0,
        return_path: Callable[[str, int], str] = lambda sender, outbox_id: sender,
        connections: int = 8,
    ) -> None:
        self._engine = engine
        self._transport = transport
        self._node = node_id
        self._batch = batch_size
        self._base, self._cap = backoff_base, backoff_cap
        self._give_up_after = give_up_after
        self._node_timeout = node_timeout
        self._return_path = return_path
        self._connections = connections
        self._random = random.Random()
        self.loop = WorkLoop("delivery", self.deliver_due, batch_size, poll_seconds)
        # Results sent but not yet written (the database failed): written first on
        # the next pass, so a database outage does not make us send them twice; and
        # the items of that pass not handed over, released then.
        self._unrecorded: list[tuple[Row, SendResult]] = []
        self._unsent: list[Row] = []

    async def deliver_due(self) -> int:
        """One pass: claim due items, send them, record the results; how many."""
        await self._catch_up()
        now = datetime.now(UTC)
        async with self._engine.begin() as connection:
            rows = await claim_due(
                connection, _O, _CLAIMED, self._node, self._batch, now, self._node_timeout
            )
            held = await held_back(connection, rows)
        if rows:
            await self._deliver(rows, held)
        return len(rows)

    async def _deliver(self, rows: list[Row], held: dict[int, set[str]]) -> None:
        """Send ``rows`` over up to ``connections`` connections at once, each writing
        every outcome (on one database connection kept for the pass) before it hands
        the next message over."""
        deliveries = {
            row.id: delivery
            for row in rows
            if (delivery := self._delivery(row, held.get(row.id, set()))) is not None
        }
        kept = [(row, _noting_held(None, held[row.id])) for row in rows if row.id not in deliveries]
        wanted = [row for row in rows if row.id in deliveries]
        async with self._engine.connect() as connection:
            writer = OutcomeWriter(partial(self._write, connection))
            try:
                if kept and not await self._recorded(writer, kept, wanted):
                    wanted = []
                async with asyncio.TaskGroup() as group:
                    for lane in (wanted[i :: self._connections] for i in range(self._connections)):
                        if lane:
                            group.create_task(self._lane(lane, deliveries, held, writer))
            finally:
                self._unrecorded = writer.unwritten
        if writer.failure is not None:
            raise writer.failure

    async def _lane(
        self,
        rows: list[Row],
        deliveries: dict[int, Delivery],
        held: dict[int, set[str]],
        writer: OutcomeWriter,
    ) -> None:
        """One connection, each answer written before the next message goes. Should
        the transport fail outright, the rest retry later; should the database fail,
        the rest are released unsent on the next pass."""
        results = self._transport.send([deliveries[row.id] for row in rows])
        done = 0
        async with aclosing(results):
            while done < len(rows):
                try:
                    answered = await anext(results)
                except Exception as exc:
                    log.exception("delivery: transport failed on %d message(s)", len(rows) - done)
                    failed = SendResult("temporary", f"transport error: {exc!r}")
                    await self._recorded(writer, [(row, failed) for row in rows[done:]], [])
                    return
                batch, done = rows[done : done + len(answered)], done + len(answered)
                outcomes = [
                    (row, _noting_held(result, held.get(row.id, set())))
                    for row, result in zip(batch, answered, strict=True)
                ]
                if not await self._recorded(writer, outcomes, rows[done:]):
                    return

    async def _recorded(
        self, writer: OutcomeWriter, outcomes: list[tuple[Row, SendResult]], rest: list[Row]
    ) -> bool:
        """Write ``outcomes``; False if the database failed, ``rest`` then left unsent."""
        try:
            await writer.record(outcomes)
        except OutcomesUnwritten:
            self._unsent.extend(rest)
            return False
        return True

    def _delivery(self, row: Row, held: set[str]) -> Delivery | None:
        """What to hand over for ``row``; None if every recipient is held back."""
        recipients = tuple(address for address in row.recipients if address not in held)
        if not recipients:
            return None
        sender = self._return_path(row.mail_from, row.id)
        return Delivery(row.id, row.message_id, sender, recipients, row.raw)

    async def _catch_up(self) -> None:
        """Write the outcomes a failed database kept from us and release the items
        left unsent because of it, in one transaction, before claiming more."""
        if not (self._unrecorded or self._unsent):
            return
        async with self._engine.begin() as connection:
            changes = await self._write_outcomes(connection, self._unrecorded)
            if self._unsent:
                release = [{"b_id": row.id, "b_node": self._node} for row in self._unsent]
                await connection.execute(_RELEASE, release)
        _log_outcomes(self._unrecorded, changes)
        self._unrecorded, self._unsent = [], []

    async def _write(
        self, connection: AsyncConnection, outcomes: Sequence[tuple[Row, SendResult]]
    ) -> None:
        async with connection.begin():
            changes = await self._write_outcomes(connection, outcomes)
        _log_outcomes(outcomes, changes)

    async def _write_outcomes(
        self, connection: AsyncConnection, outcomes: Sequence[tuple[Row, SendResult]]
    ) -> list[dict]:
        """Add the items' attempt rows and settle them, while the claims are ours."""
        if not outcomes:
            return []
        now = datetime.now(UTC)
        changes = [self._settle(row, result, now) for row, result in outcomes]
        attempts = [
            {"b_id": row.id, "b_node": self._node, "a_at": now, "a_ok": result.ok}
            | {"a_detail": result.detail[:4000], "a_outcome": None if result.ok else result.outcome}
            for row, result in outcomes
        ]
        await connection.execute(_ATTEMPT, attempts)
        await connection.execute(_SETTLE, changes)
        return changes

    def _settle(self, row: Row, result: SendResult, now: datetime) -> dict:
        """The item's next state after ``result``, as bind values for ``_SETTLE``."""
        tries = row.attempts + 1
        change = {"b_id": row.id, "b_node": self._node, "b_attempts": tries, "b_sent": None}
        change |= {"b_state": "failed", "b_next": now, "b_error": result.detail}
        if result.ok:
            refused = "; ".join(result.refused) or None
            change |= {"b_state": result.outcome, "b_sent": now, "b_error": refused}
        elif result.outcome == "temporary" and not self._expired(row, now):
            change |= {"b_state": "queued", "b_next": now + self._backoff(tries)}
        elif result.outcome == "suppressed":
            change["b_state"] = "suppressed"
        return change

    def _backoff(self, tries: int) -> timedelta:
        return backoff(self._base, self._cap, tries, self._random)

    def _expired(self, row: Row, now: datetime) -> bool:
        created = row.created_at
        created = created if created.tzinfo else created.replace(tzinfo=UTC)  # SQLite
        return now - created >= self._give_up_after


async def held_back(connection: AsyncConnection, rows: Sequence[Row]) -> dict[int, set[str]]:
    """Per claimed item, the recipients suppressed now, for automatic mail only.

    (Whether mail is automatic is read from its headers: only for the few with a
    suppressed recipient.)"""
    stopped = await suppressed(connection, {address for row in rows for address in row.recipients})
    held = {row.id: set(row.recipients) & stopped for row in rows}
    return {row.id: held[row.id] for row in rows if held[row.id] and is_automatic(row.raw)}


def _noting_held(result: SendResult | None, held: set[str]) -> SendResult:
    """``result`` noting the recipients held back; ``suppressed`` if none was left."""
    notes = tuple(f"{address}: suppressed after a hard bounce" for address in sorted(held))
    if result is None:
        return SendResult("suppressed", "not sent: " + "; ".join(notes))
    return replace(result, refused=(*result.refused, *notes)) if notes else result


def _log_outcomes(outcomes: Sequence[tuple[Row, SendResult]], changes: list[dict]) -> None:
    for (row, result), change in zip(outcomes, changes, strict=True):
        _log_outcome(row, result, change)


def _log_outcome(row: Row, result: SendResult, change: dict) -> None:
    state, what = change["b_state"], f"outbox {row.id} {row.message_id}"
    if state in ("sent", "captured", "suppressed"):
        log.info("%s %s: %s", what, state, change["b_error"] or result.detail)
    elif state == "queued":
        log.warning("%s deferred until %s: %s", what, f"{change['b_next']:%H:%M:%S}", result.detail)
    else:
        log.error("%s failed after %d attempt(s): %s", what, change["b_attempts"], result.detail)
