"""Putting outgoing mail in the outbox, inside the caller's transaction.

The pipeline writes an acknowledgement in the same transaction as the ticket change
that causes it: both commit, or neither does, so a crash can neither lose nor double
it. The delivery worker (``worker.py``) takes it from there.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailgate.db.models import OutboxItem, Suppression, Ticket
from mailgate.outbox.compose import Outgoing

ADDRESS_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc")
_LINE_END = re.compile(rb"\r\n|\r|\n")


def serialise(message: EmailMessage, envelope: Iterable[str] = ()) -> bytes:
    """The wire form of ``message``, with CRLF line ends.

    Non-ASCII display names and subjects travel as RFC 2047 encoded words, which
    every smarthost accepts. Only a non-ASCII address (``jörg@…``) cannot be written
    that way, so only then is the message written as SMTPUTF8 (raw UTF-8 headers).
    """
    policy = email.policy.SMTPUTF8 if _needs_utf8(message, envelope) else email.policy.SMTP
    # The generator already writes CRLF; the substitution guards odd payloads that
    # carry bare CR or LF, so the stored bytes are exactly what goes on the wire.
    return _LINE_END.sub(b"\r\n", message.as_bytes(policy=policy))


def _needs_utf8(message: EmailMessage, envelope: Iterable[str]) -> bool:
    values = [str(value) for name in ADDRESS_HEADERS for value in message.get_all(name, [])]
    addresses = [address for _, address in getaddresses(values)]
    return not all(address.isascii() for address in [*addresses, *envelope])


def enqueue(
    session: AsyncSession,
    message: EmailMessage,
    *,
    kind: str,
    envelope_from: str,
    recipients: Sequence[str],
    ticket: Ticket | None,
) -> OutboxItem:
    """Add ``message`` to the outbox in the caller's transaction; due at once.

    Raises ValueError without a Message-ID: threading replies back to the ticket
    (and matching bounces) depends on it.
    """
    message_id = str(message["Message-ID"] or "").strip()
    if not message_id:
        raise ValueError("outgoing mail needs a Message-ID")
    if not recipients:
        raise ValueError(f"outgoing mail {message_id} has no recipients")
    now = datetime.now(UTC)
    item = OutboxItem(
        ticket=ticket,
        kind=kind,
        mail_from=envelope_from,
        recipients=list(recipients),
        message_id=message_id,
        raw=serialise(message, [envelope_from, *recipients]),
        state="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(item)
    return item


def enqueue_outgoing(
    session: AsyncSession, outgoing: Outgoing, ticket: Ticket | None
) -> OutboxItem:
    """``enqueue`` a message the composer made, with its own envelope."""
    return enqueue(
        session,
        outgoing.message,
        kind=outgoing.kind,
        envelope_from=outgoing.envelope_from,
        recipients=outgoing.recipients,
        ticket=ticket,
    )


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
