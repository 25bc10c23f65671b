"""The typed values that travel down the pipeline: a parsed message and its verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Address:
    name: str
    email: str  # lower-cased domain; the local part as written


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str  # sanitised: no path, no control or bidi characters, never empty
    content_type: str
    data: bytes
    sha256: str


@dataclass(frozen=True)
class ParsedMessage:
    """What the pipeline needs from one raw message, decoded and normalised.

    ``headers`` keeps the headers that classification and threading read, with
    lower-cased names, each with all its values in order (decoded to str).
    """

    message_id: str  # "<...>", synthesised from the content when missing
    in_reply_to: tuple[str, ...]  # Message-IDs, each "<...>"
    references: tuple[str, ...]
    subject: str
    sender: Address | None  # From:
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    date: datetime | None
    text: str  # the new text, without quoted history
    quoted_text: str  # quoted history split off the text
    html: str | None  # sanitised HTML for display, if the mail had HTML
    attachments: tuple[ParsedAttachment, ...]
    content_type: str  # of the top-level part, e.g. "multipart/report"
    report_type: str  # the report-type parameter of multipart/report, else ""
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    defects: tuple[str, ...] = ()  # what the parser had to repair
    part_types: tuple[str, ...] = ()  # content type of every MIME part walked, in order
    # The HTML part's text when the mail has a plain part too (which ``text`` is):
    # searched as well, since the two alternatives need not say the same.
    html_text: str = ""

    def thread_ids(self) -> tuple[str, ...]:
        """The Message-IDs this mail answers: the direct parent first, then the rest of
        the chain from newest to oldest."""
        return tuple(dict.fromkeys((*self.in_reply_to, *reversed(self.references))))

    def header(self, name: str) -> str:
        """The first value of a header, or an empty string."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""
