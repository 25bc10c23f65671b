"""Questions asked before an action that cannot be taken back or that mails a
customer: merging two tickets, and a board move to a solved status.

The action's form posts without ``confirmed``; the answer is a page that says what
will happen and posts the same fields again with ``confirmed=1``. No script needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions import ActionError
from mailgate.db.models import Ticket
from mailgate.web.auth import AgentSession
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.ticket_view import find_ticket

CONFIRMED = "confirmed"


@dataclass(frozen=True)
class Question:
    title: str
    lines: list[str]
    action: str  # where the confirming form posts
    fields: dict[str, str]  # what it posts, besides csrf and confirmed
    button: str
    cancel: str  # where "Cancel" goes


def ask(request: web.Request, question: Question) -> web.Response:
    return aiohttp_jinja2.render_template("confirm.html", request, {"question": question})


async def merge_question(request: web.Request, agent: AgentSession, form) -> Question:
    """Merge this ticket into ``target``? (ActionError: no such target.)"""
    async with AsyncSession(request.app[ENGINE]) as session:
        source = await find_ticket(session, agent, request.match_info["code"])
        target = await merge_target(session, agent, form)
    if target.id == source.id:
        raise ActionError("target", "a ticket cannot be merged into itself")
    return Question(
        f"Merge {source.code} into {target.code}?",
        [
            f"{source.code} “{_subject(source)}” is closed and its messages, people and "
            f"tags move to {target.code} “{_subject(target)}”.",
            "A merge cannot be undone here; a message can be split off again later.",
        ],
        f"/tickets/{source.code}/merge",
        {"target": target.code},
        f"Merge {source.code} into {target.code}",
        f"/tickets/{source.code}",
    )


async def board_move_question(request: web.Request, agent: AgentSession, form) -> Question | None:
    """A question when a board move would mail the customer (to a solved status from
    another category), else None."""
    tickets = request.app[RUNTIME].settings.tickets
    status = str(form.get("status", ""))
    async with AsyncSession(request.app[ENGINE]) as session:
        ticket = await find_ticket(session, agent, request.match_info["code"])
    solving = tickets.category_of(status) == "solved"
    if not solving or tickets.category_of(ticket.status) == "solved":
        return None
    return Question(
        f"Move {ticket.code} to {status}?",
        [
            f"{ticket.customer_email} will get a mail saying that “{_subject(ticket)}” is solved.",
            f"To write to the customer as well, open {ticket.code} and send a reply first.",
        ],
        f"/tickets/{ticket.code}/update",
        {"status": status, "next": "board"},
        f"Move and mail {ticket.customer_email}",
        "/board",
    )


async def merge_target(session: AsyncSession, agent: AgentSession, form) -> Ticket:
    """The ticket the merge form names, if ``agent`` may see it (else ActionError)."""
    wanted = str(form.get("target", "")).strip()
    if not wanted:
        raise ActionError("target", "name the ticket to merge this one into")
    try:
        return await find_ticket(session, agent, wanted)
    except web.HTTPNotFound:
        raise ActionError("target", f"there is no ticket {wanted.upper()} you can see") from None


def _subject(ticket: Ticket) -> str:
    return ticket.subject or "(no subject)"
