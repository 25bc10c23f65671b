"""Opening the database: one async engine per process, tuned per backend.

SQLite runs in WAL mode with ``synchronous=FULL``: a commit that answered ``250`` must
survive a power cut, and WAL lets readers (the web) run beside the writer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from mailgate.config import Database
from mailgate.db import sqlite_driver

# The database gives up a little before the intake's own timeout, so a write that
# was answered 451 is not committed behind the sender's back a moment later.
LOCK_WAIT_SHARE = 0.8


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
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


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


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
