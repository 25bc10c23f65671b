"""The wire form of outgoing mail, written from values we know instead of parsed back.

Header fields are folded at spaces to 78 columns where a space allows; a word is never
broken, so one longer than that stays whole on its line. Non-ASCII display names and
text travel as RFC 2047 encoded words, which every smarthost accepts. Only a non-ASCII
address (``jörg@…``) cannot be written that way: then the message goes as SMTPUTF8,
its headers in raw UTF-8 (RFC 6532). Lines end in CRLF.
"""

from __future__ import annotations

import binascii
import email.policy
import re
from collections.abc import Callable, Iterable, Sequence
from email import base64mime
from email.message import EmailMessage
from email.utils import quote

MAX_LINE = 78  # RFC 5322's "should"; 998 is its "must"
MAX_HARD_LINE = 998
# 45 bytes are 60 base64 characters: with "=?utf-8?b?" and "?=" a word stays within
# the 75 characters RFC 2047 allows.
_ENCODED_WORD_BYTES = 45
_WORDS = re.compile(r"[ \t]*[^ \t]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NEEDS_QUOTES = re.compile(r'[][\\()<>@,:;".\t]|^ | $|  ')
_LINE_END = re.compile(rb"\r\n|\r|\n")

Mailbox = tuple[str, str]  # (address, display name), the name possibly empty


def needs_smtputf8(addresses: Iterable[str]) -> bool:
    """Whether mail with these addresses must go as SMTPUTF8: only if one is not ASCII."""
    return not all(address.isascii() for address in addresses)


class Head:
    """The header fields of one outgoing message, in the order they are added.

    Fields are written when the message is (``wire``): whether a display name or a
    Subject may stay raw UTF-8 depends on all the addresses of the message.
    """

    def __init__(self) -> None:
        self._fields: list[tuple[str, Callable[[bool], list[str]]]] = []
        self._addresses: list[str] = []

    def field(self, name: str, value: str) -> None:
        """A structured field of ASCII tokens (Message-ID, References, Date, …)."""
        if _CONTROL.search(value):
            raise ValueError(f"{name} cannot hold {value!r}")
        pieces = _pieces(value)
        self._fields.append((name, lambda utf8: pieces))

    def text(self, name: str, value: str) -> None:
        """An unstructured field (Subject, Thread-Topic): any text."""
        self._fields.append((name, lambda utf8: _text(name, value, utf8)))

    def mailboxes(self, name: str, mailboxes: Sequence[Mailbox]) -> None:
        """An address field: From, To, Cc, Reply-To."""
        for address, _ in mailboxes:
            if _CONTROL.search(address):
                raise ValueError(f"{name} cannot hold the address {address!r}")
        self._addresses.extend(address for address, _ in mailboxes)
        self._fields.append((name, lambda utf8: _mailbox_list(mailboxes, utf8)))

    def wire(self, entity: bytes) -> bytes:
        """The whole message: these fields, then ``entity`` (its MIME fields and body)."""
        utf8 = needs_smtputf8(self._addresses)
        lines = [_fold(name, pieces(utf8)) for name, pieces in self._fields]
        return "\r\n".join(lines).encode() + b"\r\n" + entity


def text_entity(text: str) -> bytes:
    """``text`` as a text/plain UTF-8 entity: its MIME fields, a blank line, the body."""
    body = b"\r\n".join(text.encode().splitlines()) + b"\r\n"
    cte = transfer_encoding(text)
    if cte == "quoted-printable":
        body = binascii.b2a_qp(body)
    return (
        b'MIME-Version: 1.0\r\nContent-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n" + body
    )


def transfer_encoding(text: str) -> str:
    """7bit for ASCII in short lines; else quoted-printable, as a smarthost without
    8BITMIME still takes it (and non-ASCII text in templates is mostly Latin)."""
    lines = text.encode().splitlines()
    if text.isascii() and all(len(line) <= MAX_LINE for line in lines):
        return "7bit"
    return "quoted-printable"


def serialise(message: EmailMessage, utf8: bool = False) -> bytes:
    """``message`` as the standard library writes it, with CRLF line ends; ``utf8``
    for SMTPUTF8 (see ``needs_smtputf8``)."""
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    # The generator already writes CRLF; the substitution guards odd payloads that
    # carry bare CR or LF, so the stored bytes are exactly what goes on the wire.
    return _LINE_END.sub(b"\r\n", message.as_bytes(policy=policy))


def encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 encoded words (UTF-8, base64), split between characters."""
    data = text.encode()
    words = []
    while data:
        cut = min(len(data), _ENCODED_WORD_BYTES)
        while cut < len(data) and data[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte
            cut -= 1
        words.append(base64mime.header_encode(data[:cut], "utf-8"))
        data = data[cut:]
    return words


def _text(name: str, value: str, utf8: bool) -> list[str]:
    """Pieces of unstructured text: as written if it can be, else encoded words. Text
    that looks like an encoded word is encoded too, so it reads back as written."""
    plain = (
        (utf8 or value.isascii())
        and "=?" not in value
        and not _CONTROL.search(value)
        and max(map(len, value.split()), default=0) <= MAX_HARD_LINE - len(name) - 2
    )
    return _pieces(value) if plain else [f" {word}" for word in encoded_words(value)]


def _mailbox_list(mailboxes: Sequence[Mailbox], utf8: bool) -> list[str]:
    pieces: list[str] = []
    for address, name in mailboxes:
        if pieces:
            pieces[-1] += ","
        pieces.extend([*_phrase(name, utf8), f" <{address}>"] if name else [f" {address}"])
    return pieces


def _phrase(name: str, utf8: bool) -> list[str]:
    """A display name: as words, quoted, or as encoded words."""
    if not (utf8 or name.isascii()) or "=?" in name or _CONTROL.search(name):
        return [f" {word}" for word in encoded_words(name)]
    if _NEEDS_QUOTES.search(name):
        return [f' "{quote(name)}"']
    return _pieces(name)


def _pieces(value: str) -> list[str]:
    """``value`` split before each run of spaces and tabs, where a line may be folded;
    the first piece gets the space that follows the field's colon."""
    if " " not in value and "\t" not in value:  # most ids and addresses: no regex
        return [f" {value}"]
    return _WORDS.findall(f" {value}")


def _fold(name: str, pieces: list[str]) -> str:
    """``name:`` and ``pieces`` (each begins with its space or tab), a line broken
    before a piece that would take it past MAX_LINE."""
    start = f"{name}:"
    whole = start + "".join(pieces)
    if len(whole) <= MAX_LINE:
        return whole
    lines = [start]
    for piece in pieces:
        if len(lines[-1]) + len(piece) > MAX_LINE and lines[-1] != start:
            lines.append(piece)
        else:
            lines[-1] += piece
    return "\r\n".join(lines)
