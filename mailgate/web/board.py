"""The pipeline board ``/board``: a column per configured status, cards to move.

Each card carries its own small form (a status menu and a button) posting to the
ticket's update action, so the board works without JavaScript; ``board.js`` only
adds drag and drop, which fills in that form and submits it.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Ticket
from mailgate.web.auth import AgentSession, require_agent, signed_in_agent
from mailgate.web.changes import current_cursor
from mailgate.web.inbox import choices
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.sla_view import card_lines

CARDS_PER_COLUMN = 40


@dataclass(frozen=True)
class Column:
    status: str
    category: str
    count: int
    cards: list[Ticket]


@require_agent
async def board(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    runtime = request.app[RUNTIME]
    queue = request.query.get("queue", "")
    async with AsyncSession(request.app[ENGINE]) as session:
        counts = dict(
            (
                await session.execute(
                    _tickets(agent, queue, Ticket.status, func.count()).group_by(Ticket.status)
                )
            )
            .tuples()
            .all()
        )
        columns = [
            Column(
                status.name,
                status.category,
                counts.get(status.name, 0),
                list(await session.scalars(_cards(agent, queue, status.name))),
            )
            for status in runtime.settings.tickets.statuses
        ]
        cards = [card for column in columns for card in column.cards]
        lines = await card_lines(session, runtime.settings, cards, runtime.clock.now())
        since = await current_cursor(await session.connection())
    values = {"columns": columns, "queue": queue, "sla_lines": lines, "live_since": str(since)}
    values.update(choices(runtime, agent))
    return aiohttp_jinja2.render_template("board.html", request, values)


def _tickets(agent: AgentSession, queue: str, *columns):
    query = agent.visible(select(*columns)).where(
        Ticket.merged_into_id.is_(None), Ticket.spam.is_(False)
    )
    return query.where(Ticket.queue == queue) if queue else query


def _cards(agent: AgentSession, queue: str, status: str):
    return (
        _tickets(agent, queue, Ticket)
        .where(Ticket.status == status)
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        .limit(CARDS_PER_COLUMN)
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/board", board)
