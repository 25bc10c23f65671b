"""The typed context of one journal entry as it travels down the pipeline."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from mailgate.message import ParsedMessage
from mailgate.pipeline.classify import Verdict


@dataclass(frozen=True)
class Inbound:
    entry_id: int
    source: str
    envelope_from: str
    recipients: tuple[str, ...]
    received_at: datetime
    message: ParsedMessage
    verdicts: tuple[Verdict, ...] = ()

    @property
    def sender_email(self) -> str:
        return self.message.sender.email.lower() if self.message.sender else ""

    @property
    def sender_name(self) -> str:
        return self.message.sender.name if self.message.sender else ""

    @property
    def automatic(self) -> bool:
        """Automatic mail is stored but never answered or notified (RFC 3834)."""
        return bool(self.verdicts)

    @property
    def auto_reason(self) -> str | None:
        return "; ".join(v.reason for v in self.verdicts) or None


def content_fingerprint(message: ParsedMessage) -> str:
    """What makes two deliveries "the same message": Message-ID plus the content.

    Transport headers (Received, Delivered-To) are left out, so reply-all copies that
    reach several of our addresses, or an IMAP re-fetch, fingerprint the same; a
    reused Message-ID with other content does not.
    """
    digest = hashlib.sha256()
    sender = message.sender.email.lower() if message.sender else ""
    date = message.date.isoformat() if message.date else ""
    parts = [message.message_id, sender, message.subject, date, message.text, message.quoted_text]
    parts += [attachment.sha256 for attachment in message.attachments]
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()
