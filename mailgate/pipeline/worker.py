"""The pipeline worker: journal entries in, tickets and outgoing mail out.

Each entry runs the named steps in order -- parse, classify, dedupe, bounce, thread,
route, apply -- and ends in one named outcome: ``done``, ``duplicate`` or ``quarantined``.
A step that raises or runs too long quarantines its entry with the error and the
mail behind it goes on; a database outage leaves the entry pending for a retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailgate.actions import ActionContext
from mailgate.db.models import JournalEntry, Message
from mailgate.db.session import is_postgres, sessions
from mailgate.loop import WorkLoop
from mailgate.outbox.compose import Composer
from mailgate.pipeline.agent_mail import apply_agent_mail
from mailgate.pipeline.agents import check_agent
from mailgate.pipeline.apply import apply
from mailgate.pipeline.bounces import handle_bounce
from mailgate.pipeline.classify import classify
from mailgate.pipeline.inbound import Inbound, content_fingerprint
from mailgate.pipeline.parse import parse
from mailgate.pipeline.route import choose_assignee, route_for
from mailgate.pipeline.thread import find_thread, read_signed
from mailgate.runtime import RuntimeConfig
from mailgate.signing import Signer

log = logging.getLogger(__name__)

INLINE_PARSE_BYTES = 256 * 1024  # larger mail is parsed in a thread, under a timeout
MAX_DATABASE_TRIES = 5
STALE_CLAIM = timedelta(minutes=10)


class Quarantine(Exception):
    """The entry cannot be processed; kept in the journal with this reason."""


@dataclass(frozen=True)
class PipelineDeps:
    runtime: RuntimeConfig
    signer: Signer
    composer: Composer


class PipelineWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        deps: PipelineDeps,
        node_id: str,
        on_outgoing: Callable[[], None] = lambda: None,
        *,
        batch_size: int = 100,
        poll_seconds: float = 5.0,
        step_timeout: float = 30.0,
    ) -> None:
        self._engine = engine
        self._sessions = sessions(engine)
        self._deps = deps
        self._node = node_id
        self._on_outgoing = on_outgoing
        self._batch = batch_size
        self._step_timeout = step_timeout
        self.loop = WorkLoop("pipeline", self.process_pending, batch_size, poll_seconds)

    def wake(self) -> None:
        self.loop.wake()

    def stop(self) -> None:
        self.loop.stop()

    async def run(self) -> None:
        await self.loop.run()

    async def process_pending(self) -> int:
        """One pass over the entries waiting; returns how many were taken."""
        claimed = await self._claim()
        for entry_id in claimed:
            await self.process(entry_id)
        return len(claimed)

    async def _claim(self) -> list[int]:
        now = datetime.now(UTC)
        # Pending entries, our own claims left by a database outage, and claims of a
        # node that died (held too long).
        processing = JournalEntry.state == "processing"
        waiting = or_(
            JournalEntry.state == "pending",
            processing & (JournalEntry.claimed_by == self._node),
            processing & (JournalEntry.claimed_at < now - STALE_CLAIM),
        )
        query = select(JournalEntry.id).where(waiting).order_by(JournalEntry.id).limit(self._batch)
        if is_postgres(self._engine):
            query = query.with_for_update(skip_locked=True)
        async with self._sessions.begin() as session:
            ids = list(await session.scalars(query))
            if ids:
                await session.execute(
                    update(JournalEntry)
                    .where(JournalEntry.id.in_(ids))
                    .values(state="processing", claimed_by=self._node, claimed_at=now)
                )
        return ids

    async def process(self, entry_id: int) -> str:
        """Run one entry through the steps; returns its outcome."""
        async with self._sessions() as session:
            entry = await session.get(JournalEntry, entry_id)
        step = "parse"
        try:
            inbound = await self._parse(entry)
            step = "classify"
            inbound = self._classify(inbound)
            step = "authenticate"
            inbound = self._authenticate(inbound)
            step = "apply"
            outcome = await self._apply(inbound)
        except Exception as exc:  # every failure ends in a retry or in quarantine
            return await self._failed(entry, step, exc)
        log.info(
            "entry %d: %s",
            entry_id,
            outcome,
            extra={"fields": {"message_id": inbound.message.message_id}},
        )
        return outcome

    async def _parse(self, entry: JournalEntry) -> Inbound:
        if entry.size <= INLINE_PARSE_BYTES:
            message = parse(entry.raw)
        else:
            try:
                async with asyncio.timeout(self._step_timeout):
                    message = await asyncio.to_thread(parse, entry.raw)
            except TimeoutError:
                raise Quarantine(f"parsing took over {self._step_timeout:g}s") from None
        return Inbound(
            entry.id,
            entry.source,
            entry.mail_from,
            tuple(entry.recipients),
            entry.received_at,
            message,
        )

    def _classify(self, inbound: Inbound) -> Inbound:
        runtime = self._deps.runtime
        verdicts = classify(inbound.message, _return_path(inbound), runtime.routes.is_ours)
        return replace(inbound, verdicts=verdicts)

    def _authenticate(self, inbound: Inbound) -> Inbound:
        runtime = self._deps.runtime
        agents = runtime.agent_emails()
        signed = tuple(read_signed(inbound.recipients, self._deps.signer, agents))
        trusted = runtime.settings.auth.trusted_authserv_ids
        check = check_agent(inbound.message, signed, agents, trusted)
        return replace(inbound, signed=signed, sender_check=check)

    async def _apply(self, inbound: Inbound) -> str:
        async with self._sessions.begin() as session:
            if await _is_duplicate(session, inbound):
                await _finish(session, inbound.entry_id, "duplicate")
                return "duplicate"
            deps = self._deps  # a bounce of our own mail never becomes a ticket:
            bounce = await handle_bounce(session, deps.runtime, deps.signer, deps.composer, inbound)
            if bounce:
                outcome, queued = bounce, True  # the agents' notices, if any
            else:
                outcome, queued = await self._thread_route_apply(session, inbound)
            await _finish(session, inbound.entry_id, "done")
        if queued:
            self._on_outgoing()
        return f"done ({outcome})"

    async def _thread_route_apply(self, session: AsyncSession, inbound: Inbound):
        """Thread, route and apply; returns (what happened, whether mail was queued)."""
        deps = self._deps
        settings = deps.runtime.settings
        decision = await find_thread(
            session, inbound.message, inbound.signed, settings.tickets, inbound.agent is not None
        )
        existing = decision.ticket or decision.follow_up_of
        if inbound.agent and existing is not None:  # agents keep working on closed tickets
            done = await apply_agent_mail(
                session, ActionContext(deps.runtime, deps.composer), inbound, existing
            )
            how = inbound.sender_check.how
            return f"{existing.code}, {done.outcome} by {inbound.agent} ({how})", True
        route = route_for(inbound.recipients, deps.runtime.routes)
        if route is None:
            raise Quarantine(f"no route for {', '.join(inbound.recipients)}")
        assignee = None
        if decision.ticket is None:
            assignee = await choose_assignee(session, route, settings.tickets)
        applied = await apply(
            session, deps.runtime, deps.composer, inbound, decision, route, assignee
        )
        return f"{applied.ticket.code}{', new' if applied.created else ''}", bool(applied.outgoing)

    async def _failed(self, entry: JournalEntry, step: str, exc: BaseException) -> str:
        transient = isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError)
        retry = (transient or isinstance(exc, IntegrityError)) and (
            entry.attempts + 1 < MAX_DATABASE_TRIES
        )
        state = "pending" if retry else "quarantined"
        reason = f"{step}: {type(exc).__name__}: {exc}"[:4000]
        log_method = log.warning if retry else log.error
        log_method("entry %d: %s at step %s: %s", entry.id, state, step, exc)
        async with self._sessions.begin() as session:
            await session.execute(
                update(JournalEntry)
                .where(JournalEntry.id == entry.id)
                .values(
                    state=state,
                    error=reason,
                    attempts=JournalEntry.attempts + 1,
                    processed_at=datetime.now(UTC),
                )
            )
        return state


def _return_path(inbound: Inbound) -> str | None:
    """The envelope sender; None when unknown (IMAP mail without a Return-Path header)."""
    if inbound.source == "imap" and not inbound.message.header("return-path"):
        return None
    return inbound.envelope_from


async def _is_duplicate(session: AsyncSession, inbound: Inbound) -> bool:
    found = await session.scalar(
        select(Message.id)
        .where(
            Message.message_id == inbound.message.message_id,
            Message.content_sha256 == content_fingerprint(inbound.message),
        )
        .limit(1)
    )
    return found is not None


async def _finish(session: AsyncSession, entry_id: int, state: str) -> None:
    await session.execute(
        update(JournalEntry)
        .where(JournalEntry.id == entry_id)
        .values(state=state, error=None, processed_at=datetime.now(UTC), claimed_by=None)
    )


async def quarantined_ids(engine: AsyncEngine) -> list[int]:
    async with AsyncSession(engine) as session:
        query = select(JournalEntry.id).where(JournalEntry.state == "quarantined")
        return list(await session.scalars(query.order_by(JournalEntry.id)))
