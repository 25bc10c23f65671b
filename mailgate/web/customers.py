"""The customer page ``/customers/<address>``: who they are and all their tickets.

Agents see the tickets they may see (their queues, or all for an admin); an address
with none of those is a 404, as a ticket code that is not yours. The list is paged
newest first with a cursor (and ``limit``), like the inbox.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.web.auth import require_agent, signed_in_agent
from mailgate.web.customer_history import NEWEST_FIRST, customer_summary, tickets_of
from mailgate.web.inbox import choices
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.listing import BadCursor, Filters, after_cursor, encode_cursor

_ORDER = Filters(sort="created", order="desc")  # the cursor's order: NEWEST_FIRST


@require_agent
async def customer_page(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    runtime = request.app[RUNTIME]
    email = request.match_info["address"].strip().lower()
    size = Filters(limit=request.query.get("limit", "")).page_size
    query = tickets_of(email, agent.visible).order_by(*NEWEST_FIRST)
    if request.query.get("cursor"):
        try:
            query = after_cursor(query, _ORDER, request.query["cursor"])
        except BadCursor:
            raise web.HTTPBadRequest(text="That page link is not valid; start again.") from None
    async with AsyncSession(request.app[ENGINE]) as session:
        customer = await customer_summary(session, agent.visible, email, runtime.settings.tickets)
        rows = list(await session.scalars(query.limit(size + 1))) if customer else []
    values = {"email": email, "customer": customer, **choices(runtime, agent)}
    if customer is None:
        return aiohttp_jinja2.render_template("customer.html", request, values, status=404)
    page = rows[:size]
    more = len(rows) > size
    values.update(tickets=page, next_cursor=encode_cursor(page[-1], "created") if more else "")
    values.update(limit=request.query.get("limit", ""))
    return aiohttp_jinja2.render_template("customer.html", request, values)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/customers/{address}", customer_page)
