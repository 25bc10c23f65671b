"""The public web form ``/new``: a request written on the web becomes a mail to a route.

It goes to the first route (or the route named by ``?to=``, which must be one of our
addresses) through the journal, so it gets the same ticket and acknowledgement as a
mail. A bot that fills the hidden honeypot field sees the usual confirmation and
nothing is stored. Submissions are rate-limited per address and per client IP.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from mailgate.config import Route
from mailgate.intake.webform import WebMail, valid_email
from mailgate.web.formats import size
from mailgate.web.forms import Submitted, check_timed_token, read_form, timed_token
from mailgate.web.i18n import texts
from mailgate.web.keys import CONTEXT
from mailgate.web.public import client_ip, journal_mail, not_found, within_limits

log = logging.getLogger(__name__)

HONEYPOT = "website"
FIELDS = ("name", "email", "subject", "message")


async def show_form(request: web.Request) -> web.StreamResponse:
    return _render(request, _route(request), Submitted(), [])


async def submit(request: web.Request) -> web.StreamResponse:
    route = _route(request)
    limit = request.app[CONTEXT].runtime.settings.smtp.max_message_bytes
    form = await read_form(request, limit * 3 // 4)
    if form.text(HONEYPOT):
        log.info("web form: honeypot filled from %s, nothing stored", client_ip(request))
        return _done(request, route, form.text("email"))
    words = texts(route.locale)
    errors = _errors(request, form, words, limit)
    if not errors and not await within_limits(request, form.text("email")):
        errors.append(words["err_rate"])
    if errors:
        return _render(request, route, form, errors, status=400)
    if await journal_mail(request, _mail(route, form), route.address) is None:
        return _render(request, route, form, [words["err_unavailable"]], status=503)
    return _done(request, route, form.text("email"))


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
        "action": "/new" + (f"?{urlencode({'to': query})}" if query else ""),
        "csrf": timed_token(signer, "new"),
        "form": {name: form.fields.get(name, "") for name in FIELDS},
        "errors": errors,
    }
    return aiohttp_jinja2.render_template("new.html", request, values, status=status)


def _done(request: web.Request, route: Route, email: str) -> web.StreamResponse:
    values = {"t": texts(route.locale), "lang": route.locale, "email": email}
    return aiohttp_jinja2.render_template("new_done.html", request, values)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/new", show_form)
    app.router.add_post("/new", submit)
