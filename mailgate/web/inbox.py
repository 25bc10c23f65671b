"""The agent inbox ``/tickets``: the tickets an agent may see, filtered and searched."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Ticket
from mailgate.runtime import RuntimeConfig
from mailgate.web.auth import AgentSession, require_agent, signed_in_agent
from mailgate.web.changes import current_cursor
from mailgate.web.export import TICKET_COLUMNS, export_name, stream_csv, ticket_rows
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.listing import (
    PRIORITY_RANK,
    BadCursor,
    Filters,
    after_cursor,
    encode_cursor,
    tags_by_ticket,
    ticket_query,
)
from mailgate.web.pages import see_other
from mailgate.web.paging import read_page


@require_agent
async def home(request: web.Request) -> web.StreamResponse:
    return see_other("/tickets")


@require_agent
async def inbox(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    runtime, engine = request.app[RUNTIME], request.app[ENGINE]
    filters = Filters.from_query(request.query)
    now = runtime.clock.now()

    def query(backwards: bool):
        tickets = runtime.settings.tickets
        return ticket_query(filters, agent, tickets, engine.dialect, now, backwards)

    async with AsyncSession(engine) as session:
        try:
            page = await read_page(
                session,
                filters,
                query,
                cursor=request.query.get("cursor", ""),
                before=request.query.get("before", ""),
            )
        except BadCursor:
            raise web.HTTPBadRequest(text="That page link is not valid; start again.") from None
        tags = await tags_by_ticket(session, [ticket.id for ticket in page.tickets])
        since = await current_cursor(await session.connection())
    values = {
        "tickets": page.tickets,
        "page": page,
        "tags": tags,
        "filters": filters,
        "live_since": str(since),
        **choices(runtime, agent),
    }
    return aiohttp_jinja2.render_template("inbox.html", request, values)


@require_agent
async def export(request: web.Request) -> web.StreamResponse:
    """The inbox with its filters and sort order as CSV: every matching ticket, not
    just one page."""
    agent = signed_in_agent(request)
    runtime, engine = request.app[RUNTIME], request.app[ENGINE]
    filters = Filters.from_query(request.query)
    now = runtime.clock.now()
    base = ticket_query(filters, agent, runtime.settings.tickets, engine.dialect, now)

    def after(last: Ticket):
        return after_cursor(base, filters, encode_cursor(last, filters.sort))

    rows = ticket_rows(engine, base, after)
    return await stream_csv(request, export_name("tickets"), TICKET_COLUMNS, rows)


def choices(runtime: RuntimeConfig, agent: AgentSession) -> dict[str, list]:
    """The options of the filter and action menus, from the config."""
    queues = {route.queue for route in runtime.settings.routes}
    return {
        "statuses": [status.name for status in runtime.settings.tickets.statuses],
        "queues": sorted(queues if agent.admin else queues & agent.queues),
        "priorities": list(PRIORITY_RANK),
        "agents": runtime.settings.agents,
        "category": runtime.settings.tickets.category_of,
    }


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/tickets", inbox)
    app.router.add_get("/tickets.csv", export)
