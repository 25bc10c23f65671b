"""Putting outgoing mail in the outbox, inside the caller's transaction.

The pipeline writes an acknowledgement in the same transaction as the ticket change
that causes it: both commit, or neither does, so a crash can neither lose nor double
it. The delivery worker (``worker.py``) takes it from there.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailgate.db.bulk import NewRow, add_row
from mailgate.db.models import OutboxItem, OutboxRaw, Suppression, Ticket
from mailgate.outbox.compose import Outgoing


def enqueue_outgoing(
    session: AsyncSession, outgoing: Outgoing, ticket: Ticket | None
) -> OutboxItem | NewRow:
    """Add the composer's ``outgoing`` mail to the outbox in the caller's transaction,
    with its own envelope; due at once. Returns the new row (see ``add_row``).

    Raises ValueError without a Message-ID: threading replies back to the ticket
    (and matching bounces) depends on it.
    """
    message_id = outgoing.message_id.strip()
    if not message_id:
        raise ValueError("outgoing mail needs a Message-ID")
    if not outgoing.recipients:
        raise ValueError(f"outgoing mail {message_id} has no recipients")
    now = datetime.now(UTC)
    item = add_row(
        session,
        OutboxItem,
        ticket=ticket,
        kind=outgoing.kind,
        mail_from=outgoing.envelope_from,
        recipients=list(outgoing.recipients),
        message_id=message_id,
        state="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    add_row(session, OutboxRaw, item=item, raw=outgoing.raw)
    return item


async def suppressed(session: AsyncSession | AsyncConnection, addresses: Iterable[str]) -> set[str]:
    """Those of ``addresses`` (as given) that get no automatic mail now.

    An address is suppressed for a while after a hard bounce; the match ignores case.
    """
    wanted = list(addresses)
    if not wanted:
        return set()
    active = set(
        await session.scalars(
            select(func.lower(Suppression.email)).where(
                func.lower(Suppression.email).in_({a.lower() for a in wanted}),
                Suppression.until > datetime.now(UTC),
            )
        )
    )
    return {address for address in wanted if address.lower() in active}


def is_automatic(raw: bytes) -> bool:
    """Mail we send on our own (``Auto-Submitted`` other than ``no``), as opposed to
    an agent's reply relayed: only automatic mail is held back from suppressed
    addresses."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    head = parser.parsebytes(raw.partition(b"\r\n\r\n")[0])
    value = str(head.get("auto-submitted", "no")).split(";")[0].strip().lower()
    return value != "no"
