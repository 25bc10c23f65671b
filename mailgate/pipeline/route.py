"""Routing and assignment: recipient address -> queue, priority, tags, locale, agent.

``round_robin`` gives a new ticket to the agent after the one who got the queue's
previous ticket; ``least_open`` to the agent with the fewest open tickets (ties go to
the agent listed first). Both read the database, so several nodes agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.addresses import RouteTable
from mailgate.config import Route, Tickets
from mailgate.db.models import Ticket


def route_for(recipients: Sequence[str], routes: RouteTable) -> Route | None:
    """The route of the first recipient that has one."""
    for recipient in recipients:
        route = routes.match(recipient)
        if route is not None:
            return route
    return None


async def choose_assignee(session: AsyncSession, route: Route, tickets: Tickets) -> str | None:
    agents = [agent.lower() for agent in route.agents]
    if route.assign == "none" or not agents:
        return None
    if route.assign == "round_robin":
        return await _next_in_turn(session, route.queue, agents)
    return await _least_open(session, agents, tickets)


async def _next_in_turn(session: AsyncSession, queue: str, agents: list[str]) -> str:
    previous = await session.scalar(
        select(Ticket.assignee)
        .where(Ticket.queue == queue, Ticket.assignee.in_(agents))
        .order_by(Ticket.id.desc())
        .limit(1)
    )
    if previous is None:
        return agents[0]
    return agents[(agents.index(previous) + 1) % len(agents)]


async def _least_open(session: AsyncSession, agents: list[str], tickets: Tickets) -> str:
    open_statuses = [s.name for s in tickets.statuses if s.category in ("new", "open")]
    rows = await session.execute(
        select(Ticket.assignee, func.count())
        .where(Ticket.assignee.in_(agents), Ticket.status.in_(open_statuses))
        .group_by(Ticket.assignee)
    )
    load = dict(rows.tuples())
    return min(agents, key=lambda agent: load.get(agent, 0))
