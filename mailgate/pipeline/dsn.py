"""Reading delivery reports: which recipient failed or is delayed, with what status.

RFC 3464 reports -- a ``message/delivery-status`` part, at the top of a
``multipart/report`` (Postfix, Gmail, Exim 4.8+) or inside some other structure
(Exchange, odd bouncers) -- are read field by field with the stdlib: Action,
Original-Recipient, Final-Recipient, Status, Diagnostic-Code. A bounce without such
a part (old Exim, qmail, home-grown bouncers) is left to flufl.bounce's detectors,
which tell permanent from temporary failures; its status is then the first enhanced
status code in the text, if any.
"""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

from flufl.bounce import all_failures

log = logging.getLogger(__name__)

STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
MAX_DEPTH = 50
MAX_DIAGNOSTIC = 500
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BASIC = re.compile(r"(?<![\d.])([245])\d\d(?![\d.])")
_BLANK_LINE = re.compile(rb"\r?\n[ \t]*\r?\n")


@dataclass(frozen=True)
class DeliveryReport:
    """What a report says about one recipient; addresses are lower-cased."""

    recipient: str  # Final-Recipient: where delivery was last tried
    action: str  # "failed" or "delayed"
    status: str  # an enhanced status code, "5.1.1"
    diagnostic: str = ""
    original: str = ""  # Original-Recipient, when the report names it

    @property
    def failed(self) -> bool:
        return self.action == "failed"

    @property
    def hard(self) -> bool:
        """A permanent failure: the address itself is bad, not just the moment."""
        return self.failed and self.status.startswith("5.")

    def describe(self) -> str:
        verb = "failed" if self.failed else "delayed"
        detail = f" ({self.diagnostic})" if self.diagnostic else ""
        return f"delivery to {self.recipient} {verb}: {self.status}{detail}"


def read_reports(raw: bytes) -> list[DeliveryReport]:
    """The failed and delayed recipients a bounce reports; empty if it is no bounce."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = list(_status_parts(message, 0))
    if parts:
        return [report for part in parts for report in _reports_in(part)]
    return _guessed_reports(message)


def _status_parts(part: Message, depth: int) -> Iterator[Message]:
    """Delivery-status parts, not looking inside attached messages (the original)."""
    if part.get_content_type() in STATUS_TYPES:
        yield part
    elif part.get_content_maintype() == "multipart" and part.is_multipart() and depth < MAX_DEPTH:
        for child in part.get_payload():
            yield from _status_parts(child, depth + 1)


def _reports_in(part: Message) -> list[DeliveryReport]:
    reports = []
    for fields in _field_blocks(part):
        action = _action(str(fields.get("action", "")))
        final = _address(fields.get("final-recipient"))
        if action and final:
            reports.append(_report(fields, action, final))
    return reports


def _field_blocks(part: Message) -> list[Message]:
    """The part's blocks of fields, each parsed like a header block.

    The body is taken as bytes and decoded here, so a base64 encoded or UTF-8
    (``message/global-delivery-status``, RFC 6533) report reads the same as a plain one.
    """
    serialised = part.as_bytes(policy=email.policy.compat32)
    body = _BLANK_LINE.split(serialised, maxsplit=1)[-1]
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding == "base64":
        body = base64.b64decode(b"".join(body.split()), validate=False)
    elif encoding == "quoted-printable":
        body = quopri.decodestring(body)
    blocks = [block for block in _BLANK_LINE.split(body.strip()) if block.strip()]
    parser = HeaderParser(policy=email.policy.default)
    return [parser.parsestr(_text(block)) for block in blocks]


def _report(fields: Message, action: str, final: str) -> DeliveryReport:
    diagnostic = " ".join(str(fields.get("diagnostic-code", "")).split())
    diagnostic = diagnostic.partition(";")[2].strip() if ";" in diagnostic else diagnostic
    status = _status(str(fields.get("status", "")), diagnostic, action)
    original = _address(fields.get("original-recipient"))
    return DeliveryReport(final, action, status, diagnostic[:MAX_DIAGNOSTIC], original)


def _action(value: str) -> str:
    """``failed`` or ``delayed``; other actions (delivered, relayed, expanded) are no
    bounce. OpenSMTPD writes ``error`` for ``failed``; some MTAs add comments."""
    word = value.strip().lower()
    if word.startswith(("fail", "error")):
        return "failed"
    return "delayed" if word.startswith("delay") else ""


def _address(value: object) -> str:
    """``rfc822; Carol@Client.test`` -> ``carol@client.test``."""
    text = str(value or "")
    address = text.partition(";")[2] if ";" in text else text
    return address.strip().strip("<>").strip().lower()


def _status(status: str, diagnostic: str, action: str) -> str:
    """The enhanced status code from Status, else from the diagnostic, else the class
    of a basic SMTP code there, else the default for the action."""
    for text in (status, diagnostic):
        if match := _ENHANCED.search(text):
            return ".".join(match.groups())
    if match := _BASIC.search(diagnostic):
        return f"{match.group(1)}.0.0"
    return "5.0.0" if action == "failed" else "4.0.0"


def _text(block: bytes) -> str:
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("latin-1")


def _guessed_reports(message: Message) -> list[DeliveryReport]:
    """A bounce without a delivery-status part, as flufl.bounce's detectors read it."""
    permanent, temporary = _detected(message)
    text = _plain_text(message)
    found = [(address, "failed") for address in permanent]
    found += [(address, "delayed") for address in temporary]
    return [_guessed(address, action, text) for address, action in found]


def guessed_failures(raw: bytes) -> tuple[list[str], list[str]]:
    """(permanently, only temporarily) failed recipients flufl.bounce's detectors find
    in a mail, lower-cased and sorted; both empty if it reads as no bounce."""
    return _detected(email.message_from_bytes(raw, policy=email.policy.default))


def _detected(message: Message) -> tuple[list[str], list[str]]:
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripped over odd mail: then it is not read as a bounce
        log.warning("bounce detectors failed on %s", message.get("message-id"), exc_info=True)
        return [], []
    failed = sorted({address.decode(errors="replace").lower() for address in permanent})
    delayed = {address.decode(errors="replace").lower() for address in temporary}
    return failed, sorted(delayed - set(failed))


def _guessed(address: str, action: str, text: str) -> DeliveryReport:
    """Status and diagnostic from the line of the text that carries a status code,
    preferring one after the address is mentioned."""
    after = text[max(0, text.lower().find(address)) :]
    for haystack in (after, text):
        for line in haystack.splitlines():
            if _ENHANCED.search(line) or _BASIC.search(line):
                diagnostic = " ".join(line.split())[:MAX_DIAGNOSTIC]
                return DeliveryReport(address, action, _status("", diagnostic, action), diagnostic)
    return DeliveryReport(address, action, _status("", "", action))


def _plain_text(message: Message) -> str:
    """The first text/plain part, decoded (for diagnostics only)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            try:
                return payload.decode(part.get_content_charset() or "utf-8", "replace")
            except LookupError:  # an unknown charset
                return payload.decode("utf-8", "replace")
    return ""
