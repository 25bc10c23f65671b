"""The ticket page ``/tickets/<code>`` and its downloads (attachments, original .eml).

Downloads are always ``Content-Disposition: attachment`` under ``nosniff`` and a
sandboxing policy: a file a customer sent never renders as one of our pages.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Attachment, Blob, JournalEntry, Message, OutboxItem, Ticket
from mailgate.numbers import whole_number
from mailgate.pipeline.spam import stored_summary
from mailgate.web.auth import require_agent, signed_in_agent
from mailgate.web.inbox import choices
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.mailhtml import REMOTE_CONTENT_POLICY, has_images, with_remote_content
from mailgate.web.names import namer
from mailgate.web.pages import see_other
from mailgate.web.ticket_view import TicketView, find_ticket, load_view

DOWNLOAD_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*", re.ASCII)
_NOT_PLAIN = re.compile(r'[^\x20-\x7e]|["\\]')  # outside printable ASCII, or a quote


@require_agent
async def ticket_page(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    async with AsyncSession(request.app[ENGINE]) as session:
        ticket = await find_ticket(session, agent, request.match_info["code"])
        if ticket.merged_into_id is not None:
            survivor = await session.get(Ticket, ticket.merged_into_id)
            return see_other(f"/tickets/{survivor.code}?merged={ticket.code}")
        view = await load_view(session, ticket, namer(request.app[RUNTIME].settings))
        remote = await _remote_content(session, view, request.query.get("remote", ""))
    response = render_ticket(request, view, remote=remote)
    if remote:
        response.headers["Content-Security-Policy"] = REMOTE_CONTENT_POLICY
    return response


def render_ticket(
    request: web.Request, view: TicketView, status: int = 200, **values
) -> web.Response:
    """The ticket page; after a refused action ``values`` carry the error and the form."""
    values.setdefault("remote", {})
    values.setdefault("form", {})
    context = {
        "view": view,
        "ticket": view.ticket,
        "has_images": has_images,
        "done": request.query.get("done", ""),
        "merged": request.query.get("merged", ""),
        "spam_summary": stored_summary,
        **choices(request.app[RUNTIME], signed_in_agent(request)),
        **values,
    }
    return aiohttp_jinja2.render_template("ticket.html", request, context, status=status)


async def _remote_content(session: AsyncSession, view: TicketView, wanted: str) -> dict:
    """{message id: HTML with remote images} for the message the agent asked about."""
    entry = next((e for e in view.timeline if e.message and str(e.message.id) == wanted), None)
    if entry is None or entry.message.journal_id is None:
        return {}
    raw = await session.scalar(
        select(JournalEntry.raw).where(JournalEntry.id == entry.message.journal_id)
    )
    html = await asyncio.to_thread(with_remote_content, raw) if raw else None
    return {entry.message.id: html} if html else {}


@require_agent
async def attachment(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    async with AsyncSession(request.app[ENGINE]) as session:
        ticket = await find_ticket(session, agent, request.match_info["code"])
        row = (
            await session.execute(
                select(Attachment, Blob.data)
                .join(Message, Message.id == Attachment.message_id)
                .join(Blob, Blob.sha256 == Attachment.sha256)
                .where(
                    Attachment.id == _number(request.match_info["id"]),
                    Message.ticket_id == ticket.id,
                )
            )
        ).first()
    if row is None:
        raise web.HTTPNotFound(text="No such attachment on this ticket.")
    item, data = row
    return download(data, item.filename, item.content_type)


@require_agent
async def original(request: web.Request) -> web.StreamResponse:
    """The message as it arrived (journal), or as it was sent (outbox), as .eml."""
    agent = signed_in_agent(request)
    async with AsyncSession(request.app[ENGINE]) as session:
        ticket = await find_ticket(session, agent, request.match_info["code"])
        message = await session.scalar(
            select(Message).where(
                Message.id == _number(request.match_info["id"]), Message.ticket_id == ticket.id
            )
        )
        raw = await _raw_of(session, message) if message else None
    if raw is None:
        raise web.HTTPNotFound(text="This message has no original mail (a note made on the web).")
    return download(raw, f"{ticket.code}-{message.id}.eml", "message/rfc822")


async def _raw_of(session: AsyncSession, message: Message) -> bytes | None:
    if message.journal_id is not None:
        return await session.scalar(
            select(JournalEntry.raw).where(JournalEntry.id == message.journal_id)
        )
    return await session.scalar(
        select(OutboxItem.raw).where(OutboxItem.message_id == message.message_id).limit(1)
    )


def _number(text: str) -> int:
    number = whole_number(text)
    if number is None:
        raise web.HTTPNotFound()
    return number


def download(data: bytes, filename: str, content_type: str) -> web.Response:
    response = web.Response(body=data, content_type=_safe_type(content_type))
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["Content-Security-Policy"] = DOWNLOAD_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _safe_type(content_type: str) -> str:
    """The stored type if it is a plain ``type/subtype``, else octet-stream."""
    return (
        content_type.lower() if _MEDIA_TYPE.fullmatch(content_type) else "application/octet-stream"
    )


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name (RFC 6266)."""
    filename = filename or "attachment"
    fallback = _NOT_PLAIN.sub("_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/tickets/{code}", ticket_page)
    app.router.add_get("/tickets/{code}/attachments/{id}", attachment)
    app.router.add_get("/tickets/{code}/messages/{id}.eml", original)
