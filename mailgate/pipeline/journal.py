"""The journal: every raw message is committed here before anyone is told ``250``.

Concurrent intake sessions share commits (group commit): one writer task takes
whatever arrivals are waiting and inserts them in one transaction, so a busy server
pays one fsync per batch rather than one per message, and an idle one still commits
each message at once.

A sender that is told ``451`` must find its message not stored: each arrival's write
has a deadline a little before the sender's answer is due (``LOCK_WAIT_SHARE`` of
the timeout), and a write that has not committed by the earliest deadline of its
batch is abandoned before COMMIT (rolled back). Only when the deadline falls while
COMMIT is on its way can a ``451``'d message be stored; the sender's retry, the same
bytes, is then recognised as a duplicate by the pipeline.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailgate.db.models import JournalEntry, JournalRaw
from mailgate.db.session import LOCK_WAIT_SHARE, sqlite_file, transaction_within
from mailgate.pipeline.journal_sqlite import SqliteAppender

log = logging.getLogger(__name__)

MAX_BATCH = 256


# Sources of mail that came without an envelope (IMAP; ``mailgate deliver`` run with
# no --sender, as from procmail): the sender is the topmost Return-Path header's, and
# unknown, not the null sender of a bounce, without one.
SENDER_FROM_HEADER = frozenset({"imap", "mda"})


@dataclass(frozen=True)
class Arrival:
    """A message as an intake adapter received it: envelope and raw bytes."""

    source: str
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes
    peer: str = ""
    helo: str = ""
    trusted: bool = False  # came by one of [auth] trusted_paths (mailgate/trust.py)


class JournalUnavailable(Exception):
    """The message could not be committed; the sender must retry later."""


@dataclass
class _Pending:
    arrival: Arrival
    done: asyncio.Future[int]
    deadline: float  # event loop time by which its write must have committed


class Journal:
    """Durable storage of arrivals; ``store`` returns only after the commit."""

    def __init__(
        self, engine: AsyncEngine, timeout: float, on_commit: Callable[[], None] = lambda: None
    ) -> None:
        self._engine = engine
        self._timeout = timeout
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        # The last commit's error until one goes through again (for /healthz).
        self.failing: str | None = None
        self._writer: asyncio.Task | None = None
        path = sqlite_file(engine)
        self._appender = SqliteAppender(path, timeout * LOCK_WAIT_SHARE) if path else None

    async def store(self, arrival: Arrival) -> int:
        """Commit ``arrival`` and return its journal id, or raise JournalUnavailable."""
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="journal-writer")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout * LOCK_WAIT_SHARE
        pending = _Pending(arrival, loop.create_future(), deadline)
        self._queue.put_nowait(pending)
        try:
            async with asyncio.timeout(self._timeout):
                return await asyncio.shield(pending.done)
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal write took over {self._timeout:g}s") from exc

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def append(self, arrivals: Sequence[Arrival]) -> list[int]:
        """Commit ``arrivals`` together now, in a transaction of their own (an IMAP
        batch), and return their ids; a database error is raised as it is."""
        deadline = asyncio.get_running_loop().time() + self._timeout * LOCK_WAIT_SHARE
        ids = await self._insert(list(arrivals), deadline)
        self._on_commit()
        return ids

    async def close(self) -> None:
        """Commit what is already queued, then stop the writer."""
        if self._writer is not None and not self._writer.done():
            self._queue.put_nowait(None)
            await self._writer
        if self._appender is not None:
            appender, self._appender = self._appender, None
            await appender.close()

    async def _write_loop(self) -> None:
        closing = False
        while not closing:
            batch: list[_Pending] = []
            item = await self._queue.get()
            while item is not None:
                batch.append(item)
                if len(batch) == MAX_BATCH or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            closing = item is None
            if batch:
                await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        now = asyncio.get_running_loop().time()
        for pending in batch:
            if pending.deadline <= now:  # waited behind a slow write: answered 451
                _settle(pending.done, exc=JournalUnavailable("no time left to write it"))
        batch = [pending for pending in batch if pending.deadline > now]
        if not batch:
            return
        try:
            deadline = min(pending.deadline for pending in batch)
            ids = await self._insert([p.arrival for p in batch], deadline)
        except asyncio.CancelledError:
            for pending in batch:
                _settle(pending.done, exc=JournalUnavailable("shutting down"))
            raise
        except Exception as exc:  # any database failure means "try again later"
            log.error("journal commit failed for %d message(s): %s", len(batch), exc)
            self.failing = str(exc) or type(exc).__name__
            for pending in batch:
                _settle(pending.done, exc=JournalUnavailable(str(exc)))
            return
        self.failing = None
        for pending, entry_id in zip(batch, ids, strict=True):
            _settle(pending.done, result=entry_id)
        self._on_commit()

    async def _insert(self, arrivals: list[Arrival], deadline: float) -> list[int]:
        """Commit by ``deadline`` (event loop time, which is ``time.monotonic``) or
        raise with nothing stored."""
        if self._appender is not None:  # SQLite: a thread of its own, one hop per commit
            return await self._appender.insert(entry_rows(arrivals), deadline)
        seconds = deadline - asyncio.get_running_loop().time()
        return await insert_entries(self._engine, arrivals, seconds)


def _settle(future: asyncio.Future, result: int | None = None, exc: Exception | None = None):
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
        future.exception()  # mark retrieved: a timed-out caller no longer waits for it
    else:
        future.set_result(result)


async def insert_entries(
    engine: AsyncEngine, arrivals: Sequence[Arrival], seconds: float = 10.0
) -> list[int]:
    """Insert ``arrivals`` as pending journal entries in one transaction that commits
    within ``seconds`` (checkout included) or not at all (``transaction_within``).

    On PostgreSQL the statements also get that timeout, so a backend waiting for a
    lock gives up too once its client has gone.
    """
    async with transaction_within(engine, seconds) as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}")
            )
        return await write_entries(connection, entry_rows(arrivals))


async def write_entries(connection: AsyncConnection, rows: Sequence[dict]) -> list[int]:
    """Insert journal ``rows`` (as ``entry_rows`` makes them) in the connection's
    transaction: the entries, then their bytes. Returns their ids in order."""
    entries = [{key: value for key, value in row.items() if key != "raw"} for row in rows]
    if connection.dialect.name == "postgresql":
        ordered = insert(JournalEntry).returning(JournalEntry.id, sort_by_parameter_order=True)
        ids = [row.id for row in await connection.execute(ordered, entries)]
    else:
        # SQLAlchemy can only keep RETURNING in parameter order on SQLite by inserting
        # row by row. SQLite has one writer and hands out rowids in ascending order as
        # the rows go in, so the sorted ids of one batched INSERT are in order too.
        result = await connection.execute(insert(JournalEntry).returning(JournalEntry.id), entries)
        ids = sorted(row.id for row in result)
    raws = [{"entry_id": i, "raw": row["raw"]} for i, row in zip(ids, rows, strict=True)]
    await connection.execute(insert(JournalRaw), raws)
    return ids


def entry_rows(arrivals: Sequence[Arrival]) -> list[dict]:
    """The journal rows for ``arrivals``: pending, fingerprinted, received now."""
    now = datetime.now(UTC)
    return [
        {
            "received_at": now,
            "source": a.source,
            "mail_from": a.mail_from,
            "recipients": list(a.recipients),
            "peer": a.peer[:255],
            "helo": a.helo[:255],
            "trusted_path": a.trusted,
            "size": len(a.raw),
            "sha256": hashlib.sha256(a.raw).hexdigest(),
            "raw": a.raw,
            "state": "pending",
            "attempts": 0,
        }
        for a in arrivals
    ]
