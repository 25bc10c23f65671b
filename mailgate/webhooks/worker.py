"""The webhook worker: claims due deliveries, POSTs them, records each answer.

It claims the way the outbox's worker does (one short statement, ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, rows of a node gone silent taken over), so every node runs
one and they share the work. The body is written at the first attempt, while the
claim is ours; sending happens outside any transaction. A 2xx answer delivers; any
other answer, a refused connection or a timeout retries with exponential backoff
until the webhook's ``max_attempts`` or ``give_up_after_hours``, then the delivery
has failed (an admin can send it again from ``/admin/webhooks``). A delivery whose
body cannot be built (its ticket's stored data is broken) fails at once with the
reason, and the rest of its batch is sent: one bad row never holds the queue. A
crash re-sends what was in flight, with the same ``X-Mailgate-Delivery``: at least
once. Answers that a database outage kept from being written are written first on
the next pass, so the outage sends nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import Row, and_, bindparam, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailgate.config import Webhook
from mailgate.db.models import WebhookDelivery
from mailgate.db.nodes import claim_due
from mailgate.localtime import utc
from mailgate.loop import LoopWorker, WorkLoop, backoff
from mailgate.runtime import RuntimeConfig
from mailgate.webhooks.payload import bodies, headers

log = logging.getLogger(__name__)

ANSWER_EXCERPT_BYTES = 300  # of a refusing receiver's answer, kept as the error

_W = WebhookDelivery
_CLAIMED = (
    _W.id,
    _W.delivery_id,
    _W.webhook,
    _W.event,
    _W.ticket_id,
    _W.message_id,
    _W.data,
    _W.body,
    _W.attempts,
    _W.created_at,
)
_OURS = and_(_W.id == bindparam("b_id"), _W.claimed_by == bindparam("b_node"))
_SETTLE = (
    update(WebhookDelivery)
    .where(_OURS)
    .values(
        state=bindparam("b_state"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        last_status=bindparam("b_status"),
        last_error=bindparam("b_error"),
        delivered_at=bindparam("b_delivered"),
        claimed_by=None,
        claimed_at=None,
    )
)
_WRITE_BODY = update(WebhookDelivery).where(_OURS).values(body=bindparam("b_body"))
# Claimed but not sent because the database failed first: due again.
_RELEASE = (
    update(WebhookDelivery).where(_OURS).values(state="queued", claimed_by=None, claimed_at=None)
)


@dataclass(frozen=True)
class Answer:
    """What one POST came to: the HTTP status (None without one) and the error."""

    status: int | None
    error: str | None = None
    retry: bool = True  # False: the same attempt would fail the same way

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookWorker(LoopWorker):
    def __init__(
        self,
        engine: AsyncEngine,
        runtime: RuntimeConfig,
        node_id: str,
        *,
        batch_size: int = 50,
        poll_seconds: float = 5.0,
        node_timeout: float = 30.0,
    ) -> None:
        self._engine = engine
        self._runtime = runtime
        self._node = node_id
        self._batch = batch_size
        self._node_timeout = node_timeout
        self._random = random.Random()
        self.loop = WorkLoop("webhooks", self.deliver_due, batch_size, poll_seconds)
        # Answers a failed database kept from us, and rows claimed but not sent
        # because it failed before: both written first on the next pass.
        self._unrecorded: list[dict] = []
        self._unsent: list[dict] = []

    async def deliver_due(self) -> int:
        """One pass: claim due deliveries, POST them, record the answers; how many."""
        await self._catch_up()
        async with self._engine.begin() as connection:
            now = datetime.now(UTC)
            rows = await claim_due(
                connection, _W, _CLAIMED, self._node, self._batch, now, self._node_timeout
            )
        if not rows:
            return 0
        self._unsent = [{"b_id": row.id, "b_node": self._node} for row in rows]
        hooks = {hook.name: hook for hook in self._runtime.settings.webhooks}
        body, broken = await self._bodies(rows)
        self._unsent = []
        async with aiohttp.ClientSession(trust_env=False) as http:
            answers = await asyncio.gather(
                *(
                    self._unbuilt(broken[row.id])
                    if row.id in broken
                    else self._post(http, hooks.get(row.webhook), row, body[row.id])
                    for row in rows
                )
            )
        now = datetime.now(UTC)
        self._unrecorded = [
            self._settle(row, answer, hooks.get(row.webhook), now)
            for row, answer in zip(rows, answers, strict=True)
        ]
        await self._catch_up()
        return len(rows)

    async def _bodies(self, rows: list[Row]) -> tuple[dict[int, str], dict[int, str]]:
        """Each row's body by id, those sent for the first time getting theirs now;
        and, by id, why a row's body cannot be built.

        The batch is built in one go; if that fails for a reason other than the
        database, each new row is built on its own, so only the broken ones fail.
        """
        kept = {row.id: row.body for row in rows if row.body is not None}
        new = [row for row in rows if row.body is None]
        try:
            return kept | await self._write_bodies(new), {}
        except (DBAPIError, OSError):
            raise
        except Exception:  # some row's data: build each alone to find it
            return await self._each_alone(new, kept)

    async def _each_alone(
        self, rows: list[Row], kept: dict[int, str]
    ) -> tuple[dict[int, str], dict[int, str]]:
        built, broken = dict(kept), {}
        for row in rows:
            try:
                built |= await self._write_bodies([row])
            except (DBAPIError, OSError):
                raise
            except Exception as exc:
                broken[row.id] = f"the body cannot be built: {type(exc).__name__}: {exc}"[:2000]
        return built, broken

    async def _write_bodies(self, rows: list[Row]) -> dict[int, str]:
        """Build the bodies of ``rows`` and store them, in one transaction."""
        if not rows:
            return {}
        async with AsyncSession(self._engine) as session, session.begin():
            runtime = self._runtime
            written = await bodies(session, runtime.settings, rows, runtime.clock.now())
            params = [{"b_id": i, "b_node": self._node, "b_body": b} for i, b in written.items()]
            await (await session.connection()).execute(_WRITE_BODY, params)
        return written

    @staticmethod
    async def _unbuilt(error: str) -> Answer:
        """The answer for a delivery not sent because its body cannot be built."""
        return Answer(None, error, retry=False)

    async def _post(
        self, http: aiohttp.ClientSession, hook: Webhook | None, row: Row, text: str
    ) -> Answer:
        if hook is None:
            return Answer(None, f"no webhook named {row.webhook!r} is configured")
        body = text.encode()
        try:
            async with (
                asyncio.timeout(hook.timeout_seconds),
                http.post(
                    hook.url,
                    data=body,
                    headers=headers(row.event, row.delivery_id, hook.secret, body),
                    allow_redirects=False,
                ) as response,
            ):
                excerpt = await response.content.read(ANSWER_EXCERPT_BYTES)
        except TimeoutError:
            return Answer(None, f"no answer within {hook.timeout_seconds:g}s")
        except (aiohttp.ClientError, OSError) as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}")
        if 200 <= response.status < 300:
            return Answer(response.status)
        text = excerpt.decode("utf-8", "replace").strip()
        return Answer(response.status, f"HTTP {response.status} {response.reason}: {text}"[:2000])

    def _settle(self, row: Row, answer: Answer, hook: Webhook | None, now: datetime) -> dict:
        """The delivery's next state after ``answer``, as bind values for ``_SETTLE``."""
        tries = row.attempts + 1
        change = {"b_id": row.id, "b_node": self._node, "b_attempts": tries}
        change |= {"b_status": answer.status, "b_error": answer.error, "b_delivered": None}
        if answer.ok:
            return change | {"b_state": "delivered", "b_next": now, "b_delivered": now}
        if hook is None or not answer.retry or self._spent(row, hook, tries, now):
            return change | {"b_state": "failed", "b_next": now}
        wait = backoff(hook.retry_base_seconds, hook.retry_cap_seconds, tries, self._random)
        return change | {"b_state": "queued", "b_next": now + wait}

    @staticmethod
    def _spent(row: Row, hook: Webhook, tries: int, now: datetime) -> bool:
        too_old = now - utc(row.created_at) >= timedelta(hours=hook.give_up_after_hours)
        return tries >= hook.max_attempts or too_old

    async def _catch_up(self) -> None:
        """Write the answers not written yet and release what was not sent, in one
        transaction (all of it, or none on a failure)."""
        if not (self._unrecorded or self._unsent):
            return
        async with self._engine.begin() as connection:
            if self._unrecorded:
                await connection.execute(_SETTLE, self._unrecorded)
            if self._unsent:
                await connection.execute(_RELEASE, self._unsent)
        _log(self._unrecorded)
        self._unrecorded, self._unsent = [], []


def _log(changes: Sequence[dict]) -> None:
    for change in changes:
        what = f"webhook delivery {change['b_id']}"
        if change["b_state"] == "delivered":
            log.info("%s delivered (HTTP %s)", what, change["b_status"])
        elif change["b_state"] == "queued":
            log.warning(
                "%s deferred until %s: %s", what, f"{change['b_next']:%H:%M:%S}", change["b_error"]
            )
        else:
            log.error(
                "%s failed after %d attempt(s): %s", what, change["b_attempts"], change["b_error"]
            )
