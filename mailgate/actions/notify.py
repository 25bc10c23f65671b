"""Mail to agents: who hears of a ticket, and the limits that keep it bearable.

Each agent gets at most ``[tickets] notify_rate_limit`` notifications in all and
``notify_ticket_rate_limit`` about one ticket; past that, and for an address
suppressed after a hard bounce, the notification is skipped and the skip is an
audit event on the ticket, so nothing disappears unexplained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import queue_mail
from mailgate.config import Route, parse_rate
from mailgate.db.models import Ticket
from mailgate.db.records import audit
from mailgate.outbox.compose import Outgoing
from mailgate.outbox.ratelimit import SendingLimits, StoredLimits, notify_key
from mailgate.runtime import RuntimeConfig


def responsible_agents(ticket: Ticket, route: Route) -> list[str]:
    """The assignee, or while there is none every agent of the ticket's queue."""
    if ticket.assignee:
        return [ticket.assignee]
    return list(dict.fromkeys(agent.lower() for agent in route.agents))


def involved_agents(ticket: Ticket, route: Route, besides: str) -> list[str]:
    """The assignee and the queue's agents, except ``besides`` (who wrote a note)."""
    everyone = [ticket.assignee or "", *(agent.lower() for agent in route.agents)]
    return [agent for agent in dict.fromkeys(everyone) if agent and agent != besides.lower()]


async def notify_agents(
    session: AsyncSession,
    runtime: RuntimeConfig,
    ticket: Ticket,
    agents: Iterable[str],
    compose: Callable[[str], Outgoing],
    now: datetime,
    limits: SendingLimits | None = None,
) -> list[Outgoing]:
    """Queue ``compose(agent)`` for each agent within the limits (by default as the
    database holds them); returns those queued."""
    limits = limits or StoredLimits(session)
    wanted = list(dict.fromkeys(agents))
    blocked = await limits.suppressed(wanted)
    sent = []
    for agent in wanted:
        reason = f"{agent} is suppressed after a hard bounce" if agent in blocked else None
        reason = reason or await _over_limit(limits, runtime, ticket, agent, now)
        if reason:
            audit(session, ticket, "mailgate", "notify_skipped", now, agent=agent, reason=reason)
            continue
        outgoing = compose(agent)
        queue_mail(session, ticket, outgoing)
        sent.append(outgoing)
    return sent


async def _over_limit(limits: SendingLimits, runtime: RuntimeConfig, ticket, agent: str, now):
    tickets = runtime.settings.tickets
    keys = [
        (notify_key(agent), parse_rate(tickets.notify_rate_limit)),
        (notify_key(agent, ticket.code), parse_rate(tickets.notify_ticket_rate_limit)),
    ]
    over = await limits.take(keys, now)
    if over is None:
        return None
    rate = tickets.notify_rate_limit if over == keys[0][0] else tickets.notify_ticket_rate_limit
    return f"notification rate limit reached for {agent} ({rate})"
