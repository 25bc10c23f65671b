"""The public web form ``/new``: a request written on the web becomes a mail to a route.

It goes to the first route (or the route named by ``?to=``, which must be one of our
addresses) through the journal, so it gets the same ticket and acknowledgement as a
mail. A bot that fills the hidden honeypot field sees the usual confirmation and
nothing is stored. Submissions are rate-limited per address and per client IP.

The confirmation names the new ticket's code. The pipeline makes the ticket a moment
after the mail is journaled, so the page first says the code is coming and reloads
itself as ``/new/done?r=<journal id>.<mac>`` (signed: nobody reads another person's
confirmation by counting ids) until the code is there.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Route
from mailgate.db.models import JournalEntry, Message, Ticket
from mailgate.intake.webform import WebMail, valid_email
from mailgate.numbers import whole_number
from mailgate.web.formats import size
from mailgate.web.forms import Submitted, check_timed_token, read_form, timed_token
from mailgate.web.i18n import texts
from mailgate.web.keys import CONTEXT
from mailgate.web.public import client_ip, journal_mail, not_found, team_name, within_limits

log = logging.getLogger(__name__)

HONEYPOT = "website"
FIELDS = ("name", "email", "subject", "message")
RECEIPT = "new-done"  # what the MAC of a confirmation link is for
REFRESH_SECONDS = 2
WAITING_STATES = ("pending", "processing")  # the pipeline has the mail still


async def show_form(request: web.Request) -> web.StreamResponse:
    return _render(request, _route(request), Submitted(), [])


async def submit(request: web.Request) -> web.StreamResponse:
    route = _route(request)
    limit = request.app[CONTEXT].runtime.settings.smtp.max_message_bytes
    form = await read_form(request, limit * 3 // 4)
    if form.text(HONEYPOT):
        log.info("web form: honeypot filled from %s, nothing stored", client_ip(request))
        return _done(request, route, {"email": form.text("email")})
    words = texts(route.locale)
    errors = _errors(request, form, words, limit)
    if not errors and not await within_limits(request, form.text("email")):
        errors.append(words["err_rate"])
    if errors:
        return _render(request, route, form, errors + form.choose_again(words), status=400)
    entry = await journal_mail(request, _mail(route, form), route.address)
    if entry is None:
        errors = [words["err_unavailable"], *form.choose_again(words)]
        return _render(request, route, form, errors, status=503)
    return await _receipt(request, route, entry)


async def confirmation(request: web.Request) -> web.StreamResponse:
    """The confirmation of a request sent through the form, by its signed link."""
    route = _route(request)
    entry, _, mac = request.query.get("r", "").partition(".")
    entry_id = whole_number(entry)
    if entry_id is None or not request.app[CONTEXT].signer.verify(RECEIPT, entry, mac):
        raise not_found(request, route.locale)
    return await _receipt(request, route, entry_id)


async def _receipt(request: web.Request, route: Route, entry_id: int) -> web.StreamResponse:
    """The confirmation of journal entry ``entry_id``: its ticket's code once there is
    one, else a page that looks again in a moment while the pipeline has the mail."""
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        entry = (
            await session.execute(
                select(JournalEntry.state, JournalEntry.mail_from).where(
                    JournalEntry.id == entry_id
                )
            )
        ).first()
        if entry is None:  # pruned since
            raise not_found(request, route.locale)
        state, email = entry
        code = await session.scalar(
            select(Ticket.code)
            .join(Message, Message.ticket_id == Ticket.id)
            .where(Message.journal_id == entry_id)
            .limit(1)
        )
    values = {"email": email, "code": code}
    if code is None and state in WAITING_STATES:
        signer, query = request.app[CONTEXT].signer, request.query.get("to")
        receipt = {"r": f"{entry_id}.{signer.sign(RECEIPT, str(entry_id))}"}
        values["refresh"] = "/new/done?" + urlencode(
            {**receipt, **({"to": query} if query else {})}
        )
        values["refresh_seconds"] = REFRESH_SECONDS
    return _done(request, route, values)


def _errors(request: web.Request, form: Submitted, words, limit: int) -> list[str]:
    errors = [
        words[key]
        for key, bad in (
            ("err_name", not form.text("name")),
            ("err_email", not valid_email(form.text("email"))),
            ("err_subject", not form.text("subject")),
            ("err_message", not form.text("message")),
        )
        if bad
    ]
    if form.too_large:
        errors.append(words["err_too_large"].format(size=size(limit * 3 // 4)))
    if not check_timed_token(request.app[CONTEXT].signer, "new", form.text("csrf")):
        errors.append(words["err_expired"])
    return errors


def _mail(route: Route, form: Submitted) -> WebMail:
    return WebMail(
        sender_name=form.text("name"),
        sender_email=form.text("email"),
        to=route.address,
        subject=form.text("subject"),
        text=form.fields.get("message", ""),
        attachments=tuple(form.files),
    )


def _route(request: web.Request) -> Route:
    """``?to=`` names one of our route addresses exactly; without it, the first route."""
    routes = [r for r in request.app[CONTEXT].runtime.settings.routes if "*" not in r.address]
    wanted = request.query.get("to", "").strip().lower()
    for route in routes:
        if not wanted or route.address.lower() == wanted:
            return route
    raise not_found(request)


def _render(request, route: Route, form: Submitted, errors: list[str], status: int = 200):
    signer = request.app[CONTEXT].signer
    query = request.query.get("to")
    values = {
        "t": texts(route.locale),
        "lang": route.locale,
        "team": team_name(request.app[CONTEXT].runtime.settings, route),
        "action": "/new" + (f"?{urlencode({'to': query})}" if query else ""),
        "csrf": timed_token(signer, "new"),
        "form": {name: form.fields.get(name, "") for name in FIELDS},
        "errors": errors,
    }
    return aiohttp_jinja2.render_template("new.html", request, values, status=status)


def _done(request: web.Request, route: Route, values: dict) -> web.StreamResponse:
    common = {
        "t": texts(route.locale),
        "lang": route.locale,
        "team": team_name(request.app[CONTEXT].runtime.settings, route),
    }
    return aiohttp_jinja2.render_template("new_done.html", request, {**common, **values})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/new", show_form)
    app.router.add_post("/new", submit)
    app.router.add_get("/new/done", confirmation)
