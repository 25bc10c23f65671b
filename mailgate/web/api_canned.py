"""Canned replies in the JSON API: list, create, change, delete, and render one for a
ticket as an agent would send it (the script then posts that text as a reply).

A bearer token speaks for the whole desk, as on tickets: it keeps every reply, shared
(``queue``) or personal (``owner``). A name taken in the scope is a 409; a name or a
text the document's patterns refuse (an unknown placeholder) a 422.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StrictStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions import ActionError, resolve_agent
from mailgate.actions.canned import CannedConflict, Scope, rendered, save, scope_of, usable_on
from mailgate.actions.canned_text import NAME_PATTERN
from mailgate.db.models import CannedReply, Ticket
from mailgate.db.session import sessions
from mailgate.localtime import iso_utc
from mailgate.numbers import whole_number
from mailgate.web.api import ApiError, unprocessable
from mailgate.web.api_write import API_ACTOR, JsonBody, Text, read_body
from mailgate.web.keys import CONTEXT, ENGINE, RUNTIME

Name = Annotated[Text, Field(pattern=NAME_PATTERN)]


class NewCannedReply(JsonBody):
    """Exactly one of ``queue`` (shared) and ``owner`` (personal)."""

    name: Name
    body: Text
    queue: StrictStr = None  # type: ignore[assignment]  # absent: personal; null refused
    owner: StrictStr = None  # type: ignore[assignment]  # absent: shared; null refused


class CannedReplyChange(JsonBody):
    name: Name = None  # type: ignore[assignment]  # absent: unchanged
    body: Text = None  # type: ignore[assignment]


def shape(reply: CannedReply) -> dict:
    return {
        "id": reply.id,
        "name": reply.name,
        "body": reply.body,
        "scope": "personal" if reply.owner else "shared",
        "queue": reply.queue or None,
        "owner": reply.owner or None,
        "author": reply.author,
        "created_at": iso_utc(reply.created_at),
        "updated_at": iso_utc(reply.updated_at),
    }


async def list_replies(request: web.Request) -> web.Response:
    query = select(CannedReply).order_by(CannedReply.name, CannedReply.id)
    if "queue" in request.query:
        query = query.where(CannedReply.queue == request.query["queue"])
    if "owner" in request.query:
        query = query.where(CannedReply.owner == request.query["owner"].lower())
    async with AsyncSession(request.app[ENGINE]) as session:
        replies = list(await session.scalars(query))
    return web.json_response({"canned_replies": [shape(reply) for reply in replies]})


async def get_reply(request: web.Request) -> web.Response:
    async with AsyncSession(request.app[ENGINE]) as session:
        return web.json_response(shape(await _reply(session, request)))


async def create_reply(request: web.Request) -> web.Response:
    body = await read_body(request, NewCannedReply)
    scope = _scope(request, body)
    async with sessions(request.app[ENGINE]).begin() as session:
        reply = await _save(save(session, None, scope, body.name, body.body, API_ACTOR))
        answer = shape(reply)
    return web.json_response(answer, status=201)


async def update_reply(request: web.Request) -> web.Response:
    body = await read_body(request, CannedReplyChange)
    if not body.model_fields_set:
        raise ApiError(422, "unprocessable", "nothing to change: give name or body")
    async with sessions(request.app[ENGINE]).begin() as session:
        reply = await _reply(session, request)
        name = body.name if body.name is not None else reply.name
        text = body.body if body.body is not None else reply.body
        await _save(save(session, reply, scope_of(reply), name, text, API_ACTOR))
        answer = shape(reply)
    return web.json_response(answer)


async def delete_reply(request: web.Request) -> web.Response:
    async with sessions(request.app[ENGINE]).begin() as session:
        await session.delete(await _reply(session, request))
    return web.Response(status=204)


async def render_reply(request: web.Request) -> web.Response:
    """The reply filled in for the ticket and ``agent``, if that agent may use it there."""
    try:
        agent = resolve_agent(request.app[RUNTIME], request.query.get("agent", ""))
    except ActionError as error:
        raise ApiError(422, "unprocessable", f"agent: {error.message}") from None
    code = request.match_info["code"].upper()
    async with AsyncSession(request.app[ENGINE]) as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
        if ticket is None:
            raise ApiError(404, "not_found", f"no ticket {code}")
        wanted = await _reply(session, request)
        if wanted.id not in {reply.id for reply in await usable_on(session, ticket, agent)}:
            raise ApiError(404, "not_found", f"{agent} has no canned reply {wanted.id} on {code}")
        text = rendered(request.app[CONTEXT].actions(), ticket, agent, wanted)
    return web.json_response({"id": wanted.id, "name": wanted.name, "text": text})


def _scope(request: web.Request, body: NewCannedReply) -> Scope:
    if ("queue" in body.model_fields_set) == ("owner" in body.model_fields_set):
        raise ApiError(422, "unprocessable", "give either queue (shared) or owner (personal)")
    if body.owner is not None:
        try:
            return Scope(owner=resolve_agent(request.app[RUNTIME], body.owner))
        except ActionError as error:
            raise ApiError(422, "unprocessable", f"owner: {error.message}") from None
    queues = {route.queue for route in request.app[CONTEXT].runtime.settings.routes}
    if body.queue not in queues:
        raise ApiError(422, "unprocessable", f"queue: no queue {body.queue!r} is configured")
    return Scope(queue=body.queue)


async def _reply(session: AsyncSession, request: web.Request) -> CannedReply:
    number = whole_number(request.match_info["id"])
    reply = await session.get(CannedReply, number) if number is not None else None
    if reply is None:
        raise ApiError(404, "not_found", f"no canned reply {request.match_info['id']}")
    return reply


async def _save(saving) -> CannedReply:
    try:
        return await saving
    except CannedConflict as error:
        raise ApiError(409, "conflict", f"{error.field}: {error.message}") from None
    except ActionError as error:
        raise unprocessable(error) from None


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/canned-replies", list_replies)
    app.router.add_post("/api/v1/canned-replies", create_reply)
    app.router.add_get("/api/v1/canned-replies/{id}", get_reply)
    app.router.add_patch("/api/v1/canned-replies/{id}", update_reply)
    app.router.add_delete("/api/v1/canned-replies/{id}", delete_reply)
    app.router.add_get("/api/v1/tickets/{code}/canned-replies/{id}/rendered", render_reply)
