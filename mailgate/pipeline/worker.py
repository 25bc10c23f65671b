"""The pipeline worker: journal entries in, tickets and outgoing mail out.

Each entry runs the named steps in order -- parse, classify, authenticate, spam check,
dedupe, bounce, thread, route, apply -- and ends in one named outcome: ``done``,
``duplicate`` or ``quarantined``.
A failure is confined to the entries involved: a batch that fails (to load or to
apply) runs again one entry at a time, and an entry that fails by itself is retried
(a database error, such as a lost race) or quarantined with the error, while the mail
behind it goes on. A database outage is never counted against an entry: it ends the
pass with the entries still claimed, to be taken again by the next one.

The steps up to authentication run per entry; the spam checks of a batch at once,
outside any transaction (a failed check lets the mail go on unscored); the rest runs
for a batch of entries in one transaction, with what the batch needs from the database read up front
(``known.py``): a few queries and one flush per batch rather than per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailgate.actions import ActionContext
from mailgate.db.bulk import collect_new_rows
from mailgate.db.models import JournalEntry
from mailgate.db.nodes import claim_is_dead
from mailgate.db.outage import raise_if_outage
from mailgate.db.session import is_postgres, sessions
from mailgate.loop import LoopWorker, WorkLoop
from mailgate.outbox.compose import Composer
from mailgate.pipeline.agent_mail import apply_agent_mail
from mailgate.pipeline.agents import check_agent
from mailgate.pipeline.apply import apply
from mailgate.pipeline.bounces import bounced_outbox_id, handle_bounce
from mailgate.pipeline.classify import classify
from mailgate.pipeline.inbound import Inbound
from mailgate.pipeline.journal import SENDER_FROM_HEADER
from mailgate.pipeline.known import Known
from mailgate.pipeline.parse import parse
from mailgate.pipeline.route import Assigner, route_for
from mailgate.pipeline.spam import check_entries
from mailgate.pipeline.spam_headers import header_verdict
from mailgate.pipeline.thread import find_thread, read_signed
from mailgate.runtime import RuntimeConfig
from mailgate.signing import Signer

log = logging.getLogger(__name__)

INLINE_PARSE_BYTES = 256 * 1024  # larger mail is parsed in a thread, under a timeout
MAX_DATABASE_TRIES = 5
MAX_BATCH_BYTES = 32 * 1024 * 1024  # raw mail held in memory at once


class Quarantine(Exception):
    """The entry cannot be processed; kept in the journal with this reason."""


class ClaimLost(Exception):
    """Another node took the entry over (this one was silent too long): it is theirs."""


@dataclass(frozen=True)
class PipelineDeps:
    runtime: RuntimeConfig
    signer: Signer
    composer: Composer


class PipelineWorker(LoopWorker):
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

    @property
    def node(self) -> str:
        """The node this worker claims entries for."""
        return self._node

    async def process_pending(self) -> int:
        """One pass over the entries waiting; returns how many were taken."""
        claimed = await self._claim()
        for group in _by_size(claimed, MAX_BATCH_BYTES):
            await self.process(group)
        return len(claimed)

    async def process(self, entry_ids: list[int]) -> list[str]:
        """Run claimed entries through the steps, in order; returns their outcomes.

        Entries are parsed one by one, then threaded and applied together in one
        transaction (mail from agents and bounces of our mail each on their own). If
        loading or applying fails for several entries, they run again one at a time,
        so one bad entry only ever fails itself. Raises ``DatabaseOutage`` when the
        database fails, leaving the entries not yet finished as they were.
        """
        entries, outcomes = await self._load(entry_ids)
        ready: list[tuple[Inbound, bool]] = []
        for entry in entries:
            try:
                ready.append(await self._prepare(entry))
            except _StepFailed as failed:
                outcomes[entry.id] = await self._failed(entry.id, failed.step, failed.error)
        ready = await self._check_spam(entries, ready)
        for segment, alone in _segments(ready):
            outcomes |= await self._run(segment, alone)
        return [outcomes[entry_id] for entry_id in entry_ids if entry_id in outcomes]

    async def _claim(self) -> list[tuple[int, int]]:
        """Take up to a batch of waiting entries for this node; (id, size) each."""
        now = datetime.now(UTC)
        timeout = self._deps.runtime.settings.cluster.node_timeout_seconds
        # Pending entries, our own claims left by a database outage, and claims of a
        # node that died (its heartbeat stopped). Asked apart, so the pending ones come
        # in index order without sorting a whole backlog on every claim.
        pending = JournalEntry.state == "pending"
        left_over = (JournalEntry.state == "processing") & or_(
            JournalEntry.claimed_by == self._node,
            claim_is_dead(JournalEntry.claimed_by, now, timeout),
        )
        async with self._sessions.begin() as session:
            claimed: list[tuple[int, int]] = []
            for waiting in (left_over, pending):
                claimed += await self._take(session, waiting, now, self._batch - len(claimed))
        return sorted(claimed)

    async def _take(self, session: AsyncSession, waiting, now: datetime, limit: int) -> list:
        """Claim up to ``limit`` entries matching ``waiting``, first come first; (id,
        size) each. One UPDATE over the ids it selects, so two nodes (or two processes
        on one SQLite file) can never both take an entry: PostgreSQL skips rows another
        claim has locked, and SQLite runs one writer at a time."""
        if limit <= 0:
            return []
        ids = select(JournalEntry.id).where(waiting).order_by(JournalEntry.id).limit(limit)
        if is_postgres(self._engine):
            ids = ids.with_for_update(skip_locked=True)
        claim = (
            update(JournalEntry)
            .where(JournalEntry.id.in_(ids.scalar_subquery()))
            .values(state="processing", claimed_by=self._node, claimed_at=now)
            .returning(JournalEntry.id, JournalEntry.size)
        )
        return [(row.id, row.size) for row in await session.execute(claim)]

    async def _load(self, entry_ids: list[int]) -> tuple[list[JournalEntry], dict[int, str]]:
        """The entries with their raw mail, and the outcomes of those that could not
        be read (read together, then one by one if that fails)."""
        try:
            return await self._read(entry_ids), {}
        except Exception as exc:
            await raise_if_outage(self._engine, exc)
            if len(entry_ids) == 1:
                return [], {entry_ids[0]: await self._failed(entry_ids[0], "load", exc)}
        entries: list[JournalEntry] = []
        outcomes: dict[int, str] = {}
        for entry_id in entry_ids:
            loaded, failed = await self._load([entry_id])
            entries += loaded
            outcomes |= failed
        return entries, outcomes

    async def _read(self, entry_ids: list[int]) -> list[JournalEntry]:
        async with self._sessions() as session:
            query = select(JournalEntry).where(JournalEntry.id.in_(entry_ids))
            return list(await session.scalars(query.order_by(JournalEntry.id)))

    async def _prepare(self, entry: JournalEntry) -> tuple[Inbound, bool]:
        """Parse, classify and authenticate: everything that needs no database. With
        the entry, whether it must be applied alone."""
        step = "parse"
        try:
            inbound = await self._parse(entry)
            step = "classify"
            inbound = await self._classify(inbound, entry.raw)
            step = "authenticate"
            inbound = self._authenticate(inbound)
            return inbound, self._acts_alone(inbound)
        except Exception as exc:  # the entry goes to quarantine; the batch goes on
            raise _StepFailed(step, exc) from exc

    async def _check_spam(
        self, entries: list[JournalEntry], ready: list[tuple[Inbound, bool]]
    ) -> list[tuple[Inbound, bool]]:
        """Ask the spam engine about customer mail (neither agents' mail nor bounces of
        ours, which run alone, nor automatic mail, which is never answered anyway), all
        at once and outside any transaction. A check that fails lets the mail go on."""
        settings = self._deps.runtime.settings
        wanted = [
            i for i, (inbound, alone) in enumerate(ready) if not alone and not inbound.automatic
        ]
        checked = list(ready)
        ask = []
        for i in wanted:  # the MTA's own filter may have spoken already
            inbound, alone = ready[i]
            said = header_verdict(
                inbound.message, inbound.trusted_path, settings.auth.trusted_authserv_ids
            )
            if said is None:
                ask.append(i)
            else:
                checked[i] = (replace(inbound, spam=said), alone)
        if not settings.spam.rspamd_url or not ask:
            return checked
        by_id = {entry.id: entry for entry in entries}
        asked = [by_id[ready[i][0].entry_id] for i in ask]
        for i, verdict in zip(ask, await check_entries(settings.spam, asked), strict=True):
            inbound, alone = ready[i]
            checked[i] = (replace(inbound, spam=verdict), alone)
        return checked

    def _acts_alone(self, inbound: Inbound) -> bool:
        """Agents' mail and bounces of our mail run actions that read and write more
        than ``Known`` follows, so each gets a transaction of its own."""
        return (
            inbound.agent is not None or bounced_outbox_id(self._deps.signer, inbound) is not None
        )

    async def _run(self, segment: list[Inbound], alone: bool) -> dict[int, str]:
        try:
            results = await self._apply(segment, alone)
        except Exception as exc:  # an outage, or a retry, a quarantine, or one at a time
            if not isinstance(exc, ClaimLost):
                await raise_if_outage(self._engine, exc)
            if len(segment) == 1:
                return {segment[0].entry_id: await self._failed(segment[0].entry_id, "apply", exc)}
            log.warning("a batch of %d entries failed (%s); one at a time", len(segment), exc)
            outcomes: dict[int, str] = {}
            for inbound in segment:
                outcomes |= await self._run([inbound], alone)
            return outcomes
        for inbound, result in zip(segment, results, strict=True):
            log_method = log.error if result.state == "quarantined" else log.info
            log_method(
                "entry %d: %s",
                inbound.entry_id,
                result.outcome,
                extra={"fields": {"message_id": inbound.message.message_id}},
            )
        if any(result.queued for result in results):
            self._on_outgoing()
        return {
            inbound.entry_id: result.outcome
            for inbound, result in zip(segment, results, strict=True)
        }

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
            entry.trusted_path,
        )

    async def _classify(self, inbound: Inbound, raw: bytes) -> Inbound:
        """Large mail is classified in a thread: the bounce detectors may read it all."""
        routes = self._deps.runtime.routes
        run = partial(classify, inbound.message, _return_path(inbound), routes.is_ours, raw=raw)
        verdicts = run() if len(raw) <= INLINE_PARSE_BYTES else await asyncio.to_thread(run)
        return replace(inbound, verdicts=verdicts)

    def _authenticate(self, inbound: Inbound) -> Inbound:
        runtime = self._deps.runtime
        agents = runtime.agent_emails()
        signed = tuple(read_signed(inbound.recipients, self._deps.signer, agents))
        # What the sender wrote is never read: only a trusted path's headers are the MTA's.
        trusted = runtime.settings.auth.trusted_authserv_ids if inbound.trusted_path else ()
        check = check_agent(inbound.message, signed, agents, trusted)
        return replace(inbound, signed=signed, sender_check=check)

    async def _apply(self, segment: list[Inbound], alone: bool) -> list[_Result]:
        """Thread, route and apply ``segment`` in one transaction; new rows are written
        in bulk at its end, except for an entry running ``alone`` (whose actions may
        read back what they wrote)."""
        deps = self._deps
        async with self._sessions.begin() as session:
            new_rows = None if alone else collect_new_rows(session)
            known = await Known.load(session, deps.runtime, segment)
            assigner = Assigner(session, deps.runtime.settings.tickets)
            results = [await self._apply_one(session, known, assigner, i) for i in segment]
            if new_rows is not None:
                await new_rows.flush(session)
            await _finish(session, self._node, segment, results)
        return results

    async def _apply_one(self, session, known: Known, assigner: Assigner, inbound) -> _Result:
        if known.is_stored(inbound):
            return _Result("duplicate", "duplicate")
        deps = self._deps  # a bounce of our own mail never becomes a ticket:
        bounce = await handle_bounce(session, deps.runtime, deps.signer, deps.composer, inbound)
        if bounce:  # the agents' notices, if any, are queued
            return _Result("done", f"done ({bounce})", queued=True)
        try:
            outcome, queued = await self._thread_route_apply(session, known, assigner, inbound)
        except Quarantine as exc:  # raised before the entry wrote anything
            return _Result("quarantined", "quarantined", error=_reason("apply", exc))
        return _Result("done", f"done ({outcome})", queued)

    async def _thread_route_apply(self, session, known: Known, assigner: Assigner, inbound):
        """Thread, route and apply; returns (what happened, whether mail or a webhook
        event was queued)."""
        deps = self._deps
        settings = deps.runtime.settings
        decision = await find_thread(
            known, inbound.message, inbound.signed, settings.tickets, inbound.agent is not None
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
        # A ticket held back as spam waits for an agent's "not spam" unassigned.
        new = decision.ticket is None and not inbound.is_spam
        assignee = await assigner.choose(route) if new else None
        applied = await apply(
            session, known, deps.runtime, deps.composer, inbound, decision, route, assignee
        )
        queued = bool(applied.outgoing or applied.events)  # either wakes delivery
        return f"{applied.ticket.code}{', new' if applied.created else ''}", queued

    async def _failed(self, entry_id: int, step: str, exc: BaseException) -> str:
        """Count a failure of the entry itself (never an outage: see ``process``). A
        database error (a lost race, a deadlock) is retried by a later pass, up to
        ``MAX_DATABASE_TRIES`` attempts in all; anything else quarantines the entry.
        An entry another node has taken over is left to it."""
        async with self._sessions.begin() as session:
            query = select(JournalEntry.attempts).where(JournalEntry.id == entry_id)
            attempts = (await session.scalar(query)) or 0
            retry = isinstance(exc, DBAPIError) and attempts + 1 < MAX_DATABASE_TRIES
            state = "pending" if retry else "quarantined"
            noted = await session.execute(
                update(JournalEntry)
                .where(JournalEntry.id == entry_id, JournalEntry.claimed_by == self._node)
                .values(
                    state=state,
                    error=_reason(step, exc),
                    attempts=attempts + 1,
                    processed_at=datetime.now(UTC),
                )
            )
        if noted.rowcount == 0:
            log.warning("entry %d: taken over by another node; left to it", entry_id)
            return "taken-over"
        log_method = log.warning if retry else log.error
        log_method("entry %d: %s at step %s: %s", entry_id, state, step, exc)
        return state


@dataclass(frozen=True)
class _Result:
    state: str  # the journal entry's new state
    outcome: str  # what the log says
    queued: bool = False  # outgoing mail or a webhook event was queued
    error: str | None = None


class _StepFailed(Exception):
    def __init__(self, step: str, error: Exception) -> None:
        super().__init__(step, error)
        self.step, self.error = step, error


def _reason(step: str, exc: BaseException) -> str:
    """The error as stored: short, and text any database takes (no NUL, valid UTF-8)."""
    text = f"{step}: {type(exc).__name__}: {exc}"[:4000].replace("\x00", "\\x00")
    return text.encode("utf-8", "replace").decode("utf-8")


def _segments(ready: list[tuple[Inbound, bool]]) -> list[tuple[list[Inbound], bool]]:
    """Runs of entries that share a transaction, in order; those that must run alone
    by themselves (and marked so)."""
    segments: list[tuple[list[Inbound], bool]] = []
    previous_alone = True  # the first entry starts a segment
    for inbound, this_alone in ready:
        if this_alone or previous_alone:
            segments.append(([inbound], this_alone))
        else:
            segments[-1][0].append(inbound)
        previous_alone = this_alone
    return segments


def _by_size(claimed: list[tuple[int, int]], most_bytes: int) -> list[list[int]]:
    """The claimed ids in order, grouped so one group's raw mail stays under
    ``most_bytes`` (a group holds at least one entry)."""
    groups: list[list[int]] = []
    total = 0
    for entry_id, size in claimed:
        if not groups or total + size > most_bytes:
            groups.append([])
            total = 0
        groups[-1].append(entry_id)
        total += size
    return groups


def _return_path(inbound: Inbound) -> str | None:
    """The envelope sender; None when unknown (IMAP mail without a Return-Path header)."""
    if inbound.source in SENDER_FROM_HEADER and not inbound.message.header("return-path"):
        return None
    return inbound.envelope_from


async def _finish(
    session: AsyncSession, node: str, segment: list[Inbound], results: list[_Result]
) -> None:
    """Record each entry's new state: one statement per state, one per quarantined
    entry. Raises ``ClaimLost`` (and the transaction rolls back) if another node took
    an entry over meanwhile: it processes the entry, so this node must not."""
    now = datetime.now(UTC)
    ours = JournalEntry.claimed_by == node
    finished: dict[str, list[int]] = {}
    written = 0
    for inbound, result in zip(segment, results, strict=True):
        if result.error is None:
            finished.setdefault(result.state, []).append(inbound.entry_id)
            continue
        done = await session.execute(
            update(JournalEntry)
            .where(JournalEntry.id == inbound.entry_id, ours)
            .values(state=result.state, error=result.error, processed_at=now, claimed_by=None)
        )
        written += done.rowcount
    for state, ids in finished.items():
        done = await session.execute(
            update(JournalEntry)
            .where(JournalEntry.id.in_(ids), ours)
            .values(state=state, error=None, processed_at=now, claimed_by=None)
        )
        written += done.rowcount
    if written != len(segment):
        raise ClaimLost(f"{len(segment) - written} of {len(segment)} entries taken over")


async def quarantined_ids(engine: AsyncEngine) -> list[int]:
    async with AsyncSession(engine) as session:
        query = select(JournalEntry.id).where(JournalEntry.state == "quarantined")
        return list(await session.scalars(query.order_by(JournalEntry.id)))
