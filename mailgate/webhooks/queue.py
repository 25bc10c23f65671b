"""Queueing a webhook event, inside the caller's transaction.

An event is written with the change it tells of: both commit or neither does, so a
rolled-back change sends nothing and a committed one is never lost. One row per
``[[webhooks]]`` receiver that wants the event; the worker (``worker.py``) sends it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import WEBHOOK_EVENTS, Webhook
from mailgate.db.bulk import add_row
from mailgate.db.models import Message, Ticket, WebhookDelivery


def queue_event(
    session: AsyncSession,
    webhooks: Sequence[Webhook],
    event: str,
    ticket: Ticket,
    *,
    message: Message | Any = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Queue ``event`` about ``ticket`` for each of ``webhooks`` (the config's
    ``settings.webhooks``) that wants it; returns how many deliveries were queued.

    ``message`` (a stored message, or the row ``add_row`` returned for one) is sent
    beside the ticket; ``data`` (JSON values) is added to the payload as it is now,
    under its own keys: ``{"rating": ...}``, ``{"sla": ...}``. The ticket itself is
    read when the event is first sent. Raises ValueError for an unknown event.
    """
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    wanted = [hook for hook in webhooks if event in hook.events]
    now = datetime.now(UTC)
    for hook in wanted:
        add_row(
            session,
            WebhookDelivery,
            delivery_id=str(uuid.uuid4()),
            webhook=hook.name,
            event=event,
            ticket=ticket,
            message=message,
            data=data,
            state="queued",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    return len(wanted)
