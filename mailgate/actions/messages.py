"""Agent replies (relayed to the customer and the CC participants) and internal notes.

Both store a Message on the ticket with its attachments, under names made safe the
way customers' are (``safe_filename``); a reply made from mail keeps
the agent's own Message-ID (and content fingerprint), so a second delivery of that
mail is recognised as a duplicate and never relayed twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import make_msgid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import (
    ActionContext,
    ActionError,
    agent_name,
    customer_thread,
    known_agent,
    queue_mail,
    route_of,
)
from mailgate.actions.notify import involved_agents, notify_agents
from mailgate.actions.signatures import signature_of, signature_to_add
from mailgate.db.models import Message, Participant, ThreadRef, Ticket
from mailgate.db.records import add_attachment, audit
from mailgate.outbox.compose import InReplyTo, NewAttachment, Reply
from mailgate.pipeline.parse import safe_filename
from mailgate.webhooks.queue import queue_event

_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&.+^_-]*/[a-z0-9][a-z0-9!#$&.+^_-]*")


async def agent_reply(
    session: AsyncSession,
    ctx: ActionContext,
    ticket: Ticket,
    agent: str,
    text: str,
    attachments: Sequence[NewAttachment] = (),
    *,
    journal_id: int | None = None,
    source_message_id: str | None = None,
    content_sha256: str = "",
) -> Message:
    """Relay ``agent``'s answer, under their signature, to the customer and the CC
    participants; the stored message keeps what the agent wrote."""
    agent, attachments = known_agent(ctx.runtime, agent), _safe_names(attachments)
    _not_empty(text, attachments)
    now = datetime.now(UTC)
    route = route_of(ctx.runtime, ticket)
    customer, cc = await _recipients(session, ticket)
    signature = signature_to_add(text, await signature_of(session, ctx.runtime, agent))
    name = agent_name(ctx.runtime, agent)
    reply = Reply(name, text, customer, cc, tuple(attachments), signature)
    outgoing = ctx.composer.agent_reply(
        ticket, route, await customer_thread(session, ticket), reply
    )
    queue_mail(session, ticket, outgoing)
    message = _message(ctx, ticket, "agent", agent, text, now, journal_id, content_sha256)
    message.message_id = source_message_id or outgoing.message_id
    message.subject = outgoing.subject
    message.to_addrs = [email for email, _ in customer]
    message.cc_addrs = [email for email, _ in cc]
    await _store(session, ticket, message, attachments, thread_ref=bool(source_message_id))
    _answered(session, ctx, ticket, agent, now)
    audit(session, ticket, agent, "reply", now, message=message.id, to=message.to_addrs)
    queue_event(session, ctx.runtime.settings.webhooks, "message.created", ticket, message=message)
    return message


async def add_note(
    session: AsyncSession,
    ctx: ActionContext,
    ticket: Ticket,
    agent: str,
    text: str,
    attachments: Sequence[NewAttachment] = (),
    *,
    journal_id: int | None = None,
    source_message_id: str | None = None,
    content_sha256: str = "",
) -> Message:
    """An internal note: the other agents on the ticket hear of it, the customer never."""
    agent, attachments = known_agent(ctx.runtime, agent), _safe_names(attachments)
    _not_empty(text, attachments)
    now = datetime.now(UTC)
    route = route_of(ctx.runtime, ticket)
    domain = route.address.rpartition("@")[2]
    message = _message(ctx, ticket, "note", agent, text, now, journal_id, content_sha256)
    message.message_id = source_message_id or make_msgid(domain=domain)
    message.subject = ticket.subject
    await _store(session, ticket, message, attachments, thread_ref=True)
    ticket.updated_at = now
    audit(session, ticket, agent, "note", now, message=message.id)
    queue_event(session, ctx.runtime.settings.webhooks, "message.created", ticket, message=message)
    author = agent_name(ctx.runtime, agent) or agent
    names = [a.filename for a in attachments]
    parent = InReplyTo(message.message_id)
    await notify_agents(
        session,
        ctx.runtime,
        ticket,
        involved_agents(ticket, route, besides=agent),
        lambda to: ctx.composer.note_notification(
            ticket, route, parent, to, author=author, text=text, attachments=names
        ),
        now,
    )
    return message


def _safe_names(attachments: Sequence[NewAttachment]) -> tuple[NewAttachment, ...]:
    """``attachments`` under safe file names and plain content types: a browser or
    mail program chose them (``../../x.html``, ``text/html; name=x.exe``), and they go
    out to customers and other agents."""
    safe = []
    for n, item in enumerate(attachments, 1):
        content_type = item.content_type.partition(";")[0].strip().lower()
        if not _CONTENT_TYPE.fullmatch(content_type):
            content_type = "application/octet-stream"
        name = safe_filename(item.filename, n, content_type)
        safe.append(dataclasses.replace(item, filename=name, content_type=content_type))
    return tuple(safe)


def _not_empty(text: str, attachments: Sequence[NewAttachment]) -> None:
    if not text.strip() and not attachments:
        raise ActionError("text", "the message is empty")


async def _recipients(session: AsyncSession, ticket: Ticket):
    """((customer,), CC participants) as (email, name) pairs."""
    rows = await session.scalars(
        select(Participant).where(Participant.ticket_id == ticket.id).order_by(Participant.id)
    )
    cc = tuple((p.email, p.name) for p in rows if p.role != "customer")
    customer = ((ticket.customer_email, ticket.customer_name),)
    return customer, tuple(pair for pair in cc if pair[0] != ticket.customer_email)


def _answered(session, ctx: ActionContext, ticket: Ticket, agent: str, now: datetime) -> None:
    """The first answer sets the first-response time; a new ticket is now Open (when
    the set has an open status)."""
    tickets = ctx.runtime.settings.tickets
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    new_status = tickets.working_status
    if tickets.category_of(ticket.status) == "new" and tickets.category_of(new_status) == "open":
        audit(session, ticket, agent, "status", now, old=ticket.status, new=new_status)
        ticket.status = new_status
    ticket.updated_at = now


def _message(ctx, ticket, kind, agent, text, now, journal_id, content_sha256) -> Message:
    return Message(
        ticket_id=ticket.id,
        journal_id=journal_id,
        kind=kind,
        content_sha256=content_sha256,
        from_email=agent,
        from_name=agent_name(ctx.runtime, agent)[:255],
        to_addrs=[],
        cc_addrs=[],
        text=text,
        agent_authenticated=True,
        created_at=now,
    )


async def _store(session, ticket, message: Message, attachments, *, thread_ref: bool) -> None:
    """Add ``message`` with its attachments; ``thread_ref``: mail naming its Message-ID
    threads to the ticket (outgoing mail has its reference already)."""
    session.add(message)
    await session.flush()
    for attachment in attachments:
        digest = hashlib.sha256(attachment.data).hexdigest()
        await add_attachment(
            session,
            message,
            attachment.filename,
            attachment.content_type,
            attachment.data,
            digest,
        )
    if thread_ref:
        session.add(ThreadRef(message_id=message.message_id, ticket_id=ticket.id))
