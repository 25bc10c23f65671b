"""Holding a decision's inputs still until the transaction that acts on them commits.

A rate limit counts recent events, then records one; round robin reads who got the
last ticket, then assigns the next. Two transactions doing that at once both read
the same state and both act on it. ``hold`` makes the second wait until the first
has committed, for the rest of the caller's transaction, across processes and nodes:

- PostgreSQL: a transaction-scoped advisory lock per key (a 64-bit hash of it), all
  taken in one statement in hash order, so that transactions never wait on each
  other in a circle; they go at COMMIT or ROLLBACK. Taking a key again is free.
- SQLite: its one write lock, taken at once (``BEGIN IMMEDIATE``) rather than at the
  first write, which would be after the reads. A transaction that has written holds
  it already: the driver begins transactions only at a write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# unnest() hands back the ids in the array's order and each row takes its lock
# before the next row is produced, so the locks come in the order of the array.
_ADVISORY = text("SELECT pg_advisory_xact_lock(id) FROM unnest(CAST(:ids AS bigint[])) AS id")


def key_id(key: str) -> int:
    """A stable signed 64-bit number for ``key``: the same in every process."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"mailgate-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


async def hold(session: AsyncSession, keys: Iterable[str]) -> None:
    """Wait until no other transaction holds any of ``keys``, then hold them until
    this session's transaction ends. No keys, no lock."""
    ids = sorted({key_id(key) for key in keys})
    if not ids:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(_ADVISORY, {"ids": ids})
    elif not await _sqlite_in_transaction(connection):
        await connection.execute(text("BEGIN IMMEDIATE"))


async def _sqlite_in_transaction(connection: AsyncConnection) -> bool:
    raw = await connection.get_raw_connection()
    return raw.driver_connection.in_transaction
