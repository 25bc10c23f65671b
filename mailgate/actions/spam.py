"""*Not spam*: release a ticket held back as spam, with the acknowledgement it held back."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import ActionContext, ActionError, customer_thread, queue_mail, route_of
from mailgate.db.models import OutboxItem, Ticket
from mailgate.db.records import audit
from mailgate.outbox.queue import suppressed
from mailgate.pipeline.system_senders import no_reply_reason
from mailgate.webhooks.queue import queue_event


async def release_spam(session: AsyncSession, ctx: ActionContext, ticket: Ticket, agent: str):
    """The ticket joins the inbox; its customer gets the acknowledgement held back
    (unless one went out already, or the address takes none: see ``no_reply_reason``)."""
    if not ticket.spam:
        raise ActionError("spam", f"{ticket.code} is not held back as spam")
    now = datetime.now(UTC)
    ticket.spam = False
    ticket.updated_at = now
    audit(session, ticket, agent, "not_spam", now)
    queue_event(session, ctx.runtime.settings.webhooks, "ticket.created", ticket)  # held back
    acknowledged = await session.scalar(
        select(OutboxItem.id)
        .where(OutboxItem.ticket_id == ticket.id, OutboxItem.kind == "acknowledgement")
        .limit(1)
    )
    if acknowledged is not None:
        return
    email = ticket.customer_email
    reason = no_reply_reason(email, bool(await suppressed(session, [email])))
    if reason:
        audit(session, ticket, "mailgate", "ack_skipped", now, reason=reason)
        return
    route = route_of(ctx.runtime, ticket)
    parent = await customer_thread(session, ticket)
    queue_mail(
        session, ticket, ctx.composer.acknowledgement(ticket, route, parent, ticket.customer_name)
    )
