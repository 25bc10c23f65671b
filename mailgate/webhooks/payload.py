"""What a webhook receives: the JSON body and the headers that sign it.

The body is the ticket as the API shows it (``GET /api/v1/tickets/{code}``, without
its thread), the message for events about one, and the event's own ``data``. It is
written once, at the first attempt, and every retry sends the same bytes with the
same ``X-Mailgate-Delivery``: a receiver can tell a retry from a new event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate import __version__
from mailgate.config import Settings
from mailgate.db.models import Ticket
from mailgate.localtime import utc
from mailgate.web.api import message_shapes, ticket_shapes

USER_AGENT = f"mailgate-webhooks/{__version__}"


def signature(secret: str, body: bytes) -> str:
    """``X-Mailgate-Signature``: the HMAC-SHA256 of the exact body, in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(event: str, delivery_id: str, secret: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Mailgate-Event": event,
        "X-Mailgate-Delivery": delivery_id,
        "X-Mailgate-Signature": signature(secret, body),
    }


async def bodies(
    session: AsyncSession, settings: Settings, rows: Sequence[Row], now: datetime
) -> dict[int, str]:
    """The JSON body of each delivery in ``rows`` (by row id), as the API shows its
    ticket and message ``now``."""
    ticket_ids = {row.ticket_id for row in rows if row.ticket_id is not None}
    tickets = list(await session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids))))
    shaped = await ticket_shapes(session, settings, tickets, now)
    shapes = {ticket.id: shape for ticket, shape in zip(tickets, shaped, strict=True)}
    by_id = {ticket.id: ticket for ticket in tickets}
    messages: dict[int, dict] = {}
    for ticket_id in {row.ticket_id for row in rows if row.message_id is not None}:
        if ticket_id in by_id:  # a ticket since deleted has no messages to show
            messages |= {m["id"]: m for m in await message_shapes(session, by_id[ticket_id])}
    return {row.id: _body(row, shapes.get(row.ticket_id), messages) for row in rows}


def _body(row: Row, ticket: dict | None, messages: dict[int, dict]) -> str:
    payload = {
        **(row.data or {}),
        "event": row.event,
        "delivery": row.delivery_id,
        "occurred_at": utc(row.created_at).isoformat(),
        "ticket": ticket,
    }
    if row.message_id is not None:
        payload["message"] = messages.get(row.message_id)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
