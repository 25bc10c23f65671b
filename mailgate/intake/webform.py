"""Web intake: a portal reply or a web-form submission, written as the mail it stands for.

Both become an ordinary RFC 5322 message stored in the journal with source ``web``,
so threading, routing, acknowledgements and notifications happen in the pipeline
exactly as for mail; the web never writes a ticket itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from mailgate.outbox.wire import needs_smtputf8, serialise
from mailgate.pipeline.journal import Arrival

SOURCE = "web"
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)+$")


@dataclass(frozen=True)
class Upload:
    """A file a person attached in the browser."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class WebMail:
    """What a person wrote on a page, with who they are and where it goes."""

    sender_name: str
    sender_email: str
    to: str  # the route address, shown in the To: header
    subject: str
    text: str
    attachments: tuple[Upload, ...] = ()
    in_reply_to: str | None = None  # the ticket's last message, for a portal reply
    references: tuple[str, ...] = ()


def valid_email(address: str) -> bool:
    """A plain ``local@domain.tld`` address, which headers and SMTP both accept."""
    return bool(_EMAIL.match(address.strip().lower())) and len(address) <= 254


def build_message(mail: WebMail, hostname: str, peer: str) -> EmailMessage:
    """The RFC 5322 message: attachments become MIME parts, a Received line names the peer."""
    now = datetime.now(UTC)
    message = EmailMessage()
    message["Received"] = f"from {peer} by {hostname} with HTTP; {format_datetime(now)}"
    message["From"] = Address(_one_line(mail.sender_name), addr_spec=mail.sender_email)
    message["To"] = mail.to
    message["Subject"] = _one_line(mail.subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("web", domain=hostname)
    if mail.in_reply_to:
        message["In-Reply-To"] = mail.in_reply_to
        message["References"] = " ".join([*mail.references, mail.in_reply_to])
    message.set_content(mail.text.replace("\r\n", "\n"))
    for upload in mail.attachments:
        maintype, _, subtype = _content_type(upload.content_type).partition("/")
        message.add_attachment(
            upload.data, maintype=maintype, subtype=subtype, filename=upload.filename
        )
    return message


def arrival(mail: WebMail, recipient: str, hostname: str, peer: str) -> Arrival:
    """The journal arrival: envelope from the person, to ``recipient`` (one of ours)."""
    message = build_message(mail, hostname, peer)
    raw = serialise(message, needs_smtputf8([mail.sender_email, mail.to, recipient]))
    return Arrival(SOURCE, mail.sender_email, (recipient,), raw, peer=peer, helo="web")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _content_type(value: str) -> str:
    """The browser's content type if it is well-formed, else application/octet-stream."""
    value = value.split(";")[0].strip().lower()
    # multipart/* and message/* parts cannot be base64; they travel as opaque bytes.
    if _CONTENT_TYPE.match(value) and not value.startswith(("multipart/", "message/")):
        return value
    return "application/octet-stream"
