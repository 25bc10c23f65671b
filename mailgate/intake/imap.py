"""IMAP intake: one task per ``[[imap]]`` mailbox turns its new mail into journal entries.

Order of work, per batch of UIDs: fetch (``BODY.PEEK[]``, at most 200 messages and
about 32 MiB), journal the batch in one transaction, only then mark it (``\\Seen``,
move or delete), only then record the last UID. A crash between the commit and the
record refetches the batch on restart, which the pipeline's Message-ID + content dedupe
absorbs; the other order could lose mail, so it never happens. The next batch is
fetched while the current one is committed, and a shutdown lets a started batch finish.

Sizes are asked for once per pass (``UID SEARCH LARGER``), not per batch. A message
over ``max_message_bytes`` is neither fetched nor marked: it stays unread in the
mailbox, its UID is listed on the status and logged, and the mailbox moves on.
Errors never leave ``run()``: they are logged, shown on ``status`` and retried with
capped exponential backoff and jitter. Between passes the intake waits in IDLE when
the server offers it (re-issued every ``min(10 min, poll_seconds)``, which also
catches mail that arrived in the instant before IDLE began), else polls.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from aioimaplib import AioImapException, CommandTimeout
from sqlalchemy.exc import SQLAlchemyError

from mailgate.config import Imap
from mailgate.intake.imap_source import ImapError, ImapSource
from mailgate.intake.imap_state import (
    ImapStatus,
    MailboxLease,
    Position,
    load_position,
    save_position,
)
from mailgate.intake.imap_wire import Batch, plan_batches, return_path
from mailgate.pipeline.journal import Arrival, Journal

log = logging.getLogger(__name__)

BATCH_COUNT = 400  # messages per UID FETCH and per journal transaction
BATCH_BYTES = 32 << 20  # and about this many bytes, so memory stays bounded
SMALL_BYTES = BATCH_BYTES // BATCH_COUNT  # sizes are looked up for larger messages only
IDLE_RENEW_SECONDS = 600.0  # servers may drop an IDLE after 30 minutes
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 300.0


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: 1 s doubling to 5 min, jittered."""
    return min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** max(0, failures - 1)) * random.uniform(0.5, 1)


class ImapIntake:
    """Works one mailbox for as long as ``run()`` runs; ``status`` shows how it goes."""

    def __init__(
        self,
        config: Imap,
        journal: Journal,
        node_id: str = "",
        max_message_bytes: int = 26_214_400,
        *,
        timeout: float = 30.0,
        lease_retry_seconds: float = 3.0,
        trusted: Callable[[], bool] = lambda: False,
    ) -> None:
        """``trusted``: is the mailbox one of ``[auth] trusted_paths`` ("imap:NAME") now?"""
        self.config = config
        self._trusted = trusted
        self.status = ImapStatus(config.name)
        self._journal = journal
        self._engine = journal.engine
        self._node = node_id
        self._limit = max_message_bytes
        self._timeout = timeout
        self._lease_retry = lease_retry_seconds
        self._failures = 0

    async def run(self) -> None:
        """Never returns and never raises, except when cancelled."""
        while True:
            try:
                async with MailboxLease(self._engine, self.config.name, self._lease_retry) as lease:
                    self.status.holds_lease = True
                    try:
                        await self._session(lease)
                    finally:
                        self.status.holds_lease = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failures += 1
                delay = backoff(self._failures)
                self.status.error(_describe(exc, self.config))
                log.error(
                    "imap %s: %s (retry in %.1fs)", self.config.name, self.status.last_error, delay
                )
                await asyncio.sleep(delay)

    async def _session(self, lease: MailboxLease) -> None:
        source = ImapSource(self.config, self._timeout)
        try:
            selected = await source.open()
            self._failures = 0
            self.status.connected = True
            log.info(
                "imap %s: connected to %s (node %s)", self.config.name, source.where, self._node
            )
            position = await self._start_position(selected.uidvalidity)
            if self.config.after.startswith("move:"):
                await source.ensure_folder(self.config.after.removeprefix("move:"))
            while True:
                position = await self._drain(source, lease, position)
                await self._wait_for_mail(source)
        finally:
            self.status.connected = self.status.idling = False
            await source.close()

    async def _start_position(self, uidvalidity: int) -> Position:
        stored = await load_position(self._engine, self.config.name)
        if stored is not None and stored.uidvalidity == uidvalidity:
            return stored
        if stored is not None:
            log.warning(
                "imap %s: UIDVALIDITY changed (%d -> %d): fetching the folder again",
                self.config.name, stored.uidvalidity, uidvalidity,
            )  # fmt: skip
        position = Position(uidvalidity, 0)
        await save_position(self._engine, self.config.name, position)
        return position

    async def _drain(self, source: ImapSource, lease: MailboxLease, position: Position) -> Position:
        """Take every message above the position, batch by batch, until none is left."""
        while True:
            uids = await source.new_uids(position.last_uid)
            self.status.last_fetch_at = datetime.now(UTC)
            self.status.backlog = len(uids)
            self.status.messages_total = source.exists
            if not uids:
                return position
            small = min(SMALL_BYTES, self._limit)  # sizes are looked up above this only
            sizes = await source.sizes_over(position.last_uid, small)
            batches = plan_batches(uids, sizes, self._limit, BATCH_COUNT, BATCH_BYTES, small)
            position = await self._take_all(source, lease, position, batches)

    async def _take_all(
        self, source: ImapSource, lease: MailboxLease, position: Position, batches: list[Batch]
    ) -> Position:
        """Fetch batch n+1 while batch n is committed and marked, so the IMAP round
        trips hide behind the database's (two batches in memory at most)."""
        ahead = asyncio.ensure_future(source.fetch(batches[0].fetch))
        try:
            for index, batch in enumerate(batches):
                fetched = await ahead
                if index + 1 < len(batches):
                    ahead = asyncio.ensure_future(source.fetch(batches[index + 1].fetch))
                await lease.check()
                position = await self._settle(source, position, batch, fetched)
        finally:
            _discard(ahead)
        return position

    async def _settle(
        self, source: ImapSource, position: Position, batch: Batch, fetched: list[tuple[int, bytes]]
    ) -> Position:
        settled = Position(position.uidvalidity, batch.last_uid)
        # A shutdown must not split commit, mark and record: the batch finishes first.
        await _uninterrupted(self._commit(source, settled, fetched), self._timeout)
        self._report_too_big(batch.too_big)
        self.status.backlog = max(0, self.status.backlog - len(batch.fetch) - len(batch.too_big))
        self.status.messages_total = source.exists
        return settled

    async def _commit(
        self, source: ImapSource, settled: Position, fetched: Sequence[tuple[int, bytes]]
    ) -> None:
        if fetched:
            arrivals = [self._arrival(uid, raw, settled.uidvalidity) for uid, raw in fetched]
            await self._journal.append(arrivals)
            self.status.journaled += len(arrivals)
            await source.mark([uid for uid, _ in fetched], self.config.after)
        await save_position(self._engine, self.config.name, settled)

    def _arrival(self, uid: int, raw: bytes, uidvalidity: int) -> Arrival:
        config = self.config
        where = f"imap://{config.host}:{config.port}/{config.folder};UIDVALIDITY={uidvalidity}"
        return Arrival(
            source="imap",
            mail_from=return_path(raw),
            recipients=(config.deliver_to,),
            raw=raw,
            peer=f"{where}/;UID={uid}",  # RFC 5092 URL: which message this was
            trusted=self._trusted(),
        )

    def _report_too_big(self, too_big: Sequence[tuple[int, int]]) -> None:
        for uid, size in too_big:
            message = (
                f"message UID {uid} in {self.config.folder} is {size} bytes, over the "
                f"limit of {self._limit}: left unread in the mailbox, not journaled"
            )
            self.status.error(message)
            self.status.left_in_mailbox = [*self.status.left_in_mailbox[-99:], uid]
            log.warning("imap %s: %s", self.config.name, message)

    async def _wait_for_mail(self, source: ImapSource) -> None:
        if not source.can_idle:
            await asyncio.sleep(self.config.poll_seconds)
            return
        self.status.idling = True
        try:
            await source.idle(min(IDLE_RENEW_SECONDS, self.config.poll_seconds))
        finally:
            self.status.idling = False


async def _uninterrupted(work: Awaitable[None], grace: float) -> None:
    """Await ``work``; if cancelled meanwhile, give it ``grace`` seconds to finish first."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task}, timeout=grace)
        _discard(task)
        raise


def _discard(task: asyncio.Future) -> None:
    """Cancel a task no one will await, and keep its failure from being reported."""
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


def _describe(exc: Exception, config: Imap) -> str:
    """An error as one line for the status page."""
    if isinstance(exc, ImapError):
        return str(exc)
    where = f"{config.host}:{config.port}"
    if isinstance(exc, TimeoutError | CommandTimeout):
        return f"{where} did not answer in time"
    if isinstance(exc, AioImapException):
        return f"IMAP protocol error with {where}: {exc}"
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
    return f"{exc.__class__.__name__}: {exc}"
