"""``GET /status``: how the daemon is doing, as a page.

Everyone sees whether mail flows (and if not, what is stuck), the listeners, the IMAP
mailboxes' state, the journal, outbox and quarantine counts, the version and the
uptime: numbers that help a customer or a monitoring check and reveal nothing of
anyone's mail. Error texts (which can name
hosts, accounts and addresses) and the links to the admin pages are for signed-in
agents only.
"""

from __future__ import annotations

import time

import aiohttp_jinja2
from aiohttp import web

from mailgate import __version__
from mailgate.health import assess
from mailgate.web.auth import current_agent
from mailgate.web.context import own_problems
from mailgate.web.formats import age, duration
from mailgate.web.keys import CONTEXT
from mailgate.web.ops import take_snapshot


async def status_page(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    daemon = context.status
    snapshot = await take_snapshot(context.engine)
    health = await assess(context.engine, context.runtime.settings, own_problems(context))
    agent = current_agent(request)
    values = {
        "health": health,
        "version": __version__,
        "uptime": duration(time.time() - daemon.started_at),
        "listeners": daemon.listeners,
        "mailboxes": [intake.status for intake in daemon.imap],
        "snapshot": snapshot,
        "oldest_waiting": age(snapshot.oldest_pending_at) if snapshot.oldest_pending_at else None,
        "detailed": agent is not None,
        "admin": agent is not None and agent.admin,
    }
    return aiohttp_jinja2.render_template("status.html", request, values)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/status", status_page)
