"""CSV downloads: the ticket list (API and inbox) and the report tables.

The ticket list is written as it is read, one keyset page at a time, each in a
session of its own: memory stays flat however many tickets match, and no
transaction is held open while a slow client reads. Cells that a spreadsheet would
run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return) are written with a leading apostrophe, so a subject such as
``=HYPERLINK(...)`` stays text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailgate.db.models import Ticket
from mailgate.localtime import utc
from mailgate.web.downloads import content_disposition
from mailgate.web.listing import message_counts, tags_by_ticket

BATCH = 500  # tickets per query and per write
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TICKET_COLUMNS = (
    "code",
    "subject",
    "status",
    "priority",
    "queue",
    "customer_name",
    "customer_email",
    "assignee",
    "tags",
    "created_at",
    "updated_at",
    "first_response_at",
    "solved_at",
    "messages",
    "spam",
)


def safe_cell(value: object) -> str:
    """``value`` as a cell's text that no spreadsheet reads as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_line(cells: Iterable[object]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([safe_cell(cell) for cell in cells])
    return out.getvalue().encode("utf-8")


async def stream_csv(
    request: web.Request, filename: str, header: Iterable[str], rows: AsyncIterator[list]
) -> web.StreamResponse:
    """Send ``header`` and then ``rows`` (lists of lists of cells) as a CSV download.

    Everything that can be refused is checked before this is called: once the
    header is sent, the status is 200."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": content_disposition(filename),
            "X-Content-Type-Options": "nosniff",
        }
    )
    await response.prepare(request)
    await response.write(csv_line(header))
    async for batch in rows:
        await response.write(b"".join(csv_line(row) for row in batch))
    await response.write_eof()
    return response


def export_name(what: str) -> str:
    return f"mailgate-{what}-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"


async def ticket_rows(
    engine: AsyncEngine, first: Select, after: Callable[[Ticket], Select]
) -> AsyncIterator[list]:
    """The rows of the tickets ``first`` selects (sorted), BATCH at a time; the next
    batch is ``after(last ticket of this one)``, a keyset continuation."""
    query = first
    while True:
        async with AsyncSession(engine) as session:
            tickets = list(await session.scalars(query.limit(BATCH)))
            ids = [ticket.id for ticket in tickets]
            tags = await tags_by_ticket(session, ids)
            counts = await message_counts(session, ids)
        if tickets:
            yield [_ticket_row(t, tags.get(t.id, []), counts.get(t.id, 0)) for t in tickets]
        if len(tickets) < BATCH:
            return
        query = after(tickets[-1])


def _ticket_row(ticket: Ticket, tags: list[str], messages: int) -> list:
    return [
        ticket.code,
        ticket.subject,
        ticket.status,
        ticket.priority,
        ticket.queue,
        ticket.customer_name,
        ticket.customer_email,
        ticket.assignee or "",
        " ".join(tags),
        *(
            utc(moment).isoformat() if moment else ""
            for moment in (
                ticket.created_at,
                ticket.updated_at,
                ticket.first_response_at,
                ticket.solved_at,
            )
        ),
        messages,
        "true" if ticket.spam else "false",
    ]
