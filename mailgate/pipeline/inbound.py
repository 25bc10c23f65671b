"""The typed context of one journal entry as it travels down the pipeline."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from mailgate.message import ParsedMessage
from mailgate.pipeline.agents import NOT_AN_AGENT, AgentCheck
from mailgate.pipeline.classify import Verdict
from mailgate.pipeline.spam import SpamVerdict
from mailgate.signing import SignedReply


@dataclass(frozen=True)
class Inbound:
    entry_id: int
    source: str
    envelope_from: str
    recipients: tuple[str, ...]
    received_at: datetime
    message: ParsedMessage
    verdicts: tuple[Verdict, ...] = ()
    signed: tuple[SignedReply, ...] = ()  # recipients that are our signed addresses
    sender_check: AgentCheck = NOT_AN_AGENT  # is the sender an authenticated agent?
    spam: SpamVerdict | None = None  # the spam check's verdict, when one was asked

    @property
    def is_spam(self) -> bool:
        """Spam is stored (on a ticket held back as spam) but never answered or notified."""
        return self.spam is not None and self.spam.is_spam

    @property
    def sender_email(self) -> str:
        return self.message.sender.email.lower() if self.message.sender else ""

    @cached_property
    def fingerprint(self) -> str:
        """``content_fingerprint`` of the message (asked for several times per entry)."""
        return content_fingerprint(self.message)

    @property
    def customer_email(self) -> str:
        """Who a new ticket from this mail belongs to: the sender, else the envelope's."""
        return self.sender_email or self.envelope_from.lower()

    @property
    def sender_name(self) -> str:
        return self.message.sender.name if self.message.sender else ""

    @property
    def agent(self) -> str | None:
        """The agent this mail may act as (never for automatic mail, e.g. a vacation
        reply to a notification)."""
        return None if self.automatic else self.sender_check.agent

    @property
    def flag(self) -> str | None:
        return self.sender_check.flag

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
