"""The canned replies page ``/canned``: list, create, edit and delete saved replies,
and the picker of the ticket page's reply box.

Who may keep which reply is ``mailgate.actions.canned.may_keep``; a reply the agent
may not keep is "not found" to them. A refused save shows the form again with the
reason and what was typed.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions import ActionError
from mailgate.actions.canned import Scope, kept_by, may_keep, rendered, save, scope_of, usable_on
from mailgate.actions.canned_text import PLACEHOLDERS
from mailgate.db.models import CannedReply, Ticket
from mailgate.db.session import sessions
from mailgate.numbers import whole_number
from mailgate.web.auth import AgentSession, require_agent, signed_in_agent
from mailgate.web.keys import CONTEXT
from mailgate.web.pages import see_other

PERSONAL = "personal"


def _queues(request: web.Request) -> list[str]:
    return sorted({route.queue for route in request.app[CONTEXT].runtime.settings.routes})


def _scopes(request: web.Request, agent: AgentSession) -> list[tuple[str, str]]:
    """(form value, label) of the scopes ``agent`` may save a reply in."""
    shared = [q for q in _queues(request) if may_keep(agent, Scope(queue=q))]
    return [(PERSONAL, "Personal (only you)"), *((q, f"Shared, {q} queue") for q in shared)]


def _scope(request: web.Request, agent: AgentSession, value: str) -> Scope:
    if value == PERSONAL:
        return Scope(owner=agent.email)
    if value in dict(_scopes(request, agent)):
        return Scope(queue=value)
    raise ActionError("scope", "choose your personal replies or a queue you work in")


def _render(request, agent, status: int = 200, **values) -> web.Response:
    values = {
        "scopes": _scopes(request, agent),
        "placeholders": PLACEHOLDERS,
        "personal": PERSONAL,
        "form": {},
        "error": None,
        "editing": None,  # the id of the reply the form changes
        **values,
    }
    return aiohttp_jinja2.render_template("canned.html", request, values, status=status)


async def _listing(request: web.Request, agent: AgentSession) -> list[CannedReply]:
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        return await kept_by(session, agent, _queues(request))


@require_agent
async def canned_page(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    replies = await _listing(request, agent)
    return _render(request, agent, replies=replies, done=request.query.get("done", ""))


@require_agent
async def edit_page(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    async with AsyncSession(request.app[CONTEXT].engine) as session:
        reply = await _kept(session, request, agent)
    scope = PERSONAL if reply.owner else reply.queue
    form = {"name": reply.name, "body": reply.body, "scope": scope}
    return _render(request, agent, editing=reply.id, form=form)


@require_agent
async def create(request: web.Request) -> web.StreamResponse:
    return await _save(request, editing=False)


@require_agent
async def update(request: web.Request) -> web.StreamResponse:
    return await _save(request, editing=True)


async def _save(request: web.Request, editing: bool) -> web.StreamResponse:
    agent = signed_in_agent(request)
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    try:
        async with sessions(request.app[CONTEXT].engine).begin() as session:
            reply = await _kept(session, request, agent) if editing else None
            scope = _scope(request, agent, form.get("scope", PERSONAL))
            name, body = form.get("name", ""), form.get("body", "").replace("\r\n", "\n")
            await save(session, reply, scope, name, body, agent.email)
    except ActionError as error:
        values = {"editing": request.match_info.get("id"), "form": form, "error": error}
        if not editing:
            values["replies"] = await _listing(request, agent)
        return _render(request, agent, 422, **values)
    return see_other(f"/canned?done={'saved' if editing else 'created'}")


@require_agent
async def delete(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    async with sessions(request.app[CONTEXT].engine).begin() as session:
        await session.delete(await _kept(session, request, agent))
    return see_other("/canned?done=deleted")


async def _kept(session: AsyncSession, request: web.Request, agent) -> CannedReply:
    """The reply of the URL, if ``agent`` may keep it; else 404."""
    number = whole_number(request.match_info["id"])
    reply = await session.get(CannedReply, number) if number is not None else None
    if reply is None or not may_keep(agent, scope_of(reply)):
        raise web.HTTPNotFound(text="No such canned reply of yours or of your queues.")
    return reply


async def picker(
    request: web.Request, session: AsyncSession, ticket: Ticket, agent: AgentSession
) -> list[dict]:
    """The replies the reply box offers on ``ticket``, rendered for it."""
    ctx = request.app[CONTEXT].actions()
    return [
        {
            "id": reply.id,
            "name": reply.name,
            "scope": "personal" if reply.owner else reply.queue,
            "text": rendered(ctx, ticket, agent.email, reply),
        }
        for reply in await usable_on(session, ticket, agent.email)
    ]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/canned", canned_page)
    app.router.add_post("/canned", create)
    app.router.add_get("/canned/{id}", edit_page)
    app.router.add_post("/canned/{id}", update)
    app.router.add_post("/canned/{id}/delete", delete)
