"""Warning and breach notices: which are due for a ticket, and sending one set.

Before a target is missed (``warn_before`` ahead of its due time) the responsible
agents (the assignee, else the queue's agents) get a warning; once it is missed the
assignee, the queue's agents and the admins get a breach notice, the ticket moves to
``escalate_to`` if the policy names one, and an audit event names the target. Each
notice goes once per target, and for ``next_response`` once per exchange.

A ticket's notices are decided and sent in one transaction that first holds the
ticket (``db.locks.hold``) and then looks at what was sent already: two timers on two
nodes take turns, and the second finds the first's notices recorded. The unique key
of ``sla_notices`` makes a double notice impossible even so: the loser's insert
fails and its transaction, mail and all, rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailgate.actions import ActionContext
from mailgate.actions.base import route_of
from mailgate.actions.notify import involved_agents, notify_agents, responsible_agents
from mailgate.actions.update import update_ticket
from mailgate.config import Settings, Sla
from mailgate.db.locks import hold
from mailgate.db.models import SlaNotice, Ticket
from mailgate.db.records import audit
from mailgate.db.session import sessions
from mailgate.sla.spans import parse_duration
from mailgate.sla.state import clock_runs, store
from mailgate.sla.tickets import TARGET_NAMES, TicketSla, policy_for, tickets_sla
from mailgate.webhooks.queue import queue_event

ACTOR = "mailgate"


@dataclass(frozen=True)
class Notice:
    kind: str  # warning, breach
    target: str  # first_response, next_response, resolution
    round: str  # the exchange of next_response (its due time); "" for the others
    due_at: datetime


def warn_before(policy: Sla) -> timedelta:
    return parse_duration(policy.warn_before) if policy.warn_before else timedelta()


def longest_warning(settings: Settings) -> timedelta:
    return max((warn_before(policy) for policy in settings.sla), default=timedelta())


def notices_due(policy: Sla, sla: TicketSla, now: datetime) -> list[Notice]:
    """The notices a running ticket's targets call for at ``now`` (sent or not): a
    breach for each target past due, else a warning for one due within
    ``warn_before``. ``warn_before`` is wall-clock time before the due time."""
    times = (sla.due.first_response, sla.due.next_response, sla.due.resolution)
    found = []
    for target, due in zip(TARGET_NAMES, times, strict=True):
        if due is None:
            continue
        round_ = due.isoformat() if target == "next_response" else ""
        if due <= now:
            found.append(Notice("breach", target, round_, due))
        elif policy.warn_before and due - warn_before(policy) <= now:
            found.append(Notice("warning", target, round_, due))
    return found


async def notify_ticket(
    engine: AsyncEngine, ctx: ActionContext, ticket_id: int, now: datetime
) -> int:
    """Send the notices ``ticket_id`` calls for at ``now`` (SLA time) that no one has
    sent; returns how many were sent (0 when another node won the race)."""
    runtime = ctx.runtime
    settings = runtime.settings
    try:
        async with sessions(engine)() as session:
            await hold(session, [f"sla:{ticket_id}"])
            ticket = await session.get(Ticket, ticket_id)
            policy = policy_for(settings, ticket) if ticket else None
            if ticket is None or policy is None or not clock_runs(settings, ticket):
                return 0
            sla = (await store(session, settings, [ticket], now))[ticket.id]
            sent = (await _sent(session, [ticket.id])).get(ticket.id, set())
            wanted = _unsent(policy, sla, sent, now)
            for notice in wanted:
                await _send(session, ctx, ticket, policy, notice)
            await session.commit()
    except IntegrityError:  # another node recorded the same notice first
        return 0
    return len(wanted)


async def waiting(
    session: AsyncSession, settings: Settings, tickets: list[Ticket], now: datetime
) -> list[int]:
    """Which of ``tickets`` call for a notice not sent yet (read only: a cheap first
    look, so that tickets long overdue and told of cost no lock)."""
    slas = await tickets_sla(session, settings, tickets, now)
    sent = await _sent(session, [ticket.id for ticket in tickets])
    found = []
    for ticket in tickets:
        policy, sla = policy_for(settings, ticket), slas[ticket.id]
        running = policy and sla and clock_runs(settings, ticket)
        if running and _unsent(policy, sla, sent.get(ticket.id, set()), now):
            found.append(ticket.id)
    return found


def _unsent(policy: Sla, sla: TicketSla, sent: set, now: datetime) -> list[Notice]:
    return [n for n in notices_due(policy, sla, now) if (n.kind, n.target, n.round) not in sent]


async def _sent(session, ids: list[int]) -> dict[int, set[tuple[str, str, str]]]:
    rows = await session.execute(
        select(SlaNotice.ticket_id, SlaNotice.kind, SlaNotice.target, SlaNotice.round).where(
            SlaNotice.ticket_id.in_(ids)
        )
    )
    found: dict[int, set[tuple[str, str, str]]] = {}
    for ticket_id, *key in rows:
        found.setdefault(ticket_id, set()).add(tuple(key))
    return found


async def _send(session, ctx: ActionContext, ticket: Ticket, policy: Sla, notice: Notice) -> None:
    """Record ``notice`` (flushed first: the claim), tell the agents, audit it and,
    for a breach, escalate."""
    runtime, sent_at = ctx.runtime, datetime.now(UTC)
    session.add(
        SlaNotice(
            ticket_id=ticket.id,
            kind=notice.kind,
            target=notice.target,
            round=notice.round,
            at=sent_at,
        )
    )
    await session.flush()
    route = route_of(runtime, ticket)
    if notice.kind == "warning":
        agents = responsible_agents(ticket, route)
    else:
        admins = [agent.email.lower() for agent in runtime.settings.agents if agent.admin]
        agents = [*involved_agents(ticket, route, besides=""), *admins]
    details = dict(target=notice.target, due_at=notice.due_at, policy=policy.name)

    def compose(agent: str):
        return ctx.composer.sla_notice(notice.kind, ticket, route, agent, **details)

    await notify_agents(session, runtime, ticket, agents, compose, sent_at)
    due = notice.due_at.isoformat()
    audit(session, ticket, ACTOR, f"sla_{notice.kind}", sent_at, **details | {"due_at": due})
    if notice.kind == "breach":
        breach = {"target": notice.target, "due_at": due, "policy": policy.name}
        queue_event(
            session, runtime.settings.webhooks, "sla.breached", ticket, data={"sla": breach}
        )
    if notice.kind == "breach" and policy.escalate_to and ticket.status != policy.escalate_to:
        await update_ticket(session, ctx, ticket, ACTOR, status=policy.escalate_to)
