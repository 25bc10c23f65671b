"""The JSON API under ``/api/v1``: bearer tokens, stable shapes (PRODUCT.md), JSON errors."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from aiohttp import web
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import ActionError
from mailgate.actions.satisfaction import ratings_of
from mailgate.actions.values import filter_values
from mailgate.config import Settings
from mailgate.db.models import Attachment, Message, SatisfactionRating, Ticket, TicketTag
from mailgate.localtime import iso_utc
from mailgate.numbers import whole_number
from mailgate.signing import same_text
from mailgate.sla.tickets import TicketSla, tickets_sla
from mailgate.web.customer_history import customer_summary, everything, tickets_of
from mailgate.web.downloads import download, find_attachment
from mailgate.web.export import TICKET_COLUMNS, export_name, stream_csv, ticket_rows
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.listing import due_condition, message_counts, tags_by_ticket
from mailgate.web.search import matching

log = logging.getLogger(__name__)

PUBLIC_PATHS = ("/api/v1/openapi.json",)  # readable without a token
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
API_SLA_FILTERS = {"overdue": "overdue", "due_today": "today"}  # ?sla= -> the inbox's
CURSOR_PATTERN = re.compile(r"[0-9a-f]{1,15}")  # 15 hex digits stay below ID_MAX


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def unprocessable(error: ActionError) -> ApiError:
    """The 422 of a value an action (or a filter) cannot use."""
    return ApiError(422, "unprocessable", f"{error.field}: {error.message}")


def error_response(status: int, code: str, message: str) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="mailgate"'
    return response


@web.middleware
async def api_errors(request: web.Request, handler):
    """Every answer under /api is JSON, errors included (also 404 and 405 from routing)."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        if request.path not in PUBLIC_PATHS:
            _authenticate(request)
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        if "Allow" in exc.headers:  # a 405 names the methods that work
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("API error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error, see the server log")


def _authenticate(request: web.Request) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    tokens = request.app[RUNTIME].settings.api.tokens
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "a bearer token is required")
    if not any(same_text(token.strip(), known) for known in tokens):
        raise ApiError(401, "unauthorized", "unknown bearer token")


async def list_tickets(request: web.Request) -> web.Response:
    limit = _limit(request.query.get("limit"))
    runtime = request.app[RUNTIME]
    settings, now = runtime.settings, runtime.clock.now()
    engine = request.app[ENGINE]
    query = listed_tickets(request.query, settings, now, engine.dialect).limit(limit + 1)
    if "cursor" in request.query:
        query = query.where(Ticket.id < _decode_cursor(request.query["cursor"]))
    async with AsyncSession(engine) as session:
        tickets = list(await session.scalars(query))
        page = tickets[:limit]
        shapes = await ticket_shapes(session, settings, page, now)
    next_cursor = _encode_cursor(page[-1].id) if len(tickets) > limit else None
    return web.json_response({"tickets": shapes, "next_cursor": next_cursor})


async def get_attachment(request: web.Request) -> web.StreamResponse:
    """An attachment's bytes, only by the ticket its message is on now."""
    code = request.match_info["code"].upper()
    async with AsyncSession(request.app[ENGINE]) as session:
        ticket_id = await session.scalar(select(Ticket.id).where(Ticket.code == code))
        if ticket_id is None:
            raise ApiError(404, "not_found", f"no ticket {code}")
        found = await find_attachment(
            session, request.match_info["id"], Message.ticket_id == ticket_id
        )
    if found is None:
        raise ApiError(404, "not_found", f"no such attachment on {code}")
    return download(*found)


async def export_tickets(request: web.Request) -> web.StreamResponse:
    """The list's tickets with the list's filters as CSV, newest first, all of them."""
    runtime, engine = request.app[RUNTIME], request.app[ENGINE]
    now = runtime.clock.now()
    base = listed_tickets(request.query, runtime.settings, now, engine.dialect)
    rows = ticket_rows(engine, base, lambda last: base.where(Ticket.id < last.id))
    return await stream_csv(request, export_name("tickets"), TICKET_COLUMNS, rows)


async def get_ticket(request: web.Request) -> web.Response:
    code = request.match_info["code"].upper()
    async with AsyncSession(request.app[ENGINE]) as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
        if ticket is None:
            raise ApiError(404, "not_found", f"no ticket {code}")
        runtime = request.app[RUNTIME]
        [shape] = await ticket_shapes(session, runtime.settings, [ticket], runtime.clock.now())
        shape["messages"] = await message_shapes(session, ticket)
    return web.json_response(shape)


def listed_tickets(params, settings: Settings, now: datetime, dialect: Dialect) -> Select:
    """The tickets of the list (and its CSV export) that the filters in ``params``
    select, newest first; a value no ticket can have (an unknown status or priority,
    a malformed tag) is a 422, as PATCH answers it. ``now`` (SLA time) for ``sla``:
    overdue, or due today in the team's zone. ``q`` is the inbox's search."""
    query = select(Ticket).where(Ticket.spam.is_(_flag(params, "spam")))
    if "sla" in params:
        wanted = API_SLA_FILTERS.get(params["sla"])
        if wanted is None:
            choices = ", ".join(API_SLA_FILTERS)
            message = f"{params['sla']!r} is not one of {choices}"
            raise unprocessable(ActionError("sla", message))
        query = query.where(due_condition(wanted, now, settings.tickets.zone))
    try:
        wanted = filter_values(settings.tickets, params)
    except ActionError as error:
        raise unprocessable(error) from None
    if wanted.status:
        query = query.where(func.lower(Ticket.status) == wanted.status.lower())
    if wanted.priority:
        query = query.where(Ticket.priority == wanted.priority)
    if wanted.tag:
        query = query.where(
            Ticket.id.in_(select(TicketTag.ticket_id).where(TicketTag.tag == wanted.tag))
        )
    if params.get("queue"):
        query = query.where(Ticket.queue == params["queue"])
    if "assignee" in params:
        assignee = params["assignee"].lower()
        query = query.where(
            Ticket.assignee.is_(None) if assignee in ("", "none") else Ticket.assignee == assignee
        )
    if params.get("customer"):
        query = query.where(Ticket.customer_email == params["customer"].lower())
    if params.get("q"):
        query = query.where(matching(params["q"], dialect))
    return query.order_by(Ticket.id.desc())


def _flag(params, name: str) -> bool:
    """A true/false query parameter; absent is false."""
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise ApiError(400, "bad_request", f"{name} must be true or false")
    return value == "true"


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    limit = whole_number(raw, MAX_LIMIT)
    if not limit:
        raise ApiError(400, "bad_request", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return limit


def _encode_cursor(ticket_id: int) -> str:
    """Opaque to clients; any string of CURSOR_PATTERN is a position in the list."""
    return f"{ticket_id:x}"


def _decode_cursor(cursor: str) -> int:
    if not CURSOR_PATTERN.fullmatch(cursor):
        raise ApiError(400, "bad_request", "cursor is not one this API handed out")
    return int(cursor, 16)


async def ticket_shapes(
    session: AsyncSession, settings: Settings, tickets: list[Ticket], now: datetime
) -> list[dict]:
    """The tickets as the API shows them; ``now`` (SLA time) for their ``sla``."""
    ids = [ticket.id for ticket in tickets]
    counts = await message_counts(session, ids)
    tags = await tags_by_ticket(session, ids)
    ratings = await ratings_of(session, ids)
    slas = await tickets_sla(session, settings, tickets, now)
    return [
        {
            **_ticket_shape(t, tags.get(t.id, []), counts.get(t.id, 0), slas[t.id]),
            "satisfaction": _satisfaction_shape(ratings.get(t.id)),
        }
        for t in tickets
    ]


def _satisfaction_shape(rating: SatisfactionRating | None) -> dict | None:
    if rating is None:
        return None
    return {"score": rating.score, "comment": rating.comment, "at": iso_utc(rating.at)}


def _ticket_shape(
    ticket: Ticket, tags: list[str], message_count: int, sla: TicketSla | None
) -> dict:
    return {
        "code": ticket.code,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "queue": ticket.queue,
        "assignee": ticket.assignee,
        "customer": {"name": ticket.customer_name, "email": ticket.customer_email},
        "tags": tags,
        "created_at": iso_utc(ticket.created_at),
        "updated_at": iso_utc(ticket.updated_at),
        "first_response_at": iso_utc(ticket.first_response_at),
        "solved_at": iso_utc(ticket.solved_at),
        "message_count": message_count,
        "spam": ticket.spam,
        "sla": sla.shape() if sla else None,
    }


async def message_shapes(session: AsyncSession, ticket: Ticket) -> list[dict]:
    """The ticket's messages, each attachment with the URL of its bytes."""
    messages = list(
        await session.scalars(
            select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
        )
    )
    attachments: dict[int, list[dict]] = {}
    for item in await session.scalars(
        select(Attachment)
        .where(Attachment.message_id.in_([m.id for m in messages]))
        .order_by(Attachment.id)
    ):
        attachments.setdefault(item.message_id, []).append(
            {
                "id": item.id,
                "url": f"/api/v1/tickets/{ticket.code}/attachments/{item.id}",
                "filename": item.filename,
                "content_type": item.content_type,
                "size": item.size,
                "sha256": item.sha256,
            }
        )
    return [
        {
            "id": m.id,
            "kind": m.kind,
            "from": m.from_email,
            "to": m.to_addrs,
            "cc": m.cc_addrs,
            "subject": m.subject,
            "text": m.text,
            "created_at": iso_utc(m.created_at),
            "message_id": m.message_id,
            "auto_reason": m.auto_reason,
            "flag": m.flag,
            "spam_check": m.spam_verdict,
            "attachments": attachments.get(m.id, []),
        }
        for m in messages
    ]


async def get_customer(request: web.Request) -> web.Response:
    """A customer (name, first contact, counts by status category) and their tickets,
    newest first, paged like the list; the same summary as the customer page."""
    email = request.match_info["address"].strip().lower()
    limit = _limit(request.query.get("limit"))
    runtime = request.app[RUNTIME]
    settings = runtime.settings
    query = tickets_of(email, everything).order_by(Ticket.id.desc()).limit(limit + 1)
    if "cursor" in request.query:
        query = query.where(Ticket.id < _decode_cursor(request.query["cursor"]))
    async with AsyncSession(request.app[ENGINE]) as session:
        customer = await customer_summary(session, everything, email, settings.tickets)
        if customer is None:
            raise ApiError(404, "not_found", f"no tickets from {email}")
        tickets = list(await session.scalars(query))
        shapes = await ticket_shapes(session, settings, tickets[:limit], runtime.clock.now())
    more = len(tickets) > limit
    return web.json_response(
        {
            "email": customer.email,
            "name": customer.name,
            "first_contact_at": iso_utc(customer.first_contact),
            "ticket_count": customer.total,
            "counts": customer.counts,
            "tickets": shapes,
            "next_cursor": _encode_cursor(tickets[limit - 1].id) if more else None,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/tickets", list_tickets)
    app.router.add_get("/api/v1/tickets.csv", export_tickets)
    app.router.add_get("/api/v1/tickets/{code}", get_ticket)
    app.router.add_get("/api/v1/customers/{address}", get_customer)
    app.router.add_get("/api/v1/tickets/{code}/attachments/{id}", get_attachment)
