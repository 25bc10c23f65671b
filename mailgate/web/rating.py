"""The rating page ``/t/<code>/rate/<score>?s=<mac>``, opened by the solved mail's
*Good* and *Bad* links.

Opening a link records nothing: it shows the link's choice preselected, a comment
box and a Send button, and the POST records the rating. Mail scanners and link
previews fetch every link of a mail, so a rating made by a GET would be both Good
and Bad before the customer read the mail. The form carries a CSRF token bound to
the ticket; the link's signature binds the ticket and the score, and either link
may send either score (the customer has both).

A wrong signature, an unknown code or score gets the portal's 404. Once the ticket
is closed the page shows the rating and says it can no longer change, and a POST
is refused (409) and changes nothing.
"""

from __future__ import annotations

from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import ActionError
from mailgate.actions.satisfaction import MAX_COMMENT_CHARS, SCORES, can_rate, rate
from mailgate.db.models import SatisfactionRating, Ticket
from mailgate.db.session import sessions
from mailgate.web.forms import read_form
from mailgate.web.i18n import texts
from mailgate.web.keys import CONTEXT
from mailgate.web.portal import portal_path
from mailgate.web.public import not_found

FORM_BYTES = 64 << 10
CSRF_PURPOSE = "rating-form"


def rating_path(signer, code: str, score: str) -> str:
    return f"/t/{code}/rate/{score}?s={signer.rating_token(code, score)}"


async def show(request: web.Request) -> web.StreamResponse:
    ticket, score = await _linked(request)
    saved = request.query.get("saved") == "1"
    return await _render(request, ticket, {"score": score, "saved": saved})


async def submit(request: web.Request) -> web.StreamResponse:
    ticket, _ = await _linked(request)
    context = request.app[CONTEXT]
    form = await read_form(request, FORM_BYTES)
    typed = {"score": form.text("score"), "comment": form.text("comment")}
    if not context.signer.verify(CSRF_PURPOSE, ticket.code, form.text("csrf")):
        return await _render(request, ticket, typed, ["err_expired"], status=400)
    try:
        async with sessions(context.engine).begin() as session:
            fresh = await session.get(Ticket, ticket.id)
            await rate(session, context.runtime.settings, fresh, typed["score"], typed["comment"])
    except ActionError as error:
        status = 409 if error.field == "ticket" else 400
        return await _render(request, ticket, typed, [f"err_rating_{error.field}"], status=status)
    context.wake_delivery()  # the webhooks' event goes out with delivery
    location = rating_path(context.signer, ticket.code, typed["score"])
    raise web.HTTPSeeOther(f"{location}&saved=1")


async def _linked(request: web.Request) -> tuple[Ticket, str]:
    """The ticket and score of a validly signed link; the portal's 404 otherwise."""
    code = request.match_info["code"].upper()
    score = request.match_info["score"].lower()
    token = request.query.get("s", "")
    if score not in SCORES or not request.app[CONTEXT].signer.check_rating_token(
        code, score, token
    ):
        raise not_found(request)
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
    if ticket is None:
        raise not_found(request)
    return ticket, score


async def _render(request, ticket: Ticket, values: dict, errors=(), *, status=200):
    """The page; ``values`` the score to preselect (and the comment) as linked or typed."""
    context = request.app[CONTEXT]
    async with AsyncSession(context.engine) as session:
        rating = await session.get(SatisfactionRating, ticket.id)
    words = texts(ticket.locale)
    page = {
        "t": words,
        "lang": ticket.locale,
        "ticket": ticket,
        "rating": rating,
        "score": values.get("score") or (rating.score if rating else ""),
        "comment": values.get("comment", rating.comment if rating else ""),
        "saved": values.get("saved", False),
        "open": can_rate(context.runtime.settings.tickets, ticket),
        "csrf": context.signer.sign(CSRF_PURPOSE, ticket.code),
        "action": f"{request.path}?{urlencode({'s': request.query.get('s', '')})}",
        "portal": portal_path(context.signer, ticket.code),
        "errors": [words[key].format(count=MAX_COMMENT_CHARS) for key in errors],
    }
    return aiohttp_jinja2.render_template("rating.html", request, page, status=status)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/t/{code}/rate/{score}", show)
    app.router.add_post("/t/{code}/rate/{score}", submit)
