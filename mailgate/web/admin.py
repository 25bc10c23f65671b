"""Admin pages: the quarantine (read, download, reprocess) and the outbox's captured and
failed mail (the embedded default captures instead of sending: this is where it shows).

Reprocessing runs in the daemon's own pipeline (``WebContext.reprocess``, the code
behind ``mailgate reprocess``), so its outgoing mail is delivered at once.
"""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.parser import BytesParser

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import JournalEntry, OutboxItem
from mailgate.numbers import whole_number
from mailgate.web.auth import require_admin
from mailgate.web.downloads import download
from mailgate.web.keys import CONTEXT
from mailgate.web.paging import count_rows

PAGE_SIZE = 200
SHOWN_STATES = ("captured", "failed")


async def quarantine(request: web.Request) -> web.Response:
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        entries = list(
            await session.scalars(
                select(JournalEntry)
                .where(JournalEntry.state == "quarantined")
                .order_by(JournalEntry.id)
                .limit(PAGE_SIZE)
            )
        )
    values = {"entries": entries, "outcome": request.query.get("outcome", "")}
    return aiohttp_jinja2.render_template("admin_quarantine.html", request, values)


async def quarantined_raw(request: web.Request) -> web.Response:
    """The entry's bytes exactly as received, as a download (never shown inline)."""
    entry = await _get(request, JournalEntry, int(request.match_info["id"]))
    return download(entry.raw, f"journal-{entry.id}.eml", "application/octet-stream")


async def reprocess(request: web.Request) -> web.Response:
    """POST: one entry (``/admin/quarantine/{id}/reprocess``) or every quarantined one."""
    run = request.app[CONTEXT].reprocess
    if run is None:
        raise web.HTTPServiceUnavailable(text="no pipeline runs in this process")
    entry_id = request.match_info.get("id")
    outcomes = await run([int(entry_id)] if entry_id else None)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    location = request.app.router["quarantine"].url_for().with_query(outcome=summary or "none")
    raise web.HTTPSeeOther(location)


async def outbox(request: web.Request) -> web.Response:
    """Newest first, by id: ``before`` an id goes on to older mail, ``after`` one back
    to newer mail; the page says how many there are in all."""
    size = whole_number(request.query.get("limit", ""), PAGE_SIZE) or PAGE_SIZE
    shown = select(OutboxItem).where(OutboxItem.state.in_(SHOWN_STATES))
    before = whole_number(request.query.get("before", ""))
    after = whole_number(request.query.get("after", ""))
    if after is not None:
        query = shown.where(OutboxItem.id > after).order_by(OutboxItem.id)
    elif before is not None:
        query = shown.where(OutboxItem.id < before).order_by(OutboxItem.id.desc())
    else:
        query = shown.order_by(OutboxItem.id.desc())
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        items = list(await session.scalars(query.limit(size)))
        items.sort(key=lambda item: item.id, reverse=True)
        total = await count_rows(session, shown)
        above = await count_rows(session, shown.where(OutboxItem.id > items[0].id)) if items else 0
    values = {
        "rows": [(item, _headers(item.raw)) for item in items],
        "total": total,
        "limit": request.query.get("limit", ""),
        "newer": items[0].id if above else None,
        "more": items[-1].id if items and above + len(items) < total else None,
    }
    return aiohttp_jinja2.render_template("admin_outbox.html", request, values)


async def outbox_item(request: web.Request) -> web.Response:
    item = await _get(request, OutboxItem, int(request.match_info["id"]))
    message = BytesParser(policy=email.policy.default).parsebytes(item.raw)
    values = {"item": item, "message": message, "body": _text(message)}
    return aiohttp_jinja2.render_template("admin_outbox_item.html", request, values)


async def outbox_raw(request: web.Request) -> web.Response:
    item = await _get(request, OutboxItem, int(request.match_info["id"]))
    return download(item.raw, f"outbox-{item.id}.eml", "application/octet-stream")


async def _get(request: web.Request, model, key: int):
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        row = await session.get(model, key)
    if row is None:
        raise web.HTTPNotFound(text=f"no {model.__tablename__} entry {key}")
    return row


def _headers(raw: bytes) -> EmailMessage:
    return BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return body.get_content() if body is not None else "(no text part)"


def add_routes(app: web.Application) -> None:
    """Every admin page is for signed-in admins only (others: login page or 403)."""
    add = app.router.add_route
    add("GET", "/admin/quarantine", require_admin(quarantine), name="quarantine")
    add("POST", "/admin/quarantine/reprocess", require_admin(reprocess))
    add("GET", "/admin/quarantine/{id:\\d+}/raw", require_admin(quarantined_raw))
    add("POST", "/admin/quarantine/{id:\\d+}/reprocess", require_admin(reprocess))
    add("GET", "/admin/outbox", require_admin(outbox))
    add("GET", "/admin/outbox/{id:\\d+}", require_admin(outbox_item))
    add("GET", "/admin/outbox/{id:\\d+}/raw", require_admin(outbox_raw))
