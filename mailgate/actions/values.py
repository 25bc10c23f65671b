"""Checking the values of a ticket change: statuses, priorities, agents, tags.

Every value is checked before anything changes; a bad one is an ActionError that
names the field and says, in words an agent reads in a mail, what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import UNSET, ActionContext, ActionError, Unset
from mailgate.config import Tickets
from mailgate.db.models import Ticket, TicketTag
from mailgate.runtime import RuntimeConfig

PRIORITIES = ("low", "normal", "high", "urgent")
MAX_TAG = 64  # characters in a tag
MAX_TAGS = 50  # tags on a ticket
# White space as ``str.strip`` and ``str.isspace`` mean it, spelled out: ``\s`` means
# other things to other regex engines (a JSON Schema validator, schemathesis).
SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# One word of printable text, surrounding white space trimmed. The OpenAPI document
# states this very pattern; lone surrogates (only JSON can spell them) are refused
# besides, as no regex engine of a JSON Schema validator can name them.
TAG_PATTERN = rf"^[{SPACE}]*[^{SPACE}\x00-\x1f\x7f]{{1,{MAX_TAG}}}[{SPACE}]*$"
_TAG = re.compile(TAG_PATTERN)


@dataclass(frozen=True)
class Wanted:
    """The checked new values; None (or UNSET) where nothing changes."""

    status: str | None
    priority: str | None
    assignee: str | Unset | None
    add_tags: tuple[str, ...]
    remove_tags: tuple[str, ...]


async def check_update(
    session: AsyncSession,
    ctx: ActionContext,
    ticket: Ticket,
    *,
    status: str | None = None,
    priority: str | None = None,
    assignee: str | Unset | None = UNSET,
    add_tags: Iterable[str] = (),
    remove_tags: Iterable[str] = (),
) -> None:
    """Raise the ActionError ``update_ticket`` would raise for these values; change
    nothing (so a caller can refuse a whole request before it does anything)."""
    current = await current_tags(session, ticket)
    checked(ctx.runtime, current, status, priority, assignee, add_tags, remove_tags)


async def current_tags(session: AsyncSession, ticket: Ticket) -> set[str]:
    return set(await session.scalars(select(TicketTag.tag).where(TicketTag.ticket_id == ticket.id)))


def checked(runtime, current, status, priority, assignee, add_tags, remove_tags) -> Wanted:
    tags = [_tag(tag) for tag in add_tags]
    untags = [_tag(tag) for tag in remove_tags]
    missing = [tag for tag in untags if tag not in current]
    if missing:
        raise ActionError("tags", f"the ticket has no tag {', '.join(missing)}")
    if len((current | set(tags)) - set(untags)) > max(MAX_TAGS, len(current)):
        raise ActionError("tags", f"a ticket has at most {MAX_TAGS} tags")
    return Wanted(
        status=None if status is None else status_name(runtime.settings.tickets, status),
        priority=None if priority is None else priority_name(priority),
        assignee=assignee if assignee in (UNSET, None) else resolve_agent(runtime, assignee),
        add_tags=tuple(dict.fromkeys(tags)),
        remove_tags=tuple(dict.fromkeys(untags)),
    )


def status_name(tickets: Tickets, value: str) -> str:
    """The configured status ``value`` names (any case); else ActionError."""
    for status in tickets.statuses:
        if status.name.lower() == value.strip().lower():
            return status.name
    names = ", ".join(s.name for s in tickets.statuses)
    raise ActionError("status", f"unknown status {value!r}; one of {names}")


def priority_name(value: str) -> str:
    """The priority ``value`` names (any case); else ActionError."""
    if value.lower() not in PRIORITIES:
        raise ActionError("priority", f"unknown priority {value!r}; one of {', '.join(PRIORITIES)}")
    return value.lower()


@dataclass(frozen=True)
class Filter:
    """The checked values of a ticket list's filters; "" where any will do."""

    status: str = ""
    priority: str = ""
    tag: str = ""


def filter_values(tickets: Tickets, params: Mapping[str, str]) -> Filter:
    """``status``, ``priority`` and ``tag`` of ``params`` as ``update_ticket`` would
    take them (absent or empty: any); an ActionError for one no ticket can have."""
    status, priority, tag = (params.get(name, "") for name in ("status", "priority", "tag"))
    return Filter(
        status=status and status_name(tickets, status),
        priority=priority and priority_name(priority),
        tag=tag and _tag(tag),
    )


def resolve_agent(runtime: RuntimeConfig, value: str) -> str:
    """The agent ``value`` names: an address, or unambiguously a name or local part."""
    wanted = value.strip().lower()
    agents = runtime.settings.agents
    if wanted in runtime.agent_emails():
        return wanted
    found = {
        a.email.lower()
        for a in agents
        if wanted in (a.name.lower(), a.email.lower().rpartition("@")[0])
    }
    if len(found) == 1:
        return found.pop()
    why = "more than one agent" if found else "no agent"
    raise ActionError("assignee", f"{why} matches {value!r}")


def storable(text: str) -> bool:
    """Whether a text column can hold ``text``: no NUL (PostgreSQL refuses it) and no
    lone surrogate (UTF-8 cannot encode one)."""
    return "\x00" not in text and not any("\ud800" <= char <= "\udfff" for char in text)


def _tag(value: str) -> str:
    if not _TAG.search(value) or not storable(value):
        raise ActionError("tags", f"{value!r} is not a tag (one word, up to {MAX_TAG} characters)")
    return value.strip()


def tags_within_cap(current: set[str], add: Iterable[str], remove: Iterable[str]) -> list[str]:
    """The tags of ``add`` that fit under MAX_TAGS after ``remove``, in order."""
    kept = set(current) - {tag.strip() for tag in remove}
    fitting = []
    for tag in add:
        if tag.strip() in kept or len(kept) < MAX_TAGS:
            kept.add(tag.strip())
            fitting.append(tag)
    return fitting
