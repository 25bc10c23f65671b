"""Writing many new rows at once: ``add_row`` into a session that collects them.

The ORM spends more on each new object (instrumented attributes, cascades, the unit
of work) than the INSERT itself costs, and a pipeline batch adds half a dozen rows
per mail. A session given ``collect_new_rows`` keeps rows added with ``add_row`` as
plain values instead; ``NewRows.flush`` writes them after the session's own flush
(which gives the ORM objects they point at their ids), with one executemany per
table and set of columns. Any other session gets an ORM object as usual, so the same
writers serve the pipeline and the ticket actions.

Collected rows are written, not tracked: nothing in the transaction may read them
back before ``flush`` (the pipeline's ``Known`` follows what it writes instead).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Table, insert, inspect
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Base

_INFO_KEY = "mailgate.new_rows"


class NewRow:
    """A collected row: a model's column values, and links to the rows or objects its
    relationships name, made into foreign keys once those have ids."""

    __slots__ = ("id", "links", "needs_id", "table", "values")

    def __init__(self, model: type[Base], values: dict[str, Any]) -> None:
        self.table: Table = model.__table__
        self.values = values
        self.links: list[tuple[str, object, str]] = []
        self.needs_id = False
        self.id: int | None = None
        for key, pairs in _relationships(model).items():
            if key in values:
                target = values.pop(key)
                for local, remote in pairs:
                    self.links.append((local, target, remote))
                    values[local] = None
                if isinstance(target, NewRow):
                    target.needs_id = True

    def resolved(self) -> dict[str, Any]:
        for local, target, remote in self.links:
            if target is not None:
                is_row = isinstance(target, NewRow)
                self.values[local] = target.id if is_row else getattr(target, remote)
        return self.values


class NewRows:
    """The rows a transaction adds with ``add_row``, written by ``flush``."""

    def __init__(self) -> None:
        self._rows: list[NewRow] = []

    def add(self, model: type[Base], values: dict[str, Any]) -> NewRow:
        row = NewRow(model, values)
        self._rows.append(row)
        return row

    async def flush(self, session: AsyncSession) -> None:
        """Flush the session, then insert the collected rows, parents first."""
        await session.flush()
        groups: dict[tuple[Table, tuple[str, ...]], list[NewRow]] = {}
        for row in self._rows:
            groups.setdefault((row.table, tuple(sorted(row.values))), []).append(row)
        order = {table: n for n, table in enumerate(Base.metadata.sorted_tables)}
        for (table, _), rows in sorted(groups.items(), key=lambda item: order[item[0][0]]):
            params = [row.resolved() for row in rows]
            if any(row.needs_id for row in rows):
                await _insert_with_ids(session, table, rows, params)
            else:
                await session.execute(insert(table), params)
        self._rows.clear()


def collect_new_rows(session: AsyncSession) -> NewRows:
    """From now on ``add_row`` into ``session`` collects rows for ``NewRows.flush``."""
    rows = NewRows()
    session.info[_INFO_KEY] = rows
    return rows


def add_row(session: AsyncSession, model: type[Base], /, **values: Any) -> Any:
    """Add a new ``model`` row with ``values`` (relationships by their key) to the
    session's transaction. Returns the ORM object, or in a session that collects rows
    the ``NewRow``: either is what another new row's relationship may name."""
    collected: NewRows | None = session.info.get(_INFO_KEY)
    if collected is None:
        instance = model(**values)
        session.add(instance)
        return instance
    return collected.add(model, values)


async def _insert_with_ids(
    session: AsyncSession, table: Table, rows: list[NewRow], params: list[dict]
) -> None:
    key = table.primary_key.columns.values()[0]
    if session.bind.dialect.name == "postgresql":
        statement = insert(table).returning(key, sort_by_parameter_order=True)
        ids = [row[0] for row in await session.execute(statement, params)]
    else:  # SQLite hands out ascending rowids in insertion order (see journal.py)
        ids = sorted(row[0] for row in await session.execute(insert(table).returning(key), params))
    for row, new_id in zip(rows, ids, strict=True):
        row.id = new_id


@cache
def _relationships(model: type[Base]) -> dict[str, list[tuple[str, str]]]:
    """Each many-to-one relationship of ``model``: [(foreign key, the target's key)]."""
    mapper = inspect(model)
    return {
        rel.key: [(local.key, remote.key) for local, remote in rel.local_remote_pairs]
        for rel in mapper.relationships
    }
