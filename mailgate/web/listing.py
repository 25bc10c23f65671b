"""The ticket list of the inbox: filters, sorting and keyset (cursor) pagination.

A cursor names the sort value and id of the last ticket shown, so the next page is
an index range, however deep, and a ticket that changes meanwhile is neither shown
twice nor skipped within one sort order.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Tickets
from mailgate.db.models import Message, Ticket, TicketTag
from mailgate.localtime import day_start, local_day
from mailgate.numbers import storable_id, whole_number
from mailgate.web.auth import AgentSession
from mailgate.web.search import matching

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
SPAM_ONLY = ("1", "true", "yes", "on")
UNSOLVED = "unsolved"  # the status filter for every ticket not solved or closed
PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}
# Tickets with no due time (no SLA, or its clock stopped) come after every due time.
NO_DUE = datetime(9999, 1, 1, tzinfo=UTC)
SORTS = {
    "updated": Ticket.updated_at,
    "created": Ticket.created_at,
    "priority": case(PRIORITY_RANK, value=Ticket.priority, else_=1),
    "due": func.coalesce(Ticket.sla_due_at, NO_DUE),
}
SLA_FILTERS = ("overdue", "today")  # by the stored next due time (mailgate/sla/state.py)


class BadCursor(ValueError):
    """A cursor this inbox did not hand out."""


@dataclass(frozen=True)
class Filters:
    """What the inbox shows, as the query string says it (all strings, "" = any)."""

    q: str = ""
    status: str = ""
    queue: str = ""
    assignee: str = ""  # "me", "none" or an agent's address
    priority: str = ""
    tag: str = ""
    spam: str = ""  # "1": the tickets held back as spam (and only those)
    sla: str = ""  # "overdue", "today" (due today in the agent's zone)
    sort: str = "updated"
    order: str = "desc"
    limit: str = ""  # page size, 1 to MAX_PAGE_SIZE (PAGE_SIZE when not given)

    @classmethod
    def from_query(cls, query) -> Filters:
        values = {f.name: query.get(f.name, "").strip() for f in fields(cls)}
        filters = cls(**{k: v for k, v in values.items() if v})
        if filters.sort not in SORTS:
            filters = replace(filters, sort="updated")
        return filters if filters.order in ("asc", "desc") else replace(filters, order="desc")

    @property
    def spam_only(self) -> bool:
        return self.spam.lower() in SPAM_ONLY

    @property
    def page_size(self) -> int:
        size = whole_number(self.limit, MAX_PAGE_SIZE)
        return size if size else PAGE_SIZE

    def link(self, **changes: str) -> str:
        """The query string of these filters with ``changes`` (defaults left out)."""
        wanted = {**{f.name: getattr(self, f.name) for f in fields(self)}, **changes}
        defaults = Filters()
        params = {k: v for k, v in wanted.items() if v and v != getattr(defaults, k, None)}
        return "?" + urlencode(params) if params else "?"


def ticket_query(
    filters: Filters,
    agent: AgentSession,
    tickets: Tickets,
    dialect: Dialect,
    now: datetime,
    backwards: bool = False,
):
    """The SELECT of the tickets ``agent`` may see that match ``filters``, sorted (in
    the opposite order when ``backwards``: the way to the newer pages); ``now`` (SLA
    time) for the due filters."""
    query = agent.visible(select(Ticket)).where(Ticket.merged_into_id.is_(None))
    for condition in _conditions(filters, agent, tickets, dialect):
        query = query.where(condition)
    if filters.sla in SLA_FILTERS:
        query = query.where(due_condition(filters.sla, now, agent.zone))
    key = SORTS[filters.sort]
    if (filters.order == "asc") != backwards:
        return query.order_by(key.asc(), Ticket.id.asc())
    return query.order_by(key.desc(), Ticket.id.desc())


def _conditions(filters: Filters, agent: AgentSession, tickets: Tickets, dialect: Dialect):
    yield Ticket.spam.is_(filters.spam_only)
    if filters.status.lower() == UNSOLVED and tickets.category_of(UNSOLVED) is None:
        active = [s.name for s in tickets.statuses if s.category in ("new", "open", "pending")]
        yield Ticket.status.in_(active)
    elif filters.status:
        yield Ticket.status == _status_name(tickets, filters.status)
    if filters.queue:
        yield Ticket.queue == filters.queue
    if filters.assignee == "none":
        yield Ticket.assignee.is_(None)
    elif filters.assignee:
        yield Ticket.assignee == (agent.email if filters.assignee == "me" else filters.assignee)
    if filters.priority:
        yield Ticket.priority == filters.priority.lower()
    if filters.tag:
        yield Ticket.id.in_(select(TicketTag.ticket_id).where(TicketTag.tag == filters.tag))
    if filters.q:
        yield matching(filters.q, dialect)


def due_condition(wanted: str, now: datetime, zone: ZoneInfo):
    """Overdue: due before ``now``; today: due on ``now``'s day in ``zone``."""
    if wanted == "overdue":
        return Ticket.sla_due_at <= now
    today = local_day(now, zone)
    start, end = day_start(today, zone), day_start(today + timedelta(days=1), zone)
    return and_(Ticket.sla_due_at >= start, Ticket.sla_due_at < end)


def _status_name(tickets: Tickets, wanted: str) -> str:
    """The configured spelling of a status name given in any case."""
    return next((s.name for s in tickets.statuses if s.name.lower() == wanted.lower()), wanted)


def after_cursor(query, filters: Filters, cursor: str, backwards=False):
    """``query`` continued after the ticket the cursor names (before it: ``backwards``)."""
    value, ticket_id = decode_cursor(cursor, filters.sort)
    key = SORTS[filters.sort]
    if (filters.order == "asc") != backwards:
        return query.where(or_(key > value, and_(key == value, Ticket.id > ticket_id)))
    return query.where(or_(key < value, and_(key == value, Ticket.id < ticket_id)))


def encode_cursor(ticket: Ticket, sort: str) -> str:
    if sort == "priority":
        value: object = PRIORITY_RANK.get(ticket.priority, 1)
    elif sort == "due":
        value = (ticket.sla_due_at or NO_DUE).isoformat()
    else:
        value = getattr(ticket, f"{sort}_at").isoformat()
    raw = json.dumps([sort, value, ticket.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[object, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        named, value, ticket_id = json.loads(raw)
        if named != sort or not storable_id(ticket_id):
            raise BadCursor(cursor)
        if sort == "priority":
            if not storable_id(value):
                raise BadCursor(cursor)
            return value, ticket_id
        moment = datetime.fromisoformat(value)  # SQLite hands back naive UTC times
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), ticket_id
    except (binascii.Error, ValueError, TypeError, RecursionError) as exc:
        raise BadCursor(cursor) from exc


async def tags_by_ticket(session: AsyncSession, ids: list[int]) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = {}
    rows = await session.execute(
        select(TicketTag.ticket_id, TicketTag.tag)
        .where(TicketTag.ticket_id.in_(ids))
        .order_by(TicketTag.tag)
    )
    for ticket_id, tag in rows:
        tags.setdefault(ticket_id, []).append(tag)
    return tags


async def message_counts(session: AsyncSession, ids: list[int]) -> dict[int, int]:
    """How many messages each of the tickets ``ids`` holds (none: left out)."""
    rows = await session.execute(
        select(Message.ticket_id, func.count())
        .where(Message.ticket_id.in_(ids))
        .group_by(Message.ticket_id)
    )
    return dict(rows.tuples().all())
