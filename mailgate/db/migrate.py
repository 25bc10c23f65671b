"""Schema upgrades with Alembic, run over mailgate's own async engine.

On PostgreSQL an advisory lock serialises upgrades, so several nodes starting at once
do not race each other through the same migration.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")
UPGRADE_LOCK_ID = 0x6D61696C67617465  # "mailgate"


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": UPGRADE_LOCK_ID})
    command.upgrade(_alembic_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to the newest revision (or to ``revision``)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


def _pending(connection: Connection) -> bool:
    current = MigrationContext.configure(connection).get_current_heads()
    head = ScriptDirectory.from_config(_alembic_config()).get_heads()
    return set(current) != set(head)


async def needs_upgrade(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        return await connection.run_sync(_pending)
