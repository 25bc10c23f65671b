"""Telling a database outage from a failure of the work at hand.

A worker that counts failures against the items it works on (and quarantines them
after a few) must not count the database's own failures: a dropped connection, a
server shutting down, a full disk or a lock held too long say nothing about the mail.
``is_outage`` reads that from the error itself; ``reachable`` asks the database, for
the errors that do not say (a pool timeout, a connection lost between statements).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.db.session import ping

PROBE_SECONDS = 5.0
# SQLite primary result codes: BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL.
_SQLITE_OUTAGES = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
# PostgreSQL SQLSTATE classes: connection exception, insufficient resources (disk full,
# out of memory, too many connections), shutdown or start-up, system (I/O) error.
_POSTGRES_OUTAGES = ("08", "53", "57P", "58")


class DatabaseOutage(ConnectionError):
    """The database failed, not the work: the same work is to be tried again later."""


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the database (or the way to it) failed."""
    if isinstance(error, OSError | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlite_code = getattr(error.orig, "sqlite_errorcode", None)
    if sqlite_code is not None:
        return sqlite_code & 0xFF in _SQLITE_OUTAGES
    return (getattr(error.orig, "sqlstate", None) or "").startswith(_POSTGRES_OUTAGES)


async def reachable(engine: AsyncEngine, seconds: float = PROBE_SECONDS) -> bool:
    """Whether the database answers a trivial query within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await ping(engine)
    except Exception:  # whatever stops the probe means the database is not there
        return False
    return True


async def raise_if_outage(engine: AsyncEngine, error: Exception) -> None:
    """Raise ``DatabaseOutage`` if ``error`` came from the database failing."""
    if is_outage(error) or not await reachable(engine):
        raise DatabaseOutage(f"{type(error).__name__}: {error}") from error
