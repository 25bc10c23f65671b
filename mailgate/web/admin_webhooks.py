"""The admin's webhooks page: recent deliveries, their state and last answer, and
*Retry now* for one that failed.

A retry queues the failed delivery again, due at once, with the body and
``X-Mailgate-Delivery`` it had: one more attempt (a receiver that still refuses it
leaves it failed again).
"""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Ticket, WebhookDelivery
from mailgate.db.session import sessions
from mailgate.numbers import whole_number
from mailgate.web.auth import require_admin
from mailgate.web.keys import CONTEXT

PAGE_SIZE = 200


async def deliveries(request: web.Request) -> web.Response:
    query = select(WebhookDelivery, Ticket.code).outerjoin(
        Ticket, Ticket.id == WebhookDelivery.ticket_id
    )
    before = whole_number(request.query.get("before", ""))
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    query = query.order_by(WebhookDelivery.id.desc()).limit(PAGE_SIZE)
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        rows = (await session.execute(query)).all()
    values = {
        "rows": rows,
        "more": rows[-1][0].id if len(rows) == PAGE_SIZE else None,
        "webhooks": request.app[CONTEXT].runtime.settings.webhooks,
        "outcome": request.query.get("outcome", ""),
    }
    return aiohttp_jinja2.render_template("admin_webhooks.html", request, values)


async def retry(request: web.Request) -> web.Response:
    """POST: queue a failed delivery again, due now."""
    context = request.app[CONTEXT]
    key = int(request.match_info["id"])
    async with sessions(context.engine).begin() as session:
        done = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == key, WebhookDelivery.state == "failed")
            .values(state="queued", next_attempt_at=datetime.now(UTC))
        )
    if done.rowcount == 0:
        raise web.HTTPConflict(text=f"webhook delivery {key} is not a failed one")
    context.wake_delivery()
    location = request.app.router["webhooks"].url_for().with_query(outcome=f"{key} queued again")
    raise web.HTTPSeeOther(location)


def add_routes(app: web.Application) -> None:
    """For signed-in admins only (others: the login page or 403)."""
    add = app.router.add_route
    add("GET", "/admin/webhooks", require_admin(deliveries), name="webhooks")
    add("POST", "/admin/webhooks/{id:\\d+}/retry", require_admin(retry))
