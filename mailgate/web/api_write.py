"""The write side of the JSON API: post an agent reply or a note, change a ticket,
release one held back as spam, merge a ticket into another, split a message off.

Both go through ``mailgate.actions``, so a change made by a script is the same change
(audit event, mail to the customer or the agents) as one made by mail or on a page.
Bodies are checked by pydantic models: bad JSON is a 400, a well-formed body with a
wrong value a 422, a merged ticket a 409 (naming the ticket it joined). A merge into
a ticket that does not exist, or a split of a message not on the ticket, is a 404; a
merge or split the tickets' state does not allow a 409.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate import actions
from mailgate.actions.values import MAX_TAGS, SPACE, storable
from mailgate.db.models import Message, Ticket, TicketTag
from mailgate.db.session import sessions
from mailgate.numbers import ID_MAX
from mailgate.web.api import ApiError, message_shapes, ticket_shapes, unprocessable
from mailgate.web.keys import CONTEXT

API_ACTOR = "api"  # who the audit events of a PATCH name


def _storable(text: str) -> str:
    if not storable(text):
        raise ValueError("NUL characters and lone surrogates cannot be stored")
    return text


def _said(text: str) -> str:
    """Something besides white space: what ``MESSAGE_TEXT`` states."""
    if not text.strip():
        raise ValueError("the message is empty")
    return text


# A message's text as the OpenAPI document states it (lone surrogates are refused too).
MESSAGE_TEXT = rf"^[^\x00]*[^{SPACE}\x00][^\x00]*$"
Text = Annotated[StrictStr, AfterValidator(_storable)]


class JsonBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewMessage(JsonBody):
    kind: Literal["agent", "note"]
    text: Annotated[Text, AfterValidator(_said)]
    agent: Text = Field(min_length=1)


class TicketChange(JsonBody):
    """Absent keys stay as they are; only ``assignee`` may be null (nobody). Values
    are checked by the actions (a configured status, an agent, a tag's form)."""

    status: Text = None  # type: ignore[assignment]  # absent: unchanged; null refused
    priority: Text = None  # type: ignore[assignment]
    assignee: Text | None = None
    tags: list[StrictStr] = Field(None, max_length=MAX_TAGS)  # the whole new set


async def post_message(request: web.Request) -> web.Response:
    body = await read_body(request, NewMessage)
    context = request.app[CONTEXT]
    action = actions.agent_reply if body.kind == "agent" else actions.add_note
    async with sessions(context.engine).begin() as session:
        ticket = await _ticket(session, request.match_info["code"])
        message = await _act(action(session, context.actions(), ticket, body.agent, body.text))
        await session.flush()
        shape = next(m for m in await message_shapes(session, ticket) if m["id"] == message.id)
    context.wake_delivery()
    context.wake_sla()
    return web.json_response(shape, status=201)


async def patch_ticket(request: web.Request) -> web.Response:
    body = await read_body(request, TicketChange)
    given = body.model_fields_set
    if not given:
        raise ApiError(422, "unprocessable", "nothing to change: give status, priority, ...")
    context = request.app[CONTEXT]
    async with sessions(context.engine).begin() as session:
        ticket = await _ticket(session, request.match_info["code"])
        current = set(
            await session.scalars(select(TicketTag.tag).where(TicketTag.ticket_id == ticket.id))
        )
        wanted = set(body.tags) if body.tags is not None else current
        changes = await _act(
            actions.update_ticket(
                session,
                context.actions(),
                ticket,
                API_ACTOR,
                status=body.status,
                priority=body.priority,
                assignee=body.assignee if "assignee" in given else actions.UNSET,
                add_tags=sorted(wanted - current),
                remove_tags=sorted(current - wanted),
            )
        )
        await session.flush()
        [shape] = await ticket_shapes(
            session, context.runtime.settings, [ticket], context.runtime.clock.now()
        )
    context.wake_delivery()
    context.wake_sla()
    return web.json_response({**shape, "changes": changes})


class MergeRequest(JsonBody):
    into: Text = Field(min_length=1)


def _message_id(value: int | float) -> int:
    """A JSON integer as JSON Schema has it (``2.0`` is one too), within the ids."""
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("not a whole number")
    if not 1 <= value <= ID_MAX:
        raise ValueError(f"must be from 1 to {ID_MAX}")
    return int(value)


class SplitRequest(JsonBody):
    message_id: Annotated[StrictInt | StrictFloat, AfterValidator(_message_id)]


async def merge(request: web.Request) -> web.Response:
    """Merge the ticket into ``into``; the answer is the ticket it joined."""
    body = await read_body(request, MergeRequest)
    context = request.app[CONTEXT]
    async with sessions(context.engine).begin() as session:
        ticket = await _ticket(session, request.match_info["code"])
        wanted = body.into.strip().upper()
        target = await session.scalar(select(Ticket).where(Ticket.code == wanted))
        if target is None:
            raise ApiError(404, "not_found", f"into: there is no ticket {wanted}")
        await _as_conflict(
            actions.merge_tickets(session, context.actions(), ticket, target, API_ACTOR)
        )
        await session.flush()
        runtime = context.runtime
        [shape] = await ticket_shapes(session, runtime.settings, [target], runtime.clock.now())
    return web.json_response(shape)


async def split(request: web.Request) -> web.Response:
    """Split a customer message off into a new ticket; the answer is that ticket."""
    body = await read_body(request, SplitRequest)
    context = request.app[CONTEXT]
    async with sessions(context.engine).begin() as session:
        ticket = await _ticket(session, request.match_info["code"])
        message = await session.get(Message, body.message_id)
        if message is None or message.ticket_id != ticket.id:
            raise ApiError(404, "not_found", f"message_id: no such message on {ticket.code}")
        new = await _as_conflict(
            actions.split_message(session, context.actions(), message, API_ACTOR)
        )
        await session.flush()
        runtime = context.runtime
        [shape] = await ticket_shapes(session, runtime.settings, [new], runtime.clock.now())
    response = web.json_response(shape, status=201)
    response.headers["Location"] = f"/api/v1/tickets/{new.code}"
    return response


async def not_spam(request: web.Request) -> web.Response:
    """Release a ticket held back as spam; its acknowledgement goes out. A ticket in
    the inbox already is a 409: the request is sound, the ticket's state is not."""
    context = request.app[CONTEXT]
    async with sessions(context.engine).begin() as session:
        ticket = await _ticket(session, request.match_info["code"])
        if not ticket.spam:
            raise ApiError(409, "conflict", f"{ticket.code} is not held back as spam")
        await _act(actions.release_spam(session, context.actions(), ticket, API_ACTOR))
        await session.flush()
        [shape] = await ticket_shapes(
            session, context.runtime.settings, [ticket], context.runtime.clock.now()
        )
    context.wake_delivery()
    context.wake_sla()
    return web.json_response(shape)


async def read_body(request: web.Request, model: type[JsonBody]) -> JsonBody:
    try:
        data = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "bad_request", "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
        raise ApiError(422, "unprocessable", "; ".join(problems)) from None


async def _ticket(session: AsyncSession, code: str) -> Ticket:
    code = code.upper()
    ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
    if ticket is None:
        raise ApiError(404, "not_found", f"no ticket {code}")
    if ticket.merged_into_id is not None:
        survivor = await session.get(Ticket, ticket.merged_into_id)
        raise ApiError(409, "conflict", f"{code} was merged into {survivor.code}; use that")
    return ticket


async def _act(awaitable):
    """Await an action; its ActionError (a value it cannot use) becomes a 422."""
    try:
        return await awaitable
    except actions.ActionError as error:
        raise unprocessable(error) from None


async def _as_conflict(awaitable):
    """Await a merge or split; its ActionError is the tickets' state (merged already,
    the only message...), not the request's form: a 409."""
    try:
        return await awaitable
    except actions.ActionError as error:
        raise ApiError(409, "conflict", f"{error.field}: {error.message}") from None


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/tickets/{code}/messages", post_message)
    app.router.add_patch("/api/v1/tickets/{code}", patch_ticket)
    app.router.add_post("/api/v1/tickets/{code}/not-spam", not_spam)
    app.router.add_post("/api/v1/tickets/{code}/merge", merge)
    app.router.add_post("/api/v1/tickets/{code}/split", split)
