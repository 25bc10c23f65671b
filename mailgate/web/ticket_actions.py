"""What an agent does on a ticket page: reply, note, change, merge, split, not spam.

Every change goes through ``mailgate.actions`` (the same code agents' mail commands
and the API use) in one transaction; the delivery worker is woken after the commit.
A refused change (an ActionError) shows the page again with the reason and keeps
what the agent typed. A reply may set the status in the same step (and transaction).
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from mailgate.actions import (
    UNSET,
    ActionError,
    NewAttachment,
    add_note,
    agent_reply,
    merge_tickets,
    release_spam,
    split_message,
    update_ticket,
)
from mailgate.db.models import Message
from mailgate.db.session import sessions
from mailgate.numbers import whole_number
from mailgate.web.auth import AgentSession, require_agent, signed_in_agent
from mailgate.web.confirm import (
    CONFIRMED,
    ask,
    board_move_question,
    merge_question,
    merge_target,
)
from mailgate.web.drafts import discard_draft
from mailgate.web.keys import CONTEXT
from mailgate.web.pages import see_other
from mailgate.web.ticket_page import page_extras, render_ticket
from mailgate.web.ticket_view import find_ticket, load_view

_TAG_SEPARATORS = re.compile(r"[\s,]+")


async def _act(request: web.Request, perform) -> web.StreamResponse:
    """Run ``perform(session, ctx, ticket, agent, form)`` -> where to go next."""
    agent = signed_in_agent(request)
    form = await request.post()
    context = request.app[CONTEXT]
    ctx = context.actions()
    code = request.match_info["code"]
    try:
        async with sessions(context.engine).begin() as session:
            ticket = await find_ticket(session, agent, code)
            location = await perform(session, ctx, ticket, agent, form)
    except ActionError as error:
        return await _refused(request, agent, code, form, error)
    context.wake_delivery()
    context.wake_sla()
    return see_other(location)


async def _refused(request, agent: AgentSession, code: str, form, error: ActionError):
    """The page again with the reason; what was typed stays (the drafts, and the form)."""
    async with sessions(request.app[CONTEXT].engine)() as session:
        ticket = await find_ticket(session, agent, code)
        runtime = request.app[CONTEXT].runtime
        view = await load_view(session, ticket, agent, runtime.settings, runtime.clock.now())
        extras = await page_extras(request, session, ticket, agent)
    typed = {key: value for key, value in form.items() if isinstance(value, str)}
    return render_ticket(request, view, 422, error=error, form=typed, **extras)


async def _attachments(form) -> list[NewAttachment]:
    """The files of a form (file inputs left empty send a nameless, empty part)."""
    files = []
    for field in form.getall("files", []):
        if isinstance(field, web.FileField) and field.filename:
            data = await asyncio.to_thread(field.file.read)
            files.append(NewAttachment(field.filename, field.content_type, data))
    return files


@require_agent
async def reply(request: web.Request) -> web.StreamResponse:
    async def perform(session, ctx, ticket, agent, form):
        text, files = str(form.get("text", "")), await _attachments(form)
        await agent_reply(session, ctx, ticket, agent.email, text, files)
        if status := str(form.get("status", "")):  # "Send and set <status>": one step
            await update_ticket(session, ctx, ticket, agent.email, status=status)
        await discard_draft(session, ticket.id, agent.email, "reply")
        return f"/tickets/{ticket.code}?done=replied"

    return await _act(request, perform)


@require_agent
async def note(request: web.Request) -> web.StreamResponse:
    async def perform(session, ctx, ticket, agent, form):
        text, files = str(form.get("text", "")), await _attachments(form)
        await add_note(session, ctx, ticket, agent.email, text, files)
        await discard_draft(session, ticket.id, agent.email, "note")
        return f"/tickets/{ticket.code}?done=noted"

    return await _act(request, perform)


@require_agent
async def change(request: web.Request) -> web.StreamResponse:
    """Status, priority, assignee and tags; from the ticket page or a board card (a
    card moved to a solved status asks first: the customer is mailed)."""
    form = await request.post()
    if form.get("next") == "board" and not form.get(CONFIRMED):
        agent = signed_in_agent(request)
        if question := await board_move_question(request, agent, form):
            return ask(request, question)

    async def perform(session, ctx, ticket, agent, form):
        assignee = str(form.get("assignee", ""))
        await update_ticket(
            session,
            ctx,
            ticket,
            agent.email,
            status=str(form.get("status", "")) or None,
            priority=str(form.get("priority", "")) or None,
            assignee=UNSET if not assignee else (None if assignee == "none" else assignee),
            add_tags=[t for t in _TAG_SEPARATORS.split(str(form.get("add_tags", ""))) if t],
            remove_tags=form.getall("remove_tag", []),
        )
        if form.get("next") == "board":
            return "/board"
        return f"/tickets/{ticket.code}?done=updated"

    return await _act(request, perform)


@require_agent
async def merge(request: web.Request) -> web.StreamResponse:
    """Merge into the ticket the form names, once the agent confirmed it."""
    form = await request.post()
    if not form.get(CONFIRMED):
        agent = signed_in_agent(request)
        try:
            return ask(request, await merge_question(request, agent, form))
        except ActionError as error:
            return await _refused(request, agent, request.match_info["code"], form, error)

    async def perform(session, ctx, ticket, agent, form):
        target = await merge_target(session, agent, form)
        await merge_tickets(session, ctx, ticket, target, agent.email)
        return f"/tickets/{target.code}?merged={ticket.code}"

    return await _act(request, perform)


@require_agent
async def split(request: web.Request) -> web.StreamResponse:
    async def perform(session, ctx, ticket, agent, form):
        wanted = whole_number(str(form.get("message", "")))
        message = await session.get(Message, wanted) if wanted is not None else None
        if message is None or message.ticket_id != ticket.id:
            raise ActionError("message", "that message is not on this ticket")
        new = await split_message(session, ctx, message, agent.email)
        return f"/tickets/{new.code}?done=split"

    return await _act(request, perform)


@require_agent
async def not_spam(request: web.Request) -> web.StreamResponse:
    async def perform(session, ctx, ticket, agent, form):
        await release_spam(session, ctx, ticket, agent.email)
        return f"/tickets/{ticket.code}?done=not_spam"

    return await _act(request, perform)


def add_routes(app: web.Application) -> None:
    for name, handler in (
        ("reply", reply),
        ("note", note),
        ("update", change),
        ("merge", merge),
        ("split", split),
        ("not-spam", not_spam),
    ):
        app.router.add_post(f"/tickets/{{code}}/{name}", handler)
