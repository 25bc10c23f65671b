"""Apply: write what a message means, in the caller's single transaction.

A new ticket or a reply on an existing one, the message with its attachments,
participants, thread references, audit events, and the outgoing mail it causes
(acknowledgement, agent notifications) all commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import queue_mail
from mailgate.actions.notify import notify_agents, responsible_agents
from mailgate.config import Route
from mailgate.db.bulk import add_row
from mailgate.db.models import Message, Participant, ThreadRef, Ticket, TicketTag
from mailgate.db.records import add_attachment, audit
from mailgate.localtime import local_day
from mailgate.outbox.compose import Composer, InReplyTo, Outgoing
from mailgate.outbox.ratelimit import ack_key
from mailgate.pipeline.codes import without_codes
from mailgate.pipeline.inbound import Inbound
from mailgate.pipeline.known import Known
from mailgate.pipeline.system_senders import no_reply_reason
from mailgate.pipeline.thread import ThreadDecision
from mailgate.runtime import RuntimeConfig
from mailgate.webhooks.queue import queue_event


@dataclass(frozen=True)
class Applied:
    ticket: Ticket
    created: bool
    outgoing: tuple[Outgoing, ...]
    events: int = 0  # webhook deliveries queued


async def apply(
    session: AsyncSession,
    known: Known,
    runtime: RuntimeConfig,
    composer: Composer,
    inbound: Inbound,
    decision: ThreadDecision,
    route: Route,
    assignee: str | None,
) -> Applied:
    """Nothing here needs the new rows' ids: they link by relationship, so a whole
    batch of entries is written in one flush. ``known`` learns what is written."""
    now = datetime.now(UTC)
    created = decision.ticket is None
    if created:
        follow_up = decision.follow_up_of is not None
        ticket = await _open_ticket(
            session, known, runtime, inbound, route, assignee, now, follow_up
        )
        _record_origin(session, ticket, decision, now)
    else:
        ticket = decision.ticket
        if not (inbound.automatic or inbound.is_spam):  # an out-of-office reply leaves it solved
            _reopen_if_waiting(session, runtime, ticket, inbound.sender_email, now)
    ticket.updated_at = now
    message = await _add_message(session, known, ticket, inbound, now)
    await _add_participants(session, known, runtime, ticket, inbound)
    outgoing = await _outgoing(session, known, runtime, composer, inbound, ticket, route, created)
    events = 0
    if not ticket.spam:  # a ticket held back as spam is no one's business yet
        event = "ticket.created" if created else "message.created"
        events = queue_event(session, runtime.settings.webhooks, event, ticket, message=message)
    return Applied(ticket, created, tuple(outgoing), events)


async def _open_ticket(
    session, known: Known, runtime, inbound, route, assignee, now, follow_up: bool
) -> Ticket:
    settings = runtime.settings.tickets
    subject = inbound.message.subject
    if follow_up:  # the new ticket's own code only, not the closed one's beside it
        subject = without_codes(subject)
    ticket = Ticket(
        code=await known.new_code(settings.code_prefix, local_day(now, settings.zone)),
        subject=subject[:1000],
        customer_name=inbound.sender_name[:255],
        customer_email=inbound.customer_email,
        queue=route.queue,
        status=settings.start_status,
        priority=route.priority,
        assignee=assignee,
        locale=route.locale,
        route_address=route.address.lower(),
        created_at=now,
        updated_at=now,
        spam=inbound.is_spam,
    )
    session.add(ticket)
    for tag in dict.fromkeys(route.tags):
        add_row(session, TicketTag, ticket=ticket, tag=tag)
    email, name = ticket.customer_email, ticket.customer_name
    add_row(session, Participant, ticket=ticket, email=email, name=name, role="customer")
    known.opened(ticket)
    audit(session, ticket, "mailgate", "created", now, queue=route.queue, assignee=assignee)
    if inbound.is_spam:
        audit(session, ticket, "mailgate", "held_as_spam", now, verdict=inbound.spam.summary)
    return ticket


def _record_origin(session, ticket: Ticket, decision: ThreadDecision, now) -> None:
    """Link a follow-up of a closed ticket; note a ticket a stranger quoted."""
    if decision.follow_up_of is not None:
        old = decision.follow_up_of
        ticket.linked_from_id = old.id
        audit(session, old, "mailgate", "follow_up", now, ticket=ticket.code)
        audit(session, ticket, "mailgate", "follow_up_of", now, ticket=old.code, note=decision.note)
    if decision.refers_to is not None:
        old = decision.refers_to
        audit(session, ticket, "mailgate", "refers_to", now, ticket=old.code, note=decision.note)


def _reopen_if_waiting(session, runtime, ticket: Ticket, actor: str, now) -> None:
    """A customer reply moves a pending or solved ticket back to Open (the first open
    status, else the first new one)."""
    tickets = runtime.settings.tickets
    if tickets.category_of(ticket.status) in ("pending", "solved"):
        new_status = tickets.working_status
        audit(session, ticket, actor, "status", now, old=ticket.status, new=new_status)
        ticket.status = new_status
        ticket.solved_at = None


def message_values(inbound: Inbound, ticket: Ticket, kind: str, now, **fields) -> dict:
    """A thread entry for ``inbound``: its sender, IDs and fingerprint; ``fields`` the rest."""
    parsed = inbound.message
    return dict(
        ticket=ticket,
        journal_id=inbound.entry_id,
        kind=kind,
        message_id=parsed.message_id,
        content_sha256=inbound.fingerprint,
        from_name=inbound.sender_name[:255],
        from_email=inbound.sender_email,
        subject=parsed.subject,
        auto_reason=inbound.auto_reason,
        created_at=now,
        **fields,
    )


async def _add_message(session, known: Known, ticket: Ticket, inbound: Inbound, now):
    parsed = inbound.message
    values = message_values(
        inbound,
        ticket,
        "customer",
        now,
        to_addrs=[a.email for a in parsed.to],
        cc_addrs=[a.email for a in parsed.cc],
        text=parsed.text,
        quoted_text=parsed.quoted_text,
        html=parsed.html,
        search_text=parsed.html_text,
        flag=inbound.flag,
        spam_check=inbound.spam.result if inbound.spam else None,
        spam_verdict=inbound.spam.stored() if inbound.spam else None,
    )
    message = add_row(session, Message, **values)
    for a in parsed.attachments:
        await add_attachment(session, message, a.filename, a.content_type, a.data, a.sha256)
    add_row(session, ThreadRef, message_id=parsed.message_id, ticket=ticket)
    known.stored(inbound)
    known.referenced(parsed.message_id, ticket)
    return message


async def _add_participants(session, known: Known, runtime, ticket: Ticket, inbound) -> None:
    """The customer's To/Cc, minus our own addresses and agents, join as CC participants."""
    agents = runtime.agent_emails()
    wanted = {}
    for address in (*inbound.message.to, *inbound.message.cc):
        email = address.email.lower()
        if email and not runtime.routes.is_ours(email) and email not in agents:
            wanted.setdefault(email, address.name)
    if not wanted:
        return
    present = await known.participants(ticket)
    for email, name in wanted.items():
        if email not in present:
            add_row(session, Participant, ticket=ticket, email=email, name=name[:255], role="cc")
            known.joined(ticket, email)


async def _outgoing(session, known: Known, runtime, composer, inbound, ticket, route, created):
    """Acknowledge a new ticket; tell the responsible agents (within their limits).
    Nothing for automatic mail, spam, or mail on a ticket held back as spam."""
    if inbound.automatic or inbound.is_spam or ticket.spam:
        return []
    now = ticket.updated_at
    parent = InReplyTo(inbound.message.message_id, inbound.message.references)
    outgoing = []
    if created:
        ack = await _acknowledgement(session, known, runtime, composer, ticket, route, parent, now)
        if ack is not None:
            queue_mail(session, ticket, ack)
            outgoing.append(ack)
    details = dict(
        event="new" if created else "reply",
        author=f"{inbound.sender_name} <{inbound.sender_email}>".strip(),
        text=inbound.message.text,
        attachments=[a.filename for a in inbound.message.attachments],
        auto_reason=None,
    )
    outgoing += await notify_agents(
        session,
        runtime,
        ticket,
        responsible_agents(ticket, route),
        lambda agent: composer.agent_notification(ticket, route, parent, agent, **details),
        now,
        limits=known,
    )
    return outgoing


async def _acknowledgement(session, known: Known, runtime, composer, ticket, route, parent, now):
    reason = await _no_acknowledgement(known, runtime, ticket.customer_email, now)
    if reason:
        audit(session, ticket, "mailgate", "ack_skipped", now, reason=reason)
        return None
    return composer.acknowledgement(ticket, route, parent, ticket.customer_name)


async def _no_acknowledgement(known: Known, runtime, email: str, now) -> str | None:
    """Why ``email`` gets no acknowledgement now, if it gets none (the rate limit is
    only counted against when the rest allows one)."""
    reason = no_reply_reason(email, bool(await known.suppressed([email])))
    if reason:
        return reason
    if await known.take([(ack_key(email), runtime.settings.tickets.ack_limit)], now):
        rate = runtime.settings.tickets.ack_rate_limit
        return f"acknowledgement rate limit reached for {email} ({rate})"
    return None
