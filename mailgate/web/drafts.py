"""Drafts: the reply and the note an agent has typed on a ticket and not sent yet.

The ticket page saves them as the agent types (``POST /tickets/<code>/draft``, a
second after the last keystroke), so a status change, a refused merge or a reload
shows them again; sending the reply (or note) deletes it in the same transaction.
Saving a draft also tells the other agents on the ticket that this one is typing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Draft
from mailgate.db.session import sessions
from mailgate.db.upsert import upsert
from mailgate.web.auth import require_agent, signed_in_agent
from mailgate.web.keys import ENGINE
from mailgate.web.presence import mark_typing
from mailgate.web.ticket_view import find_ticket

KINDS = ("reply", "note")
MAX_DRAFT_CHARS = 200_000


async def drafts_of(session: AsyncSession, ticket_id: int, agent: str) -> dict[str, str]:
    """{kind: text} of ``agent``'s drafts on the ticket."""
    rows = await session.execute(
        select(Draft.kind, Draft.text).where(Draft.ticket_id == ticket_id, Draft.agent == agent)
    )
    return dict(rows.tuples().all())


async def discard_draft(session: AsyncSession, ticket_id: int, agent: str, kind: str) -> None:
    await session.execute(
        delete(Draft).where(Draft.ticket_id == ticket_id, Draft.agent == agent, Draft.kind == kind)
    )


@require_agent
async def save_draft(request: web.Request) -> web.StreamResponse:
    """Keep (or, when empty, delete) the agent's draft; 204."""
    agent = signed_in_agent(request)
    form = await request.post()
    kind, text = str(form.get("kind", "")), str(form.get("text", ""))
    if kind not in KINDS:
        raise web.HTTPBadRequest(text="A draft is a reply or a note.")
    if len(text) > MAX_DRAFT_CHARS:
        raise web.HTTPRequestEntityTooLarge(MAX_DRAFT_CHARS, len(text), text="Draft too long.")
    now = datetime.now(UTC)
    async with sessions(request.app[ENGINE]).begin() as session:
        ticket = await find_ticket(session, agent, request.match_info["code"])
        if text.strip():
            values = {"ticket_id": ticket.id, "agent": agent.email, "kind": kind}
            await upsert(
                session,
                Draft,
                {**values, "text": text, "updated_at": now},
                {"text": text, "updated_at": now},
            )
            await mark_typing(session, ticket.id, agent.email, kind, now)
        else:
            await discard_draft(session, ticket.id, agent.email, kind)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/tickets/{code}/draft", save_draft)
