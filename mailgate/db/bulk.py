"""Writing many new rows at once: ``flush_new`` for a session full of them.

The ORM's unit of work spends more per object than the INSERT itself costs, and a
pipeline batch adds a dozen rows per mail. ``flush_new`` lets the unit of work write
only the new objects that others point at (they need their generated ids first), then
writes the rest with one executemany per table and set of columns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, inspect
from sqlalchemy.ext.asyncio import AsyncSession


async def flush_new(session: AsyncSession) -> None:
    """Flush ``session``: its new objects that nothing points at go in bulk.

    Those objects are written, not tracked: they leave the session without ids, so
    only call this when nothing reads them afterwards. Their rows are made before
    the first write, so a SQLite writer holds the database lock for the INSERTs only.
    """
    pending = list(session.new)
    pointed_at = {id(target) for obj in pending for target in _targets(obj)}
    groups: dict[tuple, list[_Row]] = {}
    for obj in pending:
        if id(obj) not in pointed_at:
            row = _Row(obj)
            groups.setdefault((type(obj), tuple(sorted(row.values))), []).append(row)
            session.expunge(obj)
    await session.flush()  # the rest: pointed-at new rows and changes to loaded ones
    for (model, _), rows in groups.items():
        await session.execute(insert(model.__table__), [row.resolved() for row in rows])


def _targets(obj: object) -> list[object]:
    state = inspect(obj)
    found = (state.dict.get(rel.key) for rel in state.mapper.relationships)
    return [target for target in found if target is not None]


class _Row:
    """The column values set on an object, and the foreign keys its relationships
    give once their targets have ids."""

    def __init__(self, obj: object) -> None:
        state = inspect(obj)
        values = state.dict
        self.values: dict[str, Any] = {
            attr.key: values[attr.key] for attr in state.mapper.column_attrs if attr.key in values
        }
        self._links = []
        for rel in state.mapper.relationships:
            target = values.get(rel.key)
            if target is not None:
                self._links += [
                    (local.key, target, remote.key) for local, remote in rel.local_remote_pairs
                ]
                self.values.update((local.key, None) for local, _ in rel.local_remote_pairs)

    def resolved(self) -> dict[str, Any]:
        for key, target, remote_key in self._links:
            self.values[key] = getattr(target, remote_key)
        return self.values
