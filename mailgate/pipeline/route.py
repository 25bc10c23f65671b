"""Routing and assignment: recipient address -> queue, priority, tags, locale, agent.

``round_robin`` gives a new ticket to the agent after the one who got the queue's
previous ticket; ``least_open`` to the agent with the fewest open tickets (ties go to
the agent listed first). Both start from the database, so several nodes agree, and
hold the assignment lock from that read to the commit, so they take turns.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.addresses import RouteTable
from mailgate.config import Route, Tickets
from mailgate.db.locks import hold
from mailgate.db.models import Ticket

# One key for every queue and agent: a batch that assigns holds it to its commit,
# whatever queues it assigns in and in whichever order, so two batches never hold
# one queue each while waiting for the other's.
ASSIGN_KEY = "assign"


def route_for(recipients: Sequence[str], routes: RouteTable) -> Route | None:
    """The route of the first recipient that has one."""
    for recipient in recipients:
        route = routes.match(recipient)
        if route is not None:
            return route
    return None


class Assigner:
    """Chooses the assignees of a batch's new tickets.

    It reads the database once per queue (round robin) or per agent (least open) and
    then counts the batch's own assignments, so a batch spreads its tickets as the
    same mail one at a time would. Before its first read it takes ``ASSIGN_KEY``,
    which the session's transaction holds to its end: another batch, on any node,
    reads after this one's assignments are committed.
    """

    def __init__(self, session: AsyncSession, tickets: Tickets) -> None:
        self._session = session
        self._open_statuses = [s.name for s in tickets.statuses if s.category in ("new", "open")]
        self._previous: dict[str, str | None] = {}  # queue -> its latest assignee
        self._open: dict[str, int] = {}  # agent -> open tickets
        self._holding = False

    async def choose(self, route: Route) -> str | None:
        agents = [agent.lower() for agent in route.agents]
        if route.assign == "none" or not agents:
            return None
        if not self._holding:
            await hold(self._session, [ASSIGN_KEY])
            self._holding = True
        if route.assign == "round_robin":
            chosen = await self._next_in_turn(route.queue, agents)
        else:
            chosen = await self._least_open(agents)
        self._previous[route.queue] = chosen
        if chosen in self._open:
            self._open[chosen] += 1
        return chosen

    async def _next_in_turn(self, queue: str, agents: list[str]) -> str:
        if queue not in self._previous:
            self._previous[queue] = await self._session.scalar(
                select(Ticket.assignee)
                .where(Ticket.queue == queue, Ticket.assignee.in_(agents))
                .order_by(Ticket.id.desc())
                .limit(1)
            )
        previous = self._previous[queue]
        if previous not in agents:
            return agents[0]
        return agents[(agents.index(previous) + 1) % len(agents)]

    async def _least_open(self, agents: list[str]) -> str:
        unknown = [agent for agent in agents if agent not in self._open]
        if unknown:
            rows = await self._session.execute(
                select(Ticket.assignee, func.count())
                .where(Ticket.assignee.in_(unknown), Ticket.status.in_(self._open_statuses))
                .group_by(Ticket.assignee)
            )
            self._open.update(dict.fromkeys(unknown, 0) | dict(rows.all()))
        return min(agents, key=lambda agent: self._open[agent])
