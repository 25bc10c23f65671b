"""The ticket page ``/tickets/<code>`` and its downloads (attachments, original .eml),
served as ``mailgate.web.downloads`` serves every download."""

from __future__ import annotations

import asyncio

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import JournalEntry, Message, OutboxItem, Ticket
from mailgate.numbers import whole_number
from mailgate.pipeline.spam import stored_summary
from mailgate.web.auth import AgentSession, require_agent, signed_in_agent
from mailgate.web.canned import picker
from mailgate.web.changes import current_cursor
from mailgate.web.downloads import download, find_attachment
from mailgate.web.drafts import drafts_of
from mailgate.web.inbox import choices
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.mailhtml import REMOTE_CONTENT_POLICY, has_images, with_remote_content
from mailgate.web.pages import see_other
from mailgate.web.ticket_view import TicketView, find_ticket, load_view


@require_agent
async def ticket_page(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    async with AsyncSession(request.app[ENGINE]) as session:
        ticket = await find_ticket(session, agent, request.match_info["code"])
        if ticket.merged_into_id is not None:
            survivor = await session.get(Ticket, ticket.merged_into_id)
            return see_other(f"/tickets/{survivor.code}?merged={ticket.code}")
        runtime = request.app[RUNTIME]
        view = await load_view(session, ticket, agent, runtime.settings, runtime.clock.now())
        remote = await _remote_content(session, view, request.query.get("remote", ""))
        extras = await page_extras(request, session, ticket, agent)
    response = render_ticket(request, view, remote=remote, **extras)
    if remote:
        response.headers["Content-Security-Policy"] = REMOTE_CONTENT_POLICY
    return response


async def page_extras(
    request: web.Request, session: AsyncSession, ticket: Ticket, agent: AgentSession
) -> dict:
    """The canned replies the agent may insert, their drafts on the ticket, and the
    cursor the page's live stream starts from."""
    return {
        "canned": await picker(request, session, ticket, agent),
        "drafts": await drafts_of(session, ticket.id, agent.email),
        "live_since": str(await current_cursor(await session.connection())),
    }


def render_ticket(
    request: web.Request, view: TicketView, status: int = 200, **values
) -> web.Response:
    """The ticket page; after a refused action ``values`` carry the error and the form."""
    values.setdefault("remote", {})
    values.setdefault("canned", [])
    values.setdefault("form", {})
    values.setdefault("drafts", {})
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
        found = await find_attachment(
            session, request.match_info["id"], Message.ticket_id == ticket.id
        )
    if found is None:
        raise web.HTTPNotFound(text="No such attachment on this ticket.")
    return download(*found)


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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/tickets/{code}", ticket_page)
    app.router.add_get("/tickets/{code}/attachments/{id}", attachment)
    app.router.add_get("/tickets/{code}/messages/{id}.eml", original)
