"""Composing outgoing mail: templates in, fully-headed ``EmailMessage`` out.

Every message carries a Message-ID, In-Reply-To/References to the thread,
Thread-Topic/Thread-Index (Outlook threads on those), ``X-Loop`` with the route's
address, a signed ``Reply-To`` and, on automatic mail, ``Auto-Submitted``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from mailgate.config import Route
from mailgate.db.models import Ticket
from mailgate.outbox.templates import MailTemplates
from mailgate.signing import Signer

MAX_REFERENCES = 20
# Windows FILETIME counts 100 ns ticks since 1601-01-01.
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Outgoing:
    message: EmailMessage
    kind: str
    envelope_from: str
    recipients: tuple[str, ...]


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

    def ticket_url(self, code: str) -> str:
        return f"{self._base_url}/tickets/{code}"

    def login_link(self, route: Route, agent: str, name: str, path: str) -> Outgoing:
        """A one-time sign-in link for ``agent`` (``path`` is the link's path on the web)."""
        mail = self._templates.render(
            "login_link", route.locale, name=name, url=f"{self._base_url}{path}"
        )
        message = EmailMessage()
        message["From"] = HeaderAddress(team_name(route), addr_spec=route.address)
        message["To"] = HeaderAddress(name, addr_spec=agent)
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain=route.address.rpartition("@")[2])
        message["Auto-Submitted"] = "auto-generated"
        message["X-Loop"] = route.address
        message.set_content(mail.body)
        return Outgoing(message, "login_link", route.address, (agent,))

    def acknowledgement(
        self, ticket: Ticket, route: Route, parent: InReplyTo, customer_name: str
    ) -> Outgoing:
        return self._to_customer(
            "acknowledgement", ticket, route, parent, customer_name, "auto-replied"
        )

    def solved(self, ticket: Ticket, route: Route, parent: InReplyTo) -> Outgoing:
        """Tells the customer their ticket is solved, and that a reply reopens it."""
        return self._to_customer(
            "solved", ticket, route, parent, ticket.customer_name, "auto-generated"
        )

    def _to_customer(self, kind, ticket, route, parent, customer_name, auto) -> Outgoing:
        mail = self._templates.render(
            kind,
            route.locale,
            ticket=ticket,
            customer_name=customer_name,
            portal_url=self.portal_url(ticket.code),
            team_name=team_name(route),
        )
        message = self._headers(ticket, route, mail.subject, parent, auto)
        message["To"] = HeaderAddress(customer_name, addr_spec=ticket.customer_email)
        message["Reply-To"] = self._signer.reply_address(route.address, ticket.code)
        message.set_content(mail.body)
        return Outgoing(message, kind, route.address, (ticket.customer_email,))

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

    def _to_agent(self, kind, ticket, route, parent, agent, reply_to, details, auto=None):
        mail = self._templates.render(
            kind,
            route.locale,
            ticket=ticket,
            ticket_url=self.ticket_url(ticket.code),
            note_address=self._signer.note_address(route.address, ticket.code, agent),
            **details,
        )
        message = self._headers(ticket, route, mail.subject, parent, auto or "auto-generated")
        message["To"] = agent
        message["Reply-To"] = reply_to
        message.set_content(mail.body)
        return Outgoing(message, kind, route.address, (agent,))

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
            agent_name=reply.agent_name,
            team_name=team_name(route),
            portal_url=self.portal_url(ticket.code),
        )
        team = team_name(route)
        shown = f"{reply.agent_name} via {team}" if reply.agent_name else team
        message = self._headers(ticket, route, mail.subject, parent, auto=None, sender=shown)
        message["To"] = [HeaderAddress(name, addr_spec=email) for email, name in reply.to]
        if reply.cc:
            message["Cc"] = [HeaderAddress(name, addr_spec=email) for email, name in reply.cc]
        message["Reply-To"] = self._signer.reply_address(route.address, ticket.code)
        message.set_content(mail.body)
        for attachment in reply.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            message.add_attachment(
                attachment.data, maintype, subtype or "octet-stream", filename=attachment.filename
            )
        recipients = tuple(email for email, _ in (*reply.to, *reply.cc))
        return Outgoing(message, "agent_reply", route.address, recipients)

    def _headers(
        self,
        ticket: Ticket,
        route: Route,
        subject: str,
        parent: InReplyTo,
        auto: str | None,
        sender: str = "",
    ) -> EmailMessage:
        """The headers every mail of a ticket has; ``auto`` None for a person's mail."""
        now = datetime.now(UTC)
        domain = route.address.rpartition("@")[2]
        message = EmailMessage()
        message["From"] = HeaderAddress(sender or team_name(route), addr_spec=route.address)
        message["Subject"] = subject
        message["Date"] = format_datetime(now)
        message["Message-ID"] = make_msgid(domain=domain)
        message["In-Reply-To"] = parent.message_id
        message["References"] = " ".join(parent.chain())
        message["Thread-Topic"] = ticket.subject or ticket.code
        message["Thread-Index"] = thread_index(ticket.code, ticket.created_at, now)
        if auto:
            message["Auto-Submitted"] = auto
        message["X-Loop"] = route.address
        message["X-Mailgate-Ticket"] = ticket.code
        return message


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
