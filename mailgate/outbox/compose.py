"""Composing outgoing mail: templates in, the wire bytes of a fully-headed message out.

Every message carries a Message-ID, In-Reply-To/References to the thread,
Thread-Topic/Thread-Index (Outlook threads on those), ``X-Loop`` with the route's
address, a signed ``Reply-To`` and, on automatic mail, ``Auto-Submitted``. The headers
are written from the values we have (``wire.py``); only an agent's reply (its text
as plain text and as HTML, and any attachments) is built by the standard library's
MIME classes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from mailgate.config import Route
from mailgate.db.models import Ticket
from mailgate.outbox.templates import MailTemplates
from mailgate.outbox.wire import Head, serialise, text_entity, transfer_encoding
from mailgate.signing import Signer

MAX_REFERENCES = 20
# Windows FILETIME counts 100 ns ticks since 1601-01-01.
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Outgoing:
    """A composed mail: its envelope, its wire bytes, and what callers record of it."""

    kind: str
    envelope_from: str
    recipients: tuple[str, ...]
    message_id: str
    subject: str
    raw: bytes  # the whole message, CRLF line ends


@dataclass(frozen=True)
class NewAttachment:
    """An attachment an agent adds to a reply or note (by mail or on the web)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Reply:
    """What an agent's answer to the customer consists of."""

    agent_name: str
    text: str
    to: tuple[tuple[str, str], ...]  # (email, name): the customer
    cc: tuple[tuple[str, str], ...] = ()  # the CC participants
    attachments: tuple[NewAttachment, ...] = ()
    signature: str = ""  # the agent's, shown under the text after a "-- " line


@dataclass(frozen=True)
class InReplyTo:
    """The message an outgoing mail answers: its Message-ID and its References."""

    message_id: str
    references: tuple[str, ...] = ()

    def chain(self) -> list[str]:
        return [*self.references, self.message_id][-MAX_REFERENCES:]


class Composer:
    def __init__(self, templates: MailTemplates, signer: Signer, base_url: str) -> None:
        self._templates = templates
        self._signer = signer
        self._base_url = base_url.rstrip("/")

    def portal_url(self, code: str) -> str:
        return f"{self._base_url}/t/{code}?k={self._signer.portal_token(code)}"

    def rating_urls(self, code: str) -> dict[str, str]:
        """The solved mail's links to rate the ticket, by score (signed per score)."""
        signed = {score: self._signer.rating_token(code, score) for score in ("good", "bad")}
        return {
            score: f"{self._base_url}/t/{code}/rate/{score}?s={mac}"
            for score, mac in signed.items()
        }

    def ticket_url(self, code: str) -> str:
        return f"{self._base_url}/tickets/{code}"

    def login_link(self, route: Route, agent: str, name: str, path: str) -> Outgoing:
        """A one-time sign-in link for ``agent`` (``path`` is the link's path on the web)."""
        mail = self._templates.render(
            "login_link", route.locale, name=name, url=f"{self._base_url}{path}"
        )
        head, message_id = _head(route, team_name(route), mail.subject, datetime.now(UTC))
        head.mailboxes("To", [(agent, name)])
        head.field("Auto-Submitted", "auto-generated")
        head.field("X-Loop", route.address)
        raw = head.wire(text_entity(mail.body))
        return Outgoing("login_link", route.address, (agent,), message_id, mail.subject, raw)

    def acknowledgement(
        self, ticket: Ticket, route: Route, parent: InReplyTo, customer_name: str
    ) -> Outgoing:
        return self._to_customer(
            "acknowledgement", ticket, route, parent, customer_name, "auto-replied"
        )

    def solved(self, ticket: Ticket, route: Route, parent: InReplyTo, status_name: str) -> Outgoing:
        """Tells the customer their ticket is solved (``status_name``: its status as the
        customer reads it), that a reply reopens it, and how to rate it."""
        return self._to_customer(
            "solved",
            ticket,
            route,
            parent,
            ticket.customer_name,
            "auto-generated",
            status_name=status_name,
            rating_urls=self.rating_urls(ticket.code),
        )

    def _to_customer(self, kind, ticket, route, parent, customer_name, auto, **extra) -> Outgoing:
        mail = self._templates.render(
            kind,
            route.locale,
            ticket=ticket,
            customer_name=customer_name,
            portal_url=self.portal_url(ticket.code),
            team_name=team_name(route),
            **extra,
        )
        head, message_id = self._headers(ticket, route, mail.subject, parent, auto)
        head.mailboxes("To", [(ticket.customer_email, customer_name)])
        head.mailboxes("Reply-To", [(self._signer.reply_address(route.address, ticket.code), "")])
        raw = head.wire(text_entity(mail.body))
        return Outgoing(
            kind, route.address, (ticket.customer_email,), message_id, mail.subject, raw
        )

    def agent_notification(
        self, ticket: Ticket, route: Route, parent: InReplyTo, agent: str, **details: object
    ) -> Outgoing:
        """Tell ``agent`` about a new ticket, a reply or an assignment; ``details`` feed
        the template (event, author, text, attachments, auto_reason). A reply to it
        answers the customer; the note address in it makes an internal note."""
        reply_to = self._signer.reply_address(route.address, ticket.code, agent)
        return self._to_agent("agent_notification", ticket, route, parent, agent, reply_to, details)

    def note_notification(
        self, ticket: Ticket, route: Route, parent: InReplyTo, agent: str, **details: object
    ) -> Outgoing:
        """Tell ``agent`` about a colleague's internal note (author, text, attachments);
        a reply to it is another note, never mail to the customer."""
        reply_to = self._signer.note_address(route.address, ticket.code, agent)
        return self._to_agent("note_notification", ticket, route, parent, agent, reply_to, details)

    def command_error(
        self, ticket: Ticket, route: Route, parent: InReplyTo, agent: str, **details: object
    ) -> Outgoing:
        """Tell ``agent`` which commands of their mail were not understood (problems,
        subject); nothing of that mail was relayed."""
        reply_to = self._signer.reply_address(route.address, ticket.code, agent)
        return self._to_agent(
            "command_error", ticket, route, parent, agent, reply_to, details, "auto-replied"
        )

    def delivery_failure(
        self, ticket: Ticket, route: Route, parent: InReplyTo, agent: str, **details: object
    ) -> Outgoing:
        """Tell ``agent`` that mail sent for the ticket bounced (failures, what,
        suppressed, suppress_hours)."""
        reply_to = self._signer.reply_address(route.address, ticket.code, agent)
        return self._to_agent("delivery_failure", ticket, route, parent, agent, reply_to, details)

    def sla_notice(
        self, kind: str, ticket: Ticket, route: Route, agent: str, **details: object
    ) -> Outgoing:
        """Tell ``agent`` that a target of the ticket is about to be missed (``kind``
        "warning") or was missed ("breach"); details: target, due_at, policy."""
        reply_to = self._signer.reply_address(route.address, ticket.code, agent)
        parent = InReplyTo(f"<{ticket.code}@mailgate>")
        return self._to_agent(f"sla_{kind}", ticket, route, parent, agent, reply_to, details)

    def _to_agent(self, kind, ticket, route, parent, agent, reply_to, details, auto=None):
        mail = self._templates.render(
            kind,
            route.locale,
            ticket=ticket,
            ticket_url=self.ticket_url(ticket.code),
            note_address=self._signer.note_address(route.address, ticket.code, agent),
            **details,
        )
        head, message_id = self._headers(
            ticket, route, mail.subject, parent, auto or "auto-generated"
        )
        head.mailboxes("To", [(agent, "")])
        head.mailboxes("Reply-To", [(reply_to, "")])
        raw = head.wire(text_entity(mail.body))
        return Outgoing(kind, route.address, (agent,), message_id, mail.subject, raw)

    def agent_reply(
        self, ticket: Ticket, route: Route, parent: InReplyTo, reply: Reply
    ) -> Outgoing:
        """An agent's answer as the customer (and the CC participants) get it: from the
        route's address, never from the agent's own."""
        mail = self._templates.render(
            "agent_reply",
            route.locale,
            ticket=ticket,
            text=reply.text,
            signature=reply.signature,
            agent_name=reply.agent_name,
            team_name=team_name(route),
            portal_url=self.portal_url(ticket.code),
        )
        team = team_name(route)
        shown = f"{reply.agent_name} via {team}" if reply.agent_name else team
        head, message_id = self._headers(ticket, route, mail.subject, parent, None, shown)
        head.mailboxes("To", reply.to)
        if reply.cc:
            head.mailboxes("Cc", reply.cc)
        head.mailboxes("Reply-To", [(self._signer.reply_address(route.address, ticket.code), "")])
        entity = _reply_entity(mail.body, reply.attachments)
        recipients = tuple(email for email, _ in (*reply.to, *reply.cc))
        raw = head.wire(entity)
        return Outgoing("agent_reply", route.address, recipients, message_id, mail.subject, raw)

    def _headers(
        self,
        ticket: Ticket,
        route: Route,
        subject: str,
        parent: InReplyTo,
        auto: str | None,
        sender: str = "",
    ) -> tuple[Head, str]:
        """The headers every mail of a ticket has, and its Message-ID; ``auto`` None
        for a person's mail."""
        now = datetime.now(UTC)
        head, message_id = _head(route, sender or team_name(route), subject, now)
        head.field("In-Reply-To", parent.message_id)
        head.field("References", " ".join(parent.chain()))
        head.text("Thread-Topic", ticket.subject or ticket.code)
        head.field("Thread-Index", thread_index(ticket.code, ticket.created_at, now))
        if auto:
            head.field("Auto-Submitted", auto)
        head.field("X-Loop", route.address)
        head.field("X-Mailgate-Ticket", ticket.code)
        return head, message_id


def _head(route: Route, sender: str, subject: str, now: datetime) -> tuple[Head, str]:
    """The headers every mail has, from ``sender`` at the route's address; and its
    Message-ID."""
    message_id = make_msgid(domain=route.address.rpartition("@")[2])
    head = Head()
    head.mailboxes("From", [(route.address, sender)])
    head.text("Subject", subject)
    head.field("Date", format_datetime(now))
    head.field("Message-ID", message_id)
    return head, message_id


def _reply_entity(text: str, attachments: Sequence[NewAttachment]) -> bytes:
    """``text`` as plain text and as HTML (``as_html``), then the ``attachments``:
    multipart/alternative, in a multipart/mixed with attachments. Rare enough among
    our mail that the standard library writes it (base64 parts, RFC 2231 names)."""
    entity = EmailMessage()
    entity.set_content(text, cte=transfer_encoding(text))
    markup = as_html(text)
    entity.add_alternative(markup, subtype="html", cte=transfer_encoding(markup))
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        entity.add_attachment(
            attachment.data, maintype, subtype or "octet-stream", filename=attachment.filename
        )
    return serialise(entity)


def as_html(text: str) -> str:
    """``text`` as an HTML document that mail programs show as written: escaped, each
    line break kept (the agent's signature too, under its "-- " line)."""
    lines = "<br>\n".join(html.escape(line) for line in text.splitlines())
    return f"<!DOCTYPE html>\n<html><body>\n<div>{lines}</div>\n</body></html>\n"


def team_name(route: Route) -> str:
    return route.name or f"{route.queue.replace('_', ' ').title()} Team"


def thread_index(code: str, started: datetime, now: datetime) -> str:
    """An Outlook Thread-Index: one 22-byte header per ticket, plus a 5-byte child block.

    The header is the ticket's start time (FILETIME, top 6 bytes) and a GUID derived
    from the code, so every message of a ticket shares it and Outlook groups them.
    """
    started = started if started.tzinfo else started.replace(tzinfo=UTC)
    ticks = int((started - _FILETIME_EPOCH).total_seconds() * 10_000_000)
    header = (
        struct.pack(">Q", ticks)[:6] + hashlib.md5(code.encode(), usedforsecurity=False).digest()
    )
    delta = max(0, int((now - started).total_seconds() * 10_000_000)) >> 18
    child = struct.pack(">Q", (delta & 0x7FFFFFFF) << 8)[3:8]
    return base64.b64encode(header + child).decode()
