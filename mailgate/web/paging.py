"""One page of the inbox: its tickets, where they sit in the whole list, and the
cursors of the newer and older pages.

Pages are keyset ranges (``listing``): ``cursor`` continues after a ticket, ``before``
goes back from one. The position and the total are counts, so an agent sees
"51-100 of 230" however the page was reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Ticket
from mailgate.web.listing import Filters, after_cursor, encode_cursor


@dataclass(frozen=True)
class TicketPage:
    tickets: list[Ticket]
    total: int
    start: int  # the position of the first ticket shown, from 1 (0: nothing shown)
    newer: str | None  # the ``before`` cursor of the page above, if there is one
    older: str | None  # the ``cursor`` of the page below, if there is one

    @property
    def end(self) -> int:
        return self.start + len(self.tickets) - 1 if self.tickets else 0


async def read_page(
    session: AsyncSession,
    filters: Filters,
    query: Callable[[bool], Select],
    cursor: str = "",
    before: str = "",
) -> TicketPage:
    """The page after ``cursor`` (or before ``before``, else the first) of the list
    ``query(backwards)`` selects; a bad cursor raises ``BadCursor``."""
    size = filters.page_size
    if before:
        found = after_cursor(query(True), filters, before, backwards=True)
        tickets = list(await session.scalars(found.limit(size)))[::-1]
    else:
        found = after_cursor(query(False), filters, cursor) if cursor else query(False)
        tickets = list(await session.scalars(found.limit(size)))
    total = await count_rows(session, query(False))
    if not tickets:
        return TicketPage([], total, 0, None, None)
    first = encode_cursor(tickets[0], filters.sort)
    above = 0  # the first page: nothing comes before it, no need to count (a search's cost)
    if cursor or before:
        above = await count_rows(
            session, after_cursor(query(False), filters, first, backwards=True)
        )
    last = encode_cursor(tickets[-1], filters.sort)
    older = last if above + len(tickets) < total else None
    return TicketPage(tickets, total, above + 1, first if above else None, older)


async def count_rows(session: AsyncSession, query: Select) -> int:
    """How many rows ``query`` selects."""
    return await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
