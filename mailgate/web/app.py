"""The aiohttp application: built by ``init_app`` from what the daemon hands it."""

from __future__ import annotations

import asyncio

from aiohttp import web

from mailgate import __version__
from mailgate.accounts import Passwords
from mailgate.db.session import ping
from mailgate.health import assess
from mailgate.web import (
    admin,
    admin_webhooks,
    api,
    api_canned,
    api_write,
    board,
    canned,
    customers,
    drafts,
    inbox,
    login,
    metrics,
    newticket,
    openapi,
    portal,
    profile,
    rating,
    reports,
    status,
    stream,
    ticket_actions,
    ticket_page,
)
from mailgate.web.auth import auth
from mailgate.web.badinput import error_pages, refuse_nul
from mailgate.web.context import WebContext, own_problems
from mailgate.web.keys import CONTEXT, ENGINE, PASSWORDS, RUNTIME
from mailgate.web.pages import security_headers, setup_pages
from mailgate.web.timeouts import body_deadline

HEALTH_TIMEOUT_SECONDS = 3.0


async def healthz(request: web.Request) -> web.Response:
    """200 when mail flows; 503 (still JSON, with the reasons) when the database does
    not answer or mail is stuck (``health.py``)."""
    context = request.app[CONTEXT]
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            await ping(context.engine)
            health = await assess(context.engine, context.runtime.settings, own_problems(context))
    except Exception as exc:  # any failure to reach the database is "unavailable"
        body = {
            "status": "unavailable",
            "database": f"error: {exc or type(exc).__name__}",
            "problems": [{"component": "database", "reason": "the database does not answer"}],
        }
        return web.json_response({**body, "version": __version__}, status=503)
    body = {**health.as_json(), "database": "ok", "version": __version__}
    return web.json_response(body, status=200 if health.ok else 503)


def init_app(context: WebContext) -> web.Application:
    app = web.Application(
        middlewares=[
            security_headers,
            error_pages,
            api.api_errors,
            body_deadline,
            refuse_nul,
            auth,
        ],
        # Replies and notes carry attachments, up to what a mail may carry.
        client_max_size=context.runtime.settings.smtp.max_message_bytes,
    )
    app[CONTEXT] = context
    app[ENGINE] = context.engine
    app[RUNTIME] = context.runtime
    app[PASSWORDS] = Passwords()
    runtime = context.runtime
    setup_pages(app, lambda: runtime.settings.templates.directory)
    app.router.add_get("/healthz", healthz)
    status.add_routes(app)
    metrics.add_routes(app)
    api.add_routes(app)
    login.add_routes(app)
    inbox.add_routes(app)
    ticket_page.add_routes(app)
    ticket_actions.add_routes(app)
    stream.add_routes(app)
    drafts.add_routes(app)
    board.add_routes(app)
    reports.add_routes(app)
    api_write.add_routes(app)
    api_canned.add_routes(app)
    openapi.add_routes(app)
    portal.add_routes(app)
    rating.add_routes(app)
    newticket.add_routes(app)
    admin.add_routes(app)
    canned.add_routes(app)
    profile.add_routes(app)
    customers.add_routes(app)
    admin_webhooks.add_routes(app)
    return app
