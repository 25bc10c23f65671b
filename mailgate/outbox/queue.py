"""Putting outgoing mail in the outbox, inside the caller's transaction.

The pipeline writes the acknowledgement in the same transaction as the ticket that
causes it: both commit, or neither does, so a crash can neither lose nor double it.
"""

from __future__ import annotations

import email.policy
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import OutboxItem, Suppression

_SMTP = email.policy.SMTP.clone(max_line_length=78)
_SMTPUTF8 = email.policy.SMTPUTF8.clone(max_line_length=78)


def serialise(message: EmailMessage) -> bytes:
    """The wire form with CRLF line ends; SMTPUTF8 only when plain ASCII cannot say it."""
    try:
        return message.as_bytes(policy=_SMTP)
    except UnicodeEncodeError:
        return message.as_bytes(policy=_SMTPUTF8)


def enqueue(
    session: AsyncSession,
    message: EmailMessage,
    *,
    kind: str,
    envelope_from: str,
    recipients: Sequence[str],
    ticket_id: int | None,
) -> OutboxItem:
    message_id = message["Message-ID"]
    if not message_id:
        raise ValueError("outgoing mail needs a Message-ID")
    now = datetime.now(UTC)
    item = OutboxItem(
        ticket_id=ticket_id,
        kind=kind,
        mail_from=envelope_from,
        recipients=list(recipients),
        message_id=str(message_id),
        raw=serialise(message),
        state="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(item)
    return item


async def suppressed(session: AsyncSession, addresses: Iterable[str]) -> set[str]:
    """Those of ``addresses`` that get no automatic mail now (after a hard bounce)."""
    wanted = {address.lower() for address in addresses}
    if not wanted:
        return set()
    rows = await session.scalars(
        select(Suppression.email).where(
            func.lower(Suppression.email).in_(wanted), Suppression.until > datetime.now(UTC)
        )
    )
    return {address.lower() for address in rows}
