"""``INSERT ... ON CONFLICT DO NOTHING`` for whichever backend the session runs on."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_ignoring_conflicts(session: AsyncSession, model: type, **values: object) -> None:
    """Insert a row unless one with the same key exists (content-addressed blobs...)."""
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model).values(**values).on_conflict_do_nothing()
    await session.execute(statement)


async def upsert(session: AsyncSession, model: type, values: dict, update: dict) -> None:
    """Insert ``values`` as a row, or set ``update`` on the row with the same key."""
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    keys = [column.name for column in model.__table__.primary_key.columns]
    statement = dialect.insert(model).values(**values)
    await session.execute(statement.on_conflict_do_update(index_elements=keys, set_=update))
