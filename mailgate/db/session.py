"""Opening the database: one async engine per process, tuned per backend.

SQLite runs in WAL mode with ``synchronous=FULL``: a commit that answered ``250`` must
survive a power cut, and WAL lets readers (the web) run beside the writer.
``transaction_within`` bounds a whole transaction in time, connection included, for
writes whose caller must know that what did not commit in time never will.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)

from mailgate.config import Database
from mailgate.db import sqlite_driver

# The database gives up a little before the intake's own timeout, so a write that
# was answered 451 is not committed behind the sender's back a moment later.
LOCK_WAIT_SHARE = 0.8
# PostgreSQL: no statement of ours runs near this long, so one that has not been
# answered by then went into a dead link (a network that drops packets sends no
# reset, and TCP would wait many minutes): it fails, the connection is dropped, and
# the worker goes on with a new one once the database is back.
STATEMENT_SECONDS = 15.0
CONNECT_SECONDS = 10.0


def engine_for(database: Database) -> AsyncEngine:
    """The engine for the ``[database]`` settings."""
    return create_engine(database.url, database.write_timeout_seconds * LOCK_WAIT_SHARE)


def create_engine(url: str, lock_wait_seconds: float = 5.0) -> AsyncEngine:
    """An engine for ``url``; creates the directory of a SQLite file if needed.

    ``lock_wait_seconds`` bounds how long a SQLite writer waits for a lock.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, lock_wait_seconds)
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"timeout": CONNECT_SECONDS, "command_timeout": STATEMENT_SECONDS},
    )


def sqlite_pragmas(lock_wait_seconds: float) -> tuple[str, ...]:
    """What every connection to a SQLite database sets first."""
    return (
        "journal_mode=WAL",
        "synchronous=FULL",
        f"busy_timeout={int(lock_wait_seconds * 1000)}",
        "foreign_keys=ON",
    )


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The file of a SQLite ``engine``; None for PostgreSQL or an in-memory database."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


def _sqlite_engine(url: str, lock_wait_seconds: float) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_driver_name() == "aiosqlite":
        sqlite_driver.register()
        parsed = parsed.set(drivername=f"sqlite+{sqlite_driver.DRIVER}")
    engine = create_async_engine(parsed, connect_args={"timeout": lock_wait_seconds})
    pragmas = sqlite_pragmas(lock_wait_seconds)

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    event.listen(engine.sync_engine, "connect", on_connect)
    return engine


def sessions(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database cannot answer a trivial query."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


@asynccontextmanager
async def transaction_within(engine: AsyncEngine, seconds: float) -> AsyncIterator[AsyncConnection]:
    """A transaction that commits within ``seconds`` or not at all (TimeoutError).

    Everything is bounded: the pool's checkout (a connect, a ping), the statements and
    the COMMIT. At the deadline the work is cancelled and the connection dropped at
    once, neither asked to roll back nor returned to the pool (its link may be dead):
    the server rolls the transaction back when it sees the connection close. Only a
    deadline that falls while COMMIT is on its way leaves the outcome unknown.
    """
    connection = engine.connect()
    try:
        async with asyncio.timeout(seconds):
            await connection.start()
            await connection.begin()
            yield connection
            await connection.commit()
    except BaseException:
        await _drop(connection)
        raise
    await connection.close()


async def _drop(connection: AsyncConnection) -> None:
    """Discard ``connection`` without a word to the server (asyncpg's terminate
    closes the socket now; SQLAlchemy's own close would wait for an answer)."""
    if connection.sync_connection is None:  # never checked out
        return
    if not connection.invalidated and is_postgres(connection.engine):
        connection.sync_connection.connection.driver_connection.terminate()
    await connection.invalidate()
    await connection.close()


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"
