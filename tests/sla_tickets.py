"""Stored tickets with a known history, for the SLA pages: when each was created, when
its customer and agents wrote, and when its status changed, written straight into the
database a running daemon serves."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from mailgate.db.models import AuditEvent, Message, Ticket
from mailgate.db.session import sessions

ROUTES = {"support": "support@example.test", "billing": "billing@example.test"}


@dataclass
class Story:
    """A ticket's history: (at, kind, who) messages, (at, status, who) status changes."""

    code: str
    created: datetime
    queue: str = "support"
    status: str = "New"
    assignee: str | None = None
    messages: list[tuple[datetime, str, str]] = field(default_factory=list)
    changes: list[tuple[datetime, str, str]] = field(default_factory=list)


async def store(engine, *stories: Story) -> None:
    async with sessions(engine).begin() as session:
        for story in stories:
            replies = [at for at, kind, _ in story.messages if kind == "agent"]
            solved = [at for at, status, _ in story.changes if status == "Solved"]
            ticket = Ticket(
                code=story.code,
                subject=f"Story {story.code}",
                customer_email="carol@client.test",
                queue=story.queue,
                status=story.status,
                assignee=story.assignee,
                route_address=ROUTES[story.queue],
                created_at=story.created,
                updated_at=story.created,
                first_response_at=min(replies, default=None),
                solved_at=max(solved, default=None) if story.status == "Solved" else None,
            )
            session.add(ticket)
            await session.flush()
            customer = [(story.created, "customer", "carol@client.test")]
            for at, kind, who in customer + story.messages:
                session.add(
                    Message(ticket_id=ticket.id, kind=kind, from_email=who, created_at=at,
                            message_id=f"<{secrets.token_hex(8)}@test>", text=kind)
                )  # fmt: skip
            old = "New"
            for at, new, who in story.changes:
                data = {"old": old, "new": new}
                session.add(
                    AuditEvent(ticket_id=ticket.id, at=at, actor=who, action="status", data=data)
                )
                old = new


def section(page: str, css_class: str) -> str:
    """The HTML of the first element with ``css_class``, up to its closing tag."""
    start = page.index(f'class="{css_class}')
    tag = page.rfind("<", 0, start)
    name = page[tag + 1 : page.index(" ", tag)]
    return page[tag : page.index(f"</{name}>", start)]


def text_of(html: str) -> str:
    """The text of ``html`` as one line, tags dropped and white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace("&amp;", "&").split())
