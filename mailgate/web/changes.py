"""What changed on tickets since a cursor, read from the database.

Every change an agent page shows leaves a row with a growing id: a message (mail in,
a reply, a note) or an audit event (a new ticket, a status or assignee change, a
merge...). A cursor is the pair of the highest ids seen, so any node can answer
"what happened since" for a browser that was served by another node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailgate.db.models import AuditEvent, Message, Ticket

BATCH = 500  # rows per source and look; more than that at once: the page reloads
_CURSOR = re.compile(r"(\d{1,18})-(\d{1,18})", re.ASCII)


@dataclass(frozen=True)
class Cursor:
    message: int
    audit: int

    def __str__(self) -> str:
        return f"{self.message}-{self.audit}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        found = _CURSOR.fullmatch(text.strip())
        return cls(int(found[1]), int(found[2])) if found else None

    def past(self, key: tuple[str, int]) -> bool:
        """Whether the row ``key`` (a change's source and id) is beyond this cursor."""
        source, row = key
        return row > (self.message if source == "message" else self.audit)

    def after(self, changes: list[Change]) -> Cursor:
        """This cursor moved past ``changes``."""
        messages = [c.id for c in changes if c.source == "message"]
        audits = [c.id for c in changes if c.source == "audit"]
        return Cursor(max([self.message, *messages]), max([self.audit, *audits]))


@dataclass(frozen=True)
class Change:
    """One row that changed a ticket, with what deciding who may hear of it takes."""

    source: str  # "message" or "audit"
    id: int
    ticket_id: int
    code: str
    queue: str
    assignee: str | None
    spam: bool
    what: str  # the message's kind, or the event's action

    @property
    def key(self) -> tuple[str, int]:
        return self.source, self.id


async def current_cursor(connection: AsyncConnection) -> Cursor:
    """The cursor of everything committed so far."""
    row = (
        await connection.execute(
            select(
                select(func.max(Message.id)).scalar_subquery(),
                select(func.max(AuditEvent.id)).scalar_subquery(),
            )
        )
    ).one()
    return Cursor(row[0] or 0, row[1] or 0)


async def changes_since(connection: AsyncConnection, cursor: Cursor) -> list[Change]:
    """The messages and events beyond ``cursor``, oldest first, up to ``BATCH`` each."""
    changes = []
    for source, model, what, low in (
        ("message", Message, Message.kind, cursor.message),
        ("audit", AuditEvent, AuditEvent.action, cursor.audit),
    ):
        rows = await connection.execute(
            select(
                model.id,
                Ticket.id,
                Ticket.code,
                Ticket.queue,
                Ticket.assignee,
                Ticket.spam,
                what,
            )
            .join(Ticket, Ticket.id == model.ticket_id)
            .where(model.id > low)
            .order_by(model.id)
            .limit(BATCH)
        )
        changes += [Change(source, *row) for row in rows]
    return changes
