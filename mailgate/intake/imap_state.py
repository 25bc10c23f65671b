"""What the IMAP intake remembers and shows: its position in each mailbox (in the
database), its live status (in memory, for the status page), and the lease that lets
one node at a time work a mailbox.

The position is UIDVALIDITY plus the last UID whose message was journaled and marked.
The lease is a PostgreSQL session advisory lock held on a connection of its own: if
the node dies, its connection drops and the lock goes with it. SQLite means a single
node, so no lease is needed there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailgate.db.models import ImapMailboxState
from mailgate.db.session import is_postgres

log = logging.getLogger(__name__)


@dataclass
class ImapStatus:
    """One mailbox as the status page and metrics see it."""

    name: str
    holds_lease: bool = False  # this node is the one working the mailbox
    connected: bool = False
    idling: bool = False
    last_fetch_at: datetime | None = None  # last time the folder was checked for mail
    last_error: str | None = None
    last_error_at: datetime | None = None
    backlog: int = 0  # new messages found but not yet journaled and marked
    messages_total: int = 0  # messages in the folder, as the server last said
    journaled: int = 0  # messages journaled by this process
    left_in_mailbox: list[int] = field(default_factory=list)  # UIDs over the size limit

    def error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = datetime.now(UTC)


@dataclass(frozen=True)
class Position:
    uidvalidity: int
    last_uid: int


async def load_position(engine: AsyncEngine, name: str) -> Position | None:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(ImapMailboxState.uidvalidity, ImapMailboxState.last_uid).where(
                    ImapMailboxState.name == name
                )
            )
        ).first()
    return Position(row.uidvalidity, row.last_uid) if row else None


async def save_position(engine: AsyncEngine, name: str, position: Position) -> None:
    values = {
        "uidvalidity": position.uidvalidity,
        "last_uid": position.last_uid,
        "updated_at": datetime.now(UTC),
    }
    async with engine.begin() as connection:
        changed = await connection.execute(
            update(ImapMailboxState).where(ImapMailboxState.name == name).values(**values)
        )
        if changed.rowcount == 0:  # the lease makes this node the only writer of the row
            await connection.execute(insert(ImapMailboxState).values(name=name, **values))


def lease_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for a mailbox name."""
    digest = hashlib.sha256(b"mailgate-imap:" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaseLost(Exception):
    """The connection that held the mailbox lease is gone; another node may work it."""


class MailboxLease:
    """``async with MailboxLease(...)`` waits until this node may work the mailbox."""

    def __init__(self, engine: AsyncEngine, name: str, retry_seconds: float = 3.0) -> None:
        self._engine = engine
        self._name = name
        self._key = lease_key(name)
        self._retry = retry_seconds
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> MailboxLease:
        if not is_postgres(self._engine):
            return self
        while True:  # a holder that dies sends no signal: poll for its lock
            if await self._try():
                break
            await asyncio.sleep(self._retry * random.uniform(0.5, 1.5))
        log.info("imap %s: this node holds the mailbox lease", self._name)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Dropping the session releases the lock even if an unlock would fail.
            await connection.invalidate()
            await connection.close()

    async def check(self) -> None:
        """Raise LeaseLost unless the lock's connection still answers."""
        if self._connection is None:
            return
        try:
            await self._connection.execute(text("SELECT 1"))
        except Exception as exc:
            raise LeaseLost(f"lost the lease on mailbox {self._name}: {exc}") from exc

    async def _try(self) -> bool:
        connection = await self._engine.connect()
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            query = text("SELECT pg_try_advisory_lock(:key)")
            held = (await connection.execute(query, {"key": self._key})).scalar()
        except BaseException:
            await connection.close()
            raise
        if held:
            self._connection = connection
        else:
            await connection.close()
        return bool(held)
