"""What the customer-facing pages share: the 404 page, the client's address, rate
limits, and handing what a person wrote to the journal as a mail."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Route, Settings, parse_rate
from mailgate.intake.webform import WebMail, arrival
from mailgate.outbox import ratelimit
from mailgate.pipeline.journal import JournalUnavailable
from mailgate.web.i18n import texts
from mailgate.web.keys import CONTEXT


def not_found(request: web.Request, locale: str = "en") -> web.HTTPNotFound:
    """The one 404 page for an unknown code, a wrong token or an unknown address."""
    response = aiohttp_jinja2.render_template(
        "not_found.html", request, {"t": texts(locale), "lang": locale}, status=404
    )
    return web.HTTPNotFound(
        body=response.body, headers={"Content-Type": response.headers["Content-Type"]}
    )


DEFAULT_TEAM_NAME = "mailgate"


def team_name(settings: Settings, route: Route) -> str:
    """Whose pages these are, as customers see it in the header."""
    return route.team_name or settings.web.team_name or DEFAULT_TEAM_NAME


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


async def within_limits(request: web.Request, email: str | None) -> bool:
    """Count this submission against the per-IP limit (and the per-address one for
    ``email``); False when one of them is used up."""
    settings = request.app[CONTEXT].runtime.settings.web
    limits = [(f"web:ip:{client_ip(request)}", parse_rate(settings.form_ip_rate_limit))]
    if email is not None:
        limits.append((f"web:email:{email.lower()}", parse_rate(settings.form_rate_limit)))
    async with AsyncSession(request.app[CONTEXT].engine) as session, session.begin():
        return await ratelimit.take(session, limits, datetime.now(UTC)) is None


async def journal_mail(request: web.Request, mail: WebMail, recipient: str) -> int | None:
    """Store ``mail`` in the journal like an arriving message; its id, or None when the
    journal cannot take it now (the person is asked to try again, nothing is lost)."""
    context = request.app[CONTEXT]
    hostname = context.runtime.settings.smtp.hostname
    entry = arrival(mail, recipient, hostname, client_ip(request))
    if context.journal is None:
        raise web.HTTPServiceUnavailable(text="this server takes no mail")
    try:
        return await context.journal.store(entry)
    except JournalUnavailable:
        return None
