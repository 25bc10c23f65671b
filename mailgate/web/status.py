"""``GET /status``: how the daemon is doing, as a page.

Everyone sees the listeners, the IMAP mailboxes' state, the journal, outbox and
quarantine counts, the version and the uptime: numbers that help a customer or a
monitoring check and reveal nothing of anyone's mail. Error texts (which can name
hosts, accounts and addresses) and the links to the admin pages are for signed-in
agents only.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import aiohttp_jinja2
from aiohttp import web

from mailgate import __version__
from mailgate.web.keys import CONTEXT
from mailgate.web.ops import take_snapshot
from mailgate.web.public import when


def uptime_text(seconds: float) -> str:
    """``93784`` -> ``1d 2h 3m``."""
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if days or hours else []
    return " ".join([*parts, f"{minutes}m"])


async def status_page(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    daemon = context.status
    snapshot = await take_snapshot(context.engine)
    waiting = None
    if snapshot.oldest_pending_at is not None:
        oldest = snapshot.oldest_pending_at
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        waiting = uptime_text((datetime.now(UTC) - oldest).total_seconds())
    values = {
        "version": __version__,
        "uptime": uptime_text(time.time() - daemon.started_at),
        "listeners": daemon.listeners,
        "mailboxes": [intake.status for intake in daemon.imap],
        "snapshot": snapshot,
        "oldest_waiting": waiting,
        # Error texts and admin links: for signed-in agents, once agent sessions
        # (mailgate/web/auth.py) are in this build; until then for no one.
        "detailed": False,
        "when": when,
    }
    return aiohttp_jinja2.render_template("status.html", request, values)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/status", status_page)
