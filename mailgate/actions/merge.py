"""Merging a ticket into another, and splitting a message off into a ticket of its own.

A merged ticket keeps its row and code: threading follows ``merged_into_id``, so
mail quoting either code reaches the survivor. Its messages, thread references,
tags and people move (or are copied) to the survivor. The ``merged_into`` audit
event lists the messages that were its own, so its customer's portal link can still
show them, and nothing of the ticket it joined.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import ActionContext, ActionError
from mailgate.db.models import AuditEvent, Message, Participant, ThreadRef, Ticket, TicketTag
from mailgate.db.records import audit
from mailgate.localtime import local_day
from mailgate.pipeline.codes import unused_code
from mailgate.webhooks.queue import queue_event


async def merge_tickets(
    session: AsyncSession, ctx: ActionContext, source: Ticket, target: Ticket, agent: str
) -> None:
    """Merge ``source`` into ``target``; ``source`` points at ``target`` and gets
    ``[tickets] merged_status`` (Closed: it was not left unresolved)."""
    if source.id == target.id:
        raise ActionError("target", "a ticket cannot be merged into itself")
    for field, ticket in (("source", source), ("target", target)):
        if ticket.merged_into_id is not None:
            raise ActionError(field, f"{ticket.code} is already merged into another ticket")
    now = datetime.now(UTC)
    own = list(await session.scalars(select(Message.id).where(Message.ticket_id == source.id)))
    for model in (Message, ThreadRef):
        await session.execute(
            update(model).where(model.ticket_id == source.id).values(ticket_id=target.id)
        )
    await _copy_people_and_tags(session, source, target)
    audit(
        session,
        source,
        agent,
        "merged_into",
        now,
        ticket=target.code,
        old_status=source.status,
        messages=own,
    )
    audit(session, target, agent, "merged_from", now, ticket=source.code)
    source.merged_into_id = target.id
    source.status = ctx.runtime.settings.tickets.merged
    source.updated_at = target.updated_at = now
    for ticket in (source, target):
        queue_event(session, ctx.runtime.settings.webhooks, "ticket.updated", ticket)


async def messages_when_merged(session: AsyncSession, merged: Ticket) -> list[int]:
    """The ids of the messages ``merged`` had when it was merged (none for a merge
    recorded before the list was kept)."""
    data = await session.scalar(
        select(AuditEvent.data)
        .where(AuditEvent.ticket_id == merged.id, AuditEvent.action == "merged_into")
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    return list((data or {}).get("messages", []))


async def _copy_people_and_tags(session: AsyncSession, source: Ticket, target: Ticket) -> None:
    """The source's customer and CCs become CC participants of the target (so their
    mail still counts as theirs there); its tags join the target's."""
    people = await session.scalars(select(Participant).where(Participant.ticket_id == source.id))
    known = set(
        await session.scalars(select(Participant.email).where(Participant.ticket_id == target.id))
    )
    for person in people:
        if person.email not in known:
            known.add(person.email)
            session.add(
                Participant(ticket_id=target.id, email=person.email, name=person.name, role="cc")
            )
    tags = set(await session.scalars(select(TicketTag.tag).where(TicketTag.ticket_id == source.id)))
    present = set(
        await session.scalars(select(TicketTag.tag).where(TicketTag.ticket_id == target.id))
    )
    session.add_all(TicketTag(ticket_id=target.id, tag=tag) for tag in sorted(tags - present))


async def split_message(
    session: AsyncSession, ctx: ActionContext, message: Message, agent: str
) -> Ticket:
    """Move one customer message off into a new ticket of the same queue and route."""
    if message.kind != "customer":
        raise ActionError("message", "only a customer's message can be split off")
    old = await session.get(Ticket, message.ticket_id)
    count = await session.scalar(
        select(func.count()).select_from(Message).where(Message.ticket_id == old.id)
    )
    if count < 2:
        raise ActionError("message", f"it is the only message of {old.code}")
    now = datetime.now(UTC)
    new = await _ticket_like(session, ctx, old, message, now)
    message.ticket_id = new.id
    await session.execute(
        update(ThreadRef)
        .where(ThreadRef.ticket_id == old.id, ThreadRef.message_id == message.message_id)
        .values(ticket_id=new.id)
    )
    audit(session, old, agent, "split", now, ticket=new.code, message=message.id)
    audit(session, new, agent, "split_from", now, ticket=old.code, message=message.id)
    old.updated_at = now
    webhooks = ctx.runtime.settings.webhooks
    queue_event(session, webhooks, "ticket.updated", old)
    queue_event(session, webhooks, "ticket.created", new, message=message)
    return new


async def _ticket_like(session, ctx: ActionContext, old: Ticket, message: Message, now) -> Ticket:
    tickets = ctx.runtime.settings.tickets
    new = Ticket(
        code=await unused_code(session, tickets.code_prefix, local_day(now, tickets.zone)),
        subject=message.subject or old.subject,
        customer_name=message.from_name,
        customer_email=message.from_email or old.customer_email,
        queue=old.queue,
        status=tickets.start_status,
        priority=old.priority,
        assignee=old.assignee,
        locale=old.locale,
        route_address=old.route_address,
        created_at=now,
        updated_at=now,
        linked_from_id=old.id,
    )
    session.add(new)
    await session.flush()
    session.add(
        Participant(
            ticket_id=new.id, email=new.customer_email, name=new.customer_name, role="customer"
        )
    )
    return new
