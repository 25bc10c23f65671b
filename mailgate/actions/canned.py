"""Canned replies: who may see and change which, saving them, and rendering them.

The rule, as a helpdesk team works: a personal reply is its owner's alone (not even
an admin sees or changes it); a queue's shared replies are kept by the agents of that
queue and by admins. On a ticket an agent may use their own replies and the shared
ones of the ticket's queue; a personal reply wins over a shared one of the same name.
The web pages, the API and agents' ``#canned`` lines all come through here.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.base import ActionContext, ActionError, agent_name
from mailgate.actions.canned_text import body_problem, name_problem, render, values
from mailgate.db.models import CannedReply, Ticket


class CannedConflict(ActionError):
    """The scope has a canned reply of that name already."""


class Editor(Protocol):
    """Who asks: a signed-in agent (``mailgate.web.auth.AgentSession``)."""

    email: str
    admin: bool
    queues: frozenset[str]


@dataclass(frozen=True)
class Scope:
    """Shared by a queue's agents (``queue``) or personal (``owner``): one is "" ."""

    queue: str = ""
    owner: str = ""

    def label(self) -> str:
        return f"personal ({self.owner})" if self.owner else f"shared, {self.queue} queue"


def scope_of(reply: CannedReply) -> Scope:
    return Scope(reply.queue, reply.owner)


def may_keep(editor: Editor, scope: Scope) -> bool:
    """Whether ``editor`` may create, change and delete replies of ``scope``."""
    if scope.owner:
        return scope.owner == editor.email
    return editor.admin or scope.queue in editor.queues


async def kept_by(
    session: AsyncSession, editor: Editor, queues: Collection[str]
) -> list[CannedReply]:
    """The replies ``editor`` keeps: their own, and the shared ones of ``queues`` (the
    configured queues) they may keep, by name."""
    shared = [queue for queue in queues if may_keep(editor, Scope(queue=queue))]
    query = select(CannedReply).where(
        or_(CannedReply.owner == editor.email, CannedReply.queue.in_(shared))
    )
    return list(await session.scalars(query.order_by(CannedReply.name, CannedReply.queue)))


async def usable_on(session: AsyncSession, ticket: Ticket, agent: str) -> list[CannedReply]:
    """The replies ``agent`` may use on ``ticket``, one per name, personal first."""
    rows = await session.scalars(
        select(CannedReply)
        .where(or_(CannedReply.owner == agent.lower(), CannedReply.queue == ticket.queue))
        .order_by(CannedReply.name, CannedReply.queue)  # the personal one ("") first
    )
    chosen: dict[str, CannedReply] = {}
    for reply in rows:
        chosen.setdefault(reply.name, reply)
    return list(chosen.values())


def rendered(ctx: ActionContext, ticket: Ticket, agent: str, reply: CannedReply) -> str:
    """``reply`` as ``agent`` would send it on ``ticket``."""
    name = agent_name(ctx.runtime, agent) or agent
    known = values(ticket, name, ctx.composer.portal_url(ticket.code))
    return render(reply.body, known)


async def save(
    session: AsyncSession,
    reply: CannedReply | None,
    scope: Scope,
    name: str,
    body: str,
    author: str,
) -> CannedReply:
    """Create (``reply`` None) or change a reply; an ActionError says what is wrong,
    a CannedConflict that the name is taken in ``scope``."""
    name = name.strip()
    for field, problem in (("name", name_problem(name)), ("body", body_problem(body))):
        if problem:
            raise ActionError(field, problem)
    name = name.lower()
    taken = await session.scalar(
        select(CannedReply.id).where(
            CannedReply.queue == scope.queue,
            CannedReply.owner == scope.owner,
            CannedReply.name == name,
        )
    )
    if taken is not None and (reply is None or taken != reply.id):
        raise CannedConflict("name", f"there is a canned reply {name} ({scope.label()}) already")
    now = datetime.now(UTC)
    if reply is None:
        reply = CannedReply(author=author, created_at=now)
        session.add(reply)
    reply.queue, reply.owner, reply.name, reply.body = scope.queue, scope.owner, name, body
    reply.updated_at = now
    try:
        await session.flush()
    except IntegrityError:  # saved by someone else a moment ago
        raise CannedConflict("name", f"there is a canned reply {name} already") from None
    return reply
