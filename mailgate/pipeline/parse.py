"""Parse: raw message bytes into a ``ParsedMessage``. Pure and synchronous.

Owns the bounded MIME walk over the stdlib parser (``email.policy.default``, fed the
raw bytes), text decoding with charset fallbacks, header decoding (RFC 2047 words
and raw 8-bit UTF-8), Message-ID and address normalisation, and attachments with
safe file names. HTML, quoted history and TNEF live beside it in ``html``,
``quotes`` and ``tnef``.

Bounded work: the stdlib parser tests every line against every open multipart
boundary and re-parses a header on every lookup, so hostile input could take
minutes. Linear scans first reject more than ``MAX_LINES`` lines,
``MAX_HEADER_LINES`` header lines or ``MAX_LINE_CHECKS`` line x nesting tests; a
counting factory stops the parser at ``MAX_PARTS`` parts; the walk stops below
``MAX_DEPTH``; MIME headers are cut short for the stdlib; HTML is cut at ``MAX_HTML_CHARS`` and not
sanitised past ``MAX_HTML_NESTING``.
Past a limit ``ParseError`` is raised and the journal quarantines the message; so it
is for an empty message (``is_empty``), which the intake refuses.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import hashlib
import io
import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import errors
from email.feedparser import BytesFeedParser
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.policy import EmailPolicy, compat32
from email.utils import getaddresses, parsedate_to_datetime

from mailgate.addresses import mailbox
from mailgate.message import Address, ParsedAttachment, ParsedMessage
from mailgate.pipeline import html as html_step
from mailgate.pipeline import tnef
from mailgate.pipeline.quotes import split_quoted

MAX_PARTS = 500
MAX_DEPTH = 50
MAX_LINES = 500_000
MAX_HEADER_LINES = 50_000
MAX_LINE_CHECKS = 3_000_000  # lines x nested multipart boundaries
MAX_HTML_CHARS = 1_000_000
MAX_HTML_NESTING = 10_000_000  # open elements the HTML tree builder would scan, summed
MAX_TEXT_CHARS = 1_000_000
MAX_HEADERS = 300
MAX_MIME_HEADER_CHARS = 2048  # of a header the stdlib parses (Content-Type, -Disposition)
MAX_MIME_PARAMS = 64
MAX_HEADER_CHARS = 4096
MAX_ADDRESS_HEADER_CHARS = 32768
MAX_ADDRESSES = 500
MAX_REFERENCES = 100
MAX_DEFECTS = 50
MAX_FILENAME_BYTES = 255
_BLANK = b" \t\r\n\x00"


class ParseError(Exception):
    """The message is beyond what we parse (too many parts, too deep, too many lines)."""


class _PlainHeaderPolicy(EmailPolicy):
    """policy.default, but header values reach the stdlib as plain strings, cut short.

    policy.default turns every header into a parsed object on each lookup: one 4 KB
    Content-Type with many parameters takes 69 ms (1 MB took five minutes), and
    malformed parameters raise IndexError or RecursionError. The parser and the MIME
    helpers we call (get_content_type, get_param, get_filename) read plain strings
    the same way; our own header reading goes through ``raw_items``.
    """

    def header_fetch_parse(self, name, value):  # type: ignore[no-untyped-def]
        if not isinstance(value, str):
            return value
        value = value[:MAX_MIME_HEADER_CHARS].replace("\r", "").replace("\n", "")
        if value.count(";") > MAX_MIME_PARAMS:
            value = ";".join(value.split(";", MAX_MIME_PARAMS + 1)[: MAX_MIME_PARAMS + 1])
        return value


_POLICY = _PlainHeaderPolicy()


def is_empty(raw: bytes) -> bool:
    """Whether ``raw`` holds nothing but blanks and NULs: no header, no text."""
    return not raw.strip(_BLANK)


def parse(raw: bytes) -> ParsedMessage:
    """Decode one raw message; raises ``ParseError`` only past the work limits, or
    for an empty message."""
    if is_empty(raw):
        raise ParseError("the message is empty")
    _check_cost(raw)
    message = _feed(raw)
    found = _walk(message)
    first, headers, header_defects = _read_headers(message)
    text, html, html_text, body_defects = _body(found)
    text, quoted = split_quoted(text)
    message_id, synthesised = _message_id(first.get("message-id", ""), raw)
    content_type = message.get_content_type()[:255]
    return ParsedMessage(
        message_id=message_id,
        in_reply_to=_ids(first.get("in-reply-to", "")),
        references=_ids(first.get("references", "")),
        subject=headers.get("subject", ("",))[0],
        sender=next(iter(_addresses(first.get("from", ""))), None),
        reply_to=_addresses(first.get("reply-to", "")),
        to=_addresses(first.get("to", "")),
        cc=_addresses(first.get("cc", "")),
        date=_date(first.get("date", "")),
        text=text,
        quoted_text=quoted,
        html=html,
        attachments=tuple(found.attachments),
        content_type=content_type,
        report_type=_report_type(message, content_type),
        headers=headers,
        defects=_unique(found.defects + header_defects + body_defects + _id_defect(synthesised)),
        part_types=tuple(found.part_types),
        html_text=html_text,
    )


# --- bounded parsing -----------------------------------------------------------------

# Both start with a literal, so the regex engine skips ahead fast; run on lower case.
_DECLARED = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))')
_CLOSED = re.compile(rb"\n--([^\r\n]{1,202}?)--[ \t]*\r?$", re.MULTILINE)
_HEADER_LINE = re.compile(rb"^[!-9;-~]{1,76}:", re.MULTILINE)


def _check_cost(raw: bytes) -> None:
    """Reject, in a few linear passes, what would make the stdlib parser crawl."""
    lines = max(raw.count(b"\n"), raw.count(b"\r"))
    if lines > MAX_LINES:
        raise ParseError(f"too many lines: {lines} (limit {MAX_LINES})")
    if raw.count(b":") > MAX_HEADER_LINES:  # cheap bound first, then a closer count
        headers = sum(1 for _ in _HEADER_LINE.finditer(raw))
        if headers > MAX_HEADER_LINES:
            raise ParseError(f"too many header lines: {headers} (limit {MAX_HEADER_LINES})")
    depth = _boundary_depth(raw.lower()) if b"oundary" in raw or b"OUNDARY" in raw else 0
    if depth * lines > MAX_LINE_CHECKS:
        raise ParseError(f"too costly: {lines} lines in multiparts nested {depth} deep")


def _boundary_depth(lowered: bytes) -> int:
    """How deep multipart boundaries nest at most (open declarations until closed)."""
    events = [(m.start(), m.group(1) or m.group(2), True) for m in _DECLARED.finditer(lowered)]
    events += [(m.start(), m.group(1), False) for m in _CLOSED.finditer(lowered)]
    open_boundaries: list[bytes] = []
    depth = 0
    for _, boundary, declared in sorted(events):
        if declared and boundary not in open_boundaries:
            open_boundaries.append(boundary)
            depth = max(depth, len(open_boundaries))
            if depth > MAX_PARTS:
                raise ParseError(f"too many MIME parts: over {MAX_PARTS} multiparts")
        elif not declared and boundary in open_boundaries:
            del open_boundaries[open_boundaries.index(boundary) :]
    return depth


def _feed(raw: bytes) -> EmailMessage:
    count = 0

    def factory(policy: EmailPolicy) -> EmailMessage:
        nonlocal count
        count += 1
        if count > MAX_PARTS:
            raise ParseError(f"too many MIME parts: over {MAX_PARTS}")
        return EmailMessage(policy=policy)

    parser = BytesFeedParser(_factory=factory, policy=_POLICY)
    try:
        parser.feed(raw)
        return parser.close()
    except RecursionError:
        raise ParseError("MIME structure nested too deep") from None
    except _STDLIB_PARAM_BUGS as exc:  # e.g. a boundary given as both boundary* and boundary*0
        raise ParseError(f"the stdlib parser failed: {exc!r:.200}") from None


# --- the walk --------------------------------------------------------------------------


@dataclass
class _Found:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    part_types: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


def _walk(message: Message) -> _Found:
    found = _Found()
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"MIME parts nested deeper than {MAX_DEPTH}")
        content_type = part.get_content_type()[:255]
        found.part_types.append(content_type)
        if content_type.startswith("multipart/") and part.is_multipart():
            stack.extend((child, depth + 1) for child in reversed(part.get_payload()))
        else:
            _leaf(part, content_type, found)
        found.defects.extend(type(defect).__name__ for defect in part.defects)
    return found


def _leaf(part: Message, content_type: str, found: _Found) -> None:
    filename = _filename(part)
    inline = part.get_content_disposition() != "attachment" and not filename
    if content_type.startswith("multipart/"):  # no usable boundary: its body is text
        content_type = "text/plain"
    if inline and content_type in ("text/plain", "text/html") and not part.is_multipart():
        text, defect = _part_text(part)
        (found.plain if content_type == "text/plain" else found.html).append(text)
        found.defects.extend(filter(None, [defect]))
        return
    data, defect = _part_bytes(part)
    found.defects.extend(filter(None, [defect]))
    if content_type == "application/ms-tnef" or filename.lower() == "winmail.dat":
        unpacked = _unpack_tnef(data, len(found.attachments), found.defects)
        if unpacked:
            found.attachments.extend(unpacked)
            return
    index = len(found.attachments) + 1
    found.attachments.append(_attachment(filename, index, content_type, data))


def _part_text(part: Message) -> tuple[str, str]:
    payload = _payload(part)
    limit = MAX_TEXT_CHARS * 4
    return decode_text(payload[:limit], _param(part, "charset"), final=len(payload) <= limit)


def _part_bytes(part: Message) -> tuple[bytes, str]:
    """The decoded payload; a ``message/*`` part as the bytes of the enclosed mail(s)."""
    if not part.is_multipart():
        return _payload(part), ""
    out = io.BytesIO()
    try:
        for inner in part.get_payload():
            BytesGenerator(out, mangle_from_=False, policy=compat32).flatten(inner)
    except Exception as exc:  # the stdlib generator trips on some malformed headers
        return out.getvalue(), f"enclosed message could not be re-serialised: {exc!r:.100}"
    return out.getvalue(), ""


def _payload(part: Message) -> bytes:
    """The decoded payload; base64 the stdlib gave up on is salvaged piece by piece."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return b""
    if any(isinstance(d, errors.InvalidBase64LengthDefect) for d in part.defects):
        return _salvage_base64(payload)
    return payload


def _salvage_base64(data: bytes) -> bytes:
    decoded = []
    for piece in re.split(rb"=+", re.sub(rb"[^A-Za-z0-9+/=]", b"", data)):
        piece = piece[: len(piece) - (len(piece) % 4 == 1)]  # one lone char holds no byte
        decoded.append(binascii.a2b_base64(piece + b"=" * (-len(piece) % 4)))
    return b"".join(decoded)


def _unpack_tnef(data: bytes, start: int, defects: list[str]) -> list[ParsedAttachment]:
    try:
        files = tnef.extract(data)
    except tnef.TnefError as exc:
        defects.append(f"winmail.dat kept as is: {exc}")
        return []
    if not files:
        defects.append("winmail.dat kept as is: it holds no files")
    return [
        _attachment(item.name, start + n, item.content_type or _guess_type(item.name), item.data)
        for n, item in enumerate(files, 1)
    ]


def _attachment(name: str, index: int, content_type: str, data: bytes) -> ParsedAttachment:
    return ParsedAttachment(
        filename=safe_filename(name, index, content_type),
        content_type=content_type[:255],
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except _STDLIB_PARAM_BUGS:
        return ""
    return decode_header(unescape_8bit(name)) if isinstance(name, str) else ""


# RFC 2231 parameters the stdlib chokes on: a charset with a NUL in it (ValueError),
# "name*" next to "name*0" (TypeError while sorting the continuations).
_STDLIB_PARAM_BUGS = (ValueError, TypeError)


def _param(part: Message, name: str) -> str | None:
    try:
        value = part.get_param(name)
    except _STDLIB_PARAM_BUGS:
        return None
    return value if isinstance(value, str) else None


# --- safe file names -------------------------------------------------------------------

_MIME_TYPES = mimetypes.MimeTypes()  # built-in table only: the same on every host
_EXTENSIONS = {
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "text/rfc822-headers": ".txt",
    "text/plain": ".txt",
    "application/ms-tnef": ".dat",
}
_WINDOWS_RESERVED = re.compile(r"(?i)(con|prn|aux|nul|com\d|lpt\d)(\..*)?")
_UNSAFE_CHARS = re.compile(r'[<>:"|?*]')


def safe_filename(name: str, index: int, content_type: str) -> str:
    """A file name safe to store and offer for download, never empty.

    Base name only (no ``/``, ``\\``, ``..``), no control, bidi or other format
    characters, no Windows-reserved characters or names, at most 255 UTF-8 bytes.
    """
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] not in "CZ" or c == " ")
    name = _UNSAFE_CHARS.sub("_", name).strip(". ")
    if _WINDOWS_RESERVED.fullmatch(name):
        name = f"_{name}"
    if not name:
        extension = _EXTENSIONS.get(content_type) or _MIME_TYPES.guess_extension(content_type)
        name = f"attachment-{index}{extension or '.bin'}"
    return _truncate_utf8(name, MAX_FILENAME_BYTES)


def _truncate_utf8(name: str, limit: int) -> str:
    if len(name.encode()) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension) > 16:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    room = limit - len(suffix.encode())
    return stem.encode()[:room].decode("utf-8", "ignore").rstrip(". ") + suffix


def _guess_type(name: str) -> str:
    return _MIME_TYPES.guess_type(name, strict=False)[0] or "application/octet-stream"


# --- text bodies and charsets ----------------------------------------------------------

# Labels decoded with a superset, as browsers do (WHATWG Encoding): mail that says
# iso-8859-1 is very often windows-1252 (curly quotes, euro sign), and so on.
_SUPERSETS = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "iso2022_jp": "iso2022_jp_ext",
}
_NOT_TEXT = {"idna", "punycode", "unicode_escape", "raw_unicode_escape", "undefined"}


@functools.lru_cache(maxsize=256)
def _codec(label: str | None) -> str | None:
    """The codec to decode a declared charset with, or None when unknown."""
    if not label or len(label) > 64:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'").split("*")[0]).name
        b"\xff".decode(name)  # rejects bytes-to-bytes codecs such as base64 or zlib
    except UnicodeDecodeError:
        pass  # a text codec
    except (LookupError, ValueError, TypeError):
        return None
    return None if name in _NOT_TEXT else _SUPERSETS.get(name, name)


def decode_text(data: bytes, label: object, final: bool = True) -> tuple[str, str]:
    """(text, defect or ""): the declared charset, else utf-8, windows-1252, latin-1."""
    label = label if isinstance(label, str) else None
    codec = _codec(label)
    tries = [codec, "utf-8"] if codec else ["utf-8", "cp1252", "latin-1"]
    if codec == "cp1252" and not data.isascii():
        tries.reverse()  # "us-ascii"/"iso-8859-1" on UTF-8 text is common; UTF-8 is never
        # valid by accident in real Latin-1 text
    for name in tries:
        try:
            text = _decode(data, name, "strict", final)
        except UnicodeDecodeError:
            continue
        if not label or name == codec:
            return text, ""
        if codec is None:
            return text, f"unknown charset {label!r:.40}: read as {name}"
        return text, f"text not valid {label!r:.40}: read as {name}"
    text = _decode(data, codec or "latin-1", "replace", final)
    return text, f"text not valid {label!r:.40}: bad bytes replaced"


def _decode(data: bytes, codec: str, handling: str, final: bool) -> str:
    if final:
        text = data.decode(codec, handling)
    else:  # cut at a limit: a multibyte sequence may be split at the end
        text = codecs.getincrementaldecoder(codec)(handling).decode(data, final=False)
    return text.removeprefix("\ufeff")


def _body(found: _Found) -> tuple[str, str | None, str, list[str]]:
    """The text, the sanitised HTML, and the HTML's own text if the text is the plain
    part's (else ""; the text is the HTML's then)."""
    defects: list[str] = []
    markup = "\n".join(found.html)
    if len(markup) > MAX_HTML_CHARS:
        markup = markup[:MAX_HTML_CHARS]
        defects.append(f"HTML cut to {MAX_HTML_CHARS} characters")
    html, html_text = None, ""
    if found.html and html_step.nesting_cost(markup, MAX_HTML_NESTING) > MAX_HTML_NESTING:
        defects.append("HTML nested too deeply to sanitise: kept as text only")
        html_text = html_step.strip_tags(markup)
    elif found.html:
        html = html_step.sanitise(markup)
        html_text = html_step.to_text(html[: 2 * MAX_TEXT_CHARS])
    plain = "\n\n".join(t.strip("\r\n") for t in found.plain if t.strip())
    text = (plain or html_text).replace("\r\n", "\n").replace("\r", "\n")
    also = html_text[:MAX_TEXT_CHARS].replace("\0", "") if plain else ""
    if "\0" in text:
        text = text.replace("\0", "")
        defects.append("NUL characters removed from the text")
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        defects.append(f"text cut to {MAX_TEXT_CHARS} characters")
    return text, html, also, defects


# --- headers ---------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]*)\?=")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def unescape_8bit(value: str) -> str:
    """Raw 8-bit header bytes (SMTPUTF8) as text: UTF-8, else windows-1252/latin-1."""
    if value.isascii():
        return value
    return decode_text(value.encode("utf-8", "surrogateescape"), None)[0]


def decode_header(value: str) -> str:
    """RFC 2047 encoded words decoded; broken words are kept as written."""
    if "=?" not in value:
        return value
    pieces: list[str] = []
    run: list[bytes] = []  # adjacent words in one charset: decoded together
    run_charset, position, after_word = "", 0, False
    for match in _ENCODED_WORD.finditer(value):
        gap, charset = value[position : match.start()], match.group(1).lower()
        data = _word_bytes(match.group(2), match.group(3))
        joins = after_word and data is not None and not gap.strip()
        if run and not (joins and charset == run_charset):
            pieces.append(_decode_run(run_charset, run))
            run = []
        if not joins:  # whitespace between two encoded words is not text
            pieces.append(gap)
        if data is None:
            pieces.append(match.group(0))
        else:
            run_charset = charset
            run.append(data)
        after_word, position = data is not None, match.end()
    if run:
        pieces.append(_decode_run(run_charset, run))
    pieces.append(value[position:])
    return "".join(pieces)


def _word_bytes(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "qQ":
            return binascii.a2b_qp(text.encode("utf-8", "surrogateescape"), header=True)
        return binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
    except (ValueError, UnicodeError):
        return None


def _decode_run(charset: str, run: list[bytes]) -> str:
    return decode_text(b"".join(run), charset.split("*")[0])[0]


def _clean(value: str) -> str:
    if value.isprintable():
        return value.strip()
    return _CONTROL.sub("", value.replace("\t", " ")).strip()


# Read in full (before any cap) from the first occurrence, for parsing.
_STRUCTURED = ("message-id", "in-reply-to", "references", "from", "reply-to", "to", "cc", "date")


def _read_headers(message: Message) -> tuple[dict[str, str], dict[str, tuple[str, ...]], list]:
    """(structured headers' first raw values, every header decoded, defects)."""
    first: dict[str, str] = {}
    headers: dict[str, list[str]] = {}
    items = list(message.raw_items())
    defects = (
        [f"only {MAX_HEADERS} of {len(items)} headers kept"] if len(items) > MAX_HEADERS else []
    )
    for name, value in items[:MAX_HEADERS]:
        key = _clean(name).lower()[:100]
        value = unescape_8bit(value.replace("\r", "").replace("\n", "") if "\n" in value else value)
        if key in _STRUCTURED and key not in first:
            first[key] = value[:MAX_ADDRESS_HEADER_CHARS]
        if len(value) > MAX_HEADER_CHARS:
            defects.append(f"header {key[:40]!r} cut to {MAX_HEADER_CHARS} characters")
            value = value[:MAX_HEADER_CHARS]
        headers.setdefault(key, []).append(_clean(decode_header(value)))
    return first, {name: tuple(values) for name, values in headers.items()}, defects


# Written so that no two parts can match the same spaces: linear even on junk.
_SIMPLE_ADDRESS = re.compile(r'([^"<>,;:()\\]*)<([^\s<>,;:()"]+)>\s*|\s*([^\s<>,;:()"]+)\s*')


def _addresses(value: str) -> tuple[Address, ...]:
    if not value.strip():
        return ()
    pairs = _simple_addresses(value)
    if pairs is None:
        if value.count("(") > 20:  # the stdlib recurses once per nested comment
            value = value.replace("(", " ").replace(")", " ")
        pairs = getaddresses([value])[:MAX_ADDRESSES]
    found = []
    for display, email in pairs:
        email = mailbox(_CONTROL.sub("", email).strip())  # quoted local parts kept
        if not email or len(email) > 320:
            continue
        local, at, domain = email.rpartition("@")
        email = f"{local}@{domain.lower()}" if at else email
        found.append(Address(_clean(decode_header(display))[:255], email))
    return tuple(found)


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """``Name <a@b>, c@d`` lists without quotes or comments, parsed without the
    (slow) stdlib address parser; None when the value needs the full parser."""
    pairs = []
    for item in value.split(",")[:MAX_ADDRESSES]:
        match = _SIMPLE_ADDRESS.fullmatch(item)
        if not match:
            return None
        pairs.append(((match.group(1) or "").strip(), match.group(2) or match.group(3)))
    return pairs


# A bare id is tried only where a token starts, so junk without "@" stays linear.
_ID = re.compile(r'<([^<>\s]{1,990})>|(?<![^\s<>,;"()])([^\s<>,;"()]{1,990}@[^\s<>,;"()]{1,990})')


def _ids(value: str) -> tuple[str, ...]:
    """Message-IDs in a References/In-Reply-To value; bare ``a@b`` tokens tolerated."""
    found = (f"<{m.group(1) or m.group(2)}>"[:998] for m in _ID.finditer(value))
    unique = list(dict.fromkeys(i for i in found if not _CONTROL.search(i)))
    if len(unique) > MAX_REFERENCES:  # keep the thread root and the latest ones
        unique = unique[:1] + unique[-(MAX_REFERENCES - 1) :]
    return tuple(unique)


def _message_id(value: str, raw: bytes) -> tuple[str, bool]:
    ids = _ids(value)
    if ids:
        return ids[0], False
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@synthesised.mailgate>", True


def _id_defect(synthesised: bool) -> list[str]:
    return ["Message-ID missing or invalid: synthesised"] if synthesised else []


def _date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _report_type(message: Message, content_type: str) -> str:
    if content_type != "multipart/report":
        return ""
    value = _param(message, "report-type")
    return value.lower()[:100] if value else ""


def _unique(defects: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(defects))[:MAX_DEFECTS]
