"""Changing a ticket's status, priority, assignee and tags.

Every value is checked before anything changes, so a bad one (an ActionError)
leaves the ticket as it was. Each change is an audit event (and a webhook event). A
ticket that becomes solved tells its customer so; a ticket given to another agent
tells that agent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import (
    UNSET,
    ActionContext,
    Unset,
    agent_name,
    customer_thread,
    queue_mail,
    route_of,
)
from mailgate.actions.notify import notify_agents
from mailgate.actions.values import Wanted, checked, current_tags
from mailgate.db.models import Message, Ticket, TicketTag
from mailgate.db.records import audit
from mailgate.outbox.compose import InReplyTo
from mailgate.outbox.queue import suppressed
from mailgate.webhooks.queue import queue_event


async def update_ticket(
    session: AsyncSession,
    ctx: ActionContext,
    ticket: Ticket,
    agent: str,
    *,
    status: str | None = None,
    priority: str | None = None,
    assignee: str | Unset | None = UNSET,
    add_tags: Iterable[str] = (),
    remove_tags: Iterable[str] = (),
) -> list[str]:
    """Apply the given changes as ``agent`` (an agent's address, or another actor such
    as an API client); returns the changes made, human readable."""
    current = await current_tags(session, ticket)
    wanted = checked(ctx.runtime, current, status, priority, assignee, add_tags, remove_tags)
    now = datetime.now(UTC)
    old_status = ticket.status
    changes = [
        *await _set_status(session, ctx, ticket, agent, wanted.status, now),
        *_set_priority(session, ticket, agent, wanted.priority, now),
        *await _set_assignee(session, ctx, ticket, agent, wanted.assignee, now),
        *await _set_tags(session, ticket, agent, current, wanted, now),
    ]
    if changes:
        ticket.updated_at = now
        queue_event(session, ctx.runtime.settings.webhooks, _event(ctx, old_status, ticket), ticket)
    return changes


def _event(ctx: ActionContext, old_status: str, ticket: Ticket) -> str:
    """``ticket.solved`` for the change that solves the ticket (whatever else it
    changed with it), ``ticket.updated`` for any other."""
    category = ctx.runtime.settings.tickets.category_of
    solved = category(ticket.status) == "solved" and category(old_status) != "solved"
    return "ticket.solved" if solved else "ticket.updated"


async def _set_status(session, ctx: ActionContext, ticket: Ticket, agent, status, now) -> list[str]:
    if status is None or status == ticket.status:
        return []
    tickets = ctx.runtime.settings.tickets
    old = ticket.status
    audit(session, ticket, agent, "status", now, old=old, new=status)
    ticket.status = status
    if tickets.category_of(status) != "solved":
        ticket.solved_at = None
    elif tickets.category_of(old) != "solved":
        ticket.solved_at = now
        await _tell_solved(session, ctx, ticket, now)
    return [f"status: {old} → {status}"]


async def _tell_solved(session, ctx: ActionContext, ticket: Ticket, now) -> None:
    if await suppressed(session, [ticket.customer_email]):
        reason = f"{ticket.customer_email} is suppressed after a hard bounce"
        audit(session, ticket, "mailgate", "solved_mail_skipped", now, reason=reason)
        return
    parent = await customer_thread(session, ticket)
    route = route_of(ctx.runtime, ticket)
    name = ctx.runtime.settings.tickets.label_of(ticket.status, route.locale)
    queue_mail(session, ticket, ctx.composer.solved(ticket, route, parent, name))


def _set_priority(session, ticket: Ticket, agent, priority, now) -> list[str]:
    if priority is None or priority == ticket.priority:
        return []
    audit(session, ticket, agent, "priority", now, old=ticket.priority, new=priority)
    old, ticket.priority = ticket.priority, priority
    return [f"priority: {old} → {priority}"]


async def _set_assignee(session, ctx: ActionContext, ticket: Ticket, agent, assignee, now):
    if assignee is UNSET or assignee == ticket.assignee:
        return []
    audit(session, ticket, agent, "assignee", now, old=ticket.assignee, new=assignee)
    old, ticket.assignee = ticket.assignee, assignee
    if assignee is not None and assignee != agent.lower():
        await _tell_assignee(session, ctx, ticket, agent, assignee, now)
    return [f"assignee: {old or 'nobody'} → {assignee or 'nobody'}"]


async def _tell_assignee(session, ctx: ActionContext, ticket: Ticket, agent, assignee, now):
    """The new assignee gets the ticket's latest customer message, with the code."""
    latest = await session.scalar(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.kind == "customer")
        .order_by(Message.id.desc())
        .limit(1)
    )
    route = route_of(ctx.runtime, ticket)
    parent = InReplyTo(latest.message_id if latest else f"<{ticket.code}@mailgate>")
    details = dict(
        event="assigned",
        assigned_by=agent_name(ctx.runtime, agent) or agent,
        author=f"{latest.from_name} <{latest.from_email}>".strip() if latest else "",
        text=latest.text if latest else "",
        attachments=[],
        auto_reason=None,
    )
    await notify_agents(
        session,
        ctx.runtime,
        ticket,
        [assignee],
        lambda to: ctx.composer.agent_notification(ticket, route, parent, to, **details),
        now,
    )


async def _set_tags(session, ticket: Ticket, agent, current: set[str], wanted: Wanted, now):
    added = [tag for tag in wanted.add_tags if tag not in current]
    removed = [tag for tag in wanted.remove_tags if tag not in wanted.add_tags]
    for tag in added:
        session.add(TicketTag(ticket_id=ticket.id, tag=tag))
        audit(session, ticket, agent, "tag", now, tag=tag)
    for tag in removed:
        audit(session, ticket, agent, "untag", now, tag=tag)
    if removed:
        await session.execute(
            delete(TicketTag).where(TicketTag.ticket_id == ticket.id, TicketTag.tag.in_(removed))
        )
    return [f"tag +{tag}" for tag in added] + [f"tag -{tag}" for tag in removed]
