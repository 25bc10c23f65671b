"""Small writers shared by the pipeline and the ticket actions.

An audit event for every change to a ticket, and attachments whose content is kept
once as a blob however often it is sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.bulk import add_row
from mailgate.db.models import Attachment, AuditEvent, Blob, Ticket
from mailgate.db.upsert import insert_ignoring_conflicts


def audit(
    session: AsyncSession,
    subject: Ticket,
    actor: str,
    action: str,
    now: datetime,
    /,
    **data: object,
) -> None:
    """Record ``action`` on ``subject`` by ``actor``; ``None`` values are left out.

    (``data`` may name another ticket: ``ticket="TCK-…"``.)"""
    add_row(
        session,
        AuditEvent,
        ticket=subject,
        at=now,
        actor=actor,
        action=action,
        data={key: value for key, value in data.items() if value is not None},
    )


async def add_attachment(
    session: AsyncSession,
    message: object,
    filename: str,
    content_type: str,
    data: bytes,
    sha256: str,
) -> None:
    """Attach ``data`` to ``message`` (a Message, or ``add_row``'s handle for one)."""
    await insert_ignoring_conflicts(session, Blob, sha256=sha256, size=len(data), data=data)
    add_row(
        session,
        Attachment,
        message=message,
        filename=filename,
        content_type=content_type,
        size=len(data),
        sha256=sha256,
    )
