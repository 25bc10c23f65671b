"""The customer portal ``/t/<code>?k=<token>``: the public thread, its attachments
(``/t/<code>/attachments/<id>?k=<token>``) and a reply form.

The token in every mail's link is the only key: a wrong or missing one gets the same
404 as an unknown code. The thread shows customer mail and agent replies, never
notes or events. A reply is written as a mail from the ticket's customer, answering
the ticket's last message, and goes to the journal like any other mail.

Attachments download through the same link: only those of the messages the page
shows, so never a note's, and never one of a thread the link does not open.

A merged ticket's link leads to the ticket it joined only when that is the same
customer's. Otherwise the link shows the merged ticket as it was, read-only, and says
no more about where it went: a link is never a key to another customer's thread, and
a reply through it is refused (409), stored nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import route_of
from mailgate.actions.merge import messages_when_merged
from mailgate.db.models import Attachment, Message, Ticket
from mailgate.intake.webform import WebMail
from mailgate.web.downloads import download, find_attachment
from mailgate.web.formats import size
from mailgate.web.forms import Submitted, read_form
from mailgate.web.i18n import texts
from mailgate.web.keys import CONTEXT
from mailgate.web.public import journal_mail, not_found, team_name, within_limits

PUBLIC_KINDS = ("customer", "agent")
MAX_MERGE_HOPS = 20


def portal_path(signer, code: str, **extra: str) -> str:
    return f"/t/{code}?{urlencode({'k': signer.portal_token(code), **extra})}"


@dataclass(frozen=True)
class Linked:
    ticket: Ticket  # the ticket the link names
    current: Ticket | None  # where its thread goes on: itself, the same customer's
    # ticket it was merged into, or None (merged into someone else's)


async def show(request: web.Request) -> web.StreamResponse:
    linked = await _linked(request)
    if linked.current is None:
        return await _render_merged(request, linked.ticket, Submitted())
    if linked.current is not linked.ticket:
        raise web.HTTPSeeOther(portal_path(request.app[CONTEXT].signer, linked.current.code))
    sent = request.query.get("sent") == "1"
    return await _render(request, linked.ticket, Submitted(), [], sent=sent)


async def attachment(request: web.Request) -> web.StreamResponse:
    """An attachment of a message the link's page shows; the 404 page otherwise."""
    linked = await _linked(request)
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        if linked.current is None:
            shown = Message.id.in_(await messages_when_merged(session, linked.ticket))
        else:
            shown = Message.ticket_id == linked.current.id
        which = and_(shown, Message.kind.in_(PUBLIC_KINDS))
        found = await find_attachment(session, request.match_info["id"], which)
    if found is None:
        raise not_found(request, linked.ticket.locale)
    return download(*found)


async def reply(request: web.Request) -> web.StreamResponse:
    context = request.app[CONTEXT]
    linked = await _linked(request)
    limit = context.runtime.settings.smtp.max_message_bytes
    form = await read_form(request, limit * 3 // 4)
    if linked.current is None:
        return await _render_merged(request, linked.ticket, form, status=409)
    ticket = linked.current
    words = texts(ticket.locale)
    errors = _errors(form, words, limit)
    # The form was made for the ticket its link names (before a merge, perhaps).
    if not context.signer.verify("portal-form", linked.ticket.code, form.text("csrf")):
        errors.append(words["err_expired"])
    if not errors and not await within_limits(request, None):
        errors.append(words["err_rate"])
    if errors:
        return await _render(request, ticket, form, errors + form.choose_again(words), status=400)
    if await journal_mail(request, await _reply_mail(request, ticket, form), _to(request, ticket)):
        raise web.HTTPSeeOther(portal_path(context.signer, ticket.code, sent="1"))
    errors = [words["err_unavailable"], *form.choose_again(words)]
    return await _render(request, ticket, form, errors, status=503)


def _errors(form: Submitted, words, limit: int) -> list[str]:
    if form.too_large:
        return [words["err_too_large"].format(size=size(limit * 3 // 4))]
    if not form.text("text") and not form.files:
        return [words["err_reply"]]
    return []


def _to(request: web.Request, ticket: Ticket) -> str:
    """The signed reply address: the pipeline threads it to this ticket as a mail reply."""
    return request.app[CONTEXT].signer.reply_address(ticket.route_address, ticket.code)


async def _reply_mail(request: web.Request, ticket: Ticket, form: Submitted) -> WebMail:
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        last = await session.scalar(
            select(Message.message_id)
            .where(Message.ticket_id == ticket.id, Message.kind.in_(PUBLIC_KINDS))
            .order_by(Message.id.desc())
            .limit(1)
        )
    return WebMail(
        sender_name=ticket.customer_name,
        sender_email=ticket.customer_email,
        to=ticket.route_address,
        subject=f"Re: [{ticket.code}] {ticket.subject}".strip(),
        text=form.fields.get("text", ""),
        attachments=tuple(form.files),
        in_reply_to=last,
    )


async def _linked(request: web.Request) -> Linked:
    """The ticket of a valid link, and where its thread goes on."""
    code = request.match_info["code"].upper()
    if not request.app[CONTEXT].signer.check_portal_token(code, request.query.get("k", "")):
        raise not_found(request)
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
        if ticket is None:
            raise not_found(request)
        survivor = ticket
        for _ in range(MAX_MERGE_HOPS):
            if survivor.merged_into_id is None:
                break
            survivor = await session.get(Ticket, survivor.merged_into_id)
    same = survivor.customer_email.lower() == ticket.customer_email.lower()
    return Linked(ticket, survivor if same else None)


async def _render(request, ticket: Ticket, form: Submitted, errors, *, status=200, sent=False):
    context = request.app[CONTEXT]
    tickets = context.runtime.settings.tickets
    values = {
        "closed": tickets.category_of(ticket.status) == "closed",
        "thread": await _public_thread(context.engine, Message.ticket_id == ticket.id),
        "csrf": context.signer.sign("portal-form", ticket.code),
        "text": form.fields.get("text", ""),
        "errors": errors,
        "sent": sent,
    }
    return _page(request, ticket, values, status)


async def _render_merged(request, ticket: Ticket, form: Submitted, *, status=200):
    """A merged ticket as it was when merged, read-only; a refused reply's text is
    shown back to be copied, not lost."""
    engine = request.app[CONTEXT].engine
    async with AsyncSession(engine) as session:
        own = await messages_when_merged(session, ticket)
    values = {
        "thread": await _public_thread(engine, Message.id.in_(own)),
        "merged": True,
        "refused": status == 409,
        "text": form.fields.get("text", ""),
    }
    return _page(request, ticket, values, status)


def _page(request, ticket: Ticket, values: dict, status: int) -> web.Response:
    runtime, signer = request.app[CONTEXT].runtime, request.app[CONTEXT].signer
    common = {
        "t": texts(ticket.locale),
        "lang": ticket.locale,
        "ticket": ticket,
        "team": team_name(runtime.settings, route_of(runtime, ticket)),
        "action": portal_path(signer, ticket.code),
        "key": urlencode({"k": signer.portal_token(ticket.code)}),
    }
    return aiohttp_jinja2.render_template(
        "portal.html", request, {**common, **values}, status=status
    )


async def _public_thread(
    engine, which: ColumnElement[bool]
) -> list[tuple[Message, list[tuple[int, str]]]]:
    """The ``which`` messages that customers see (customer mail and agent replies),
    oldest first, each with the ids and names of its attachments."""
    async with AsyncSession(engine) as session:
        messages = list(
            await session.scalars(
                select(Message).where(which, Message.kind.in_(PUBLIC_KINDS)).order_by(Message.id)
            )
        )
        files = await session.execute(
            select(Attachment.message_id, Attachment.id, Attachment.filename)
            .where(Attachment.message_id.in_([m.id for m in messages]))
            .order_by(Attachment.id)
        )
    attachments: dict[int, list[tuple[int, str]]] = {}
    for message_id, attachment_id, filename in files:
        attachments.setdefault(message_id, []).append((attachment_id, filename))
    return [(m, attachments.get(m.id, [])) for m in messages]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/t/{code}", show)
    app.router.add_post("/t/{code}", reply)
    app.router.add_get("/t/{code}/attachments/{id}", attachment)
