"""The agent inbox ``/tickets``: the tickets an agent may see, filtered and searched."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.runtime import RuntimeConfig
from mailgate.web.auth import AgentSession, require_agent, signed_in_agent
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.listing import PRIORITY_RANK, BadCursor, Filters, tags_by_ticket, ticket_query
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

    def query(backwards: bool):
        return ticket_query(filters, agent, runtime.settings.tickets, engine.dialect, backwards)

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
    values = {
        "tickets": page.tickets,
        "page": page,
        "tags": tags,
        "filters": filters,
        **choices(runtime, agent),
    }
    return aiohttp_jinja2.render_template("inbox.html", request, values)


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
