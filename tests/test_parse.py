"""The parse step on the odd-mail corpus in tests/data: what an agent would see."""

# ruff: noqa: RUF001  (the corpus is full of non-Latin letters and punctuation)

from __future__ import annotations

import base64
import contextlib
import email
import hashlib
import re
import struct
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailgate.pipeline import parse as parse_module
from mailgate.pipeline.parse import ParseError, parse, safe_filename
from mailgate.pipeline.quotes import split_quoted
from mailgate.pipeline.tnef import TnefError, extract

DATA = Path(__file__).parent / "data"
CORPUS = sorted(DATA.glob("*.eml"))


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def load(name: str):
    return parse(raw(name))


def assert_safe_filename(name: str) -> None:
    assert name and name.strip(". ") == name
    assert "/" not in name and "\\" not in name and name != ".."
    assert len(name.encode()) <= 255
    assert all(unicodedata.category(c)[0] not in "CZ" or c == " " for c in name)


# --- charsets and headers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "subject", "sender_name", "text"),
    [
        (
            "iso2022jp.eml",
            "請求書の金額",
            "山田 太郎",
            "お問い合わせありがとうございます。\n請求書の金額が間違っています。",
        ),
        (
            "shift_jis.eml",
            "納品書について",
            "Hanako",
            "納品書①を添付します。\nよろしくお願いします。",
        ),
        ("koi8r.eml", "Заказ", "Иван Петров", "Здравствуйте! Заказ 42 не пришёл.\nСпасибо."),
        ("gb2312.eml", "发票问题", "Li Wei", "您好，发票有问题。\n谢谢！"),
        (
            "windows1252_as_latin1.eml",
            "Price question",
            "Zoe Smith",
            "The \u201cbasic\u201d plan costs \u20ac50 \u2013 isn\u2019t that too much?"
            "\nCafé owner",
        ),
        (
            "utf8_headers.eml",
            "Grüße aus München – Bestellung ✓",
            "Jörg Müller",
            "Hallo, die Lieferung für Bestellung 77 fehlt.",
        ),
        ("unknown_charset.eml", "Unknown charset", "Pat", "Naïve café – déjà vu"),
    ],
)
def test_text_is_decoded_by_its_charset(name, subject, sender_name, text):
    message = load(name)
    assert message.subject == subject
    assert message.sender.name == sender_name
    assert message.text == text


def test_unknown_charset_is_noted():
    assert (
        "unknown charset 'x-user-defined-99': read as utf-8" in load("unknown_charset.eml").defects
    )


def test_utf8_text_labelled_us_ascii_or_latin1_is_read_as_utf8():
    for label in (b"us-ascii", b"iso-8859-1"):
        message = parse(b"Content-Type: text/plain; charset=" + label + "\r\n\r\ncafé ✓".encode())
        assert message.text == "café ✓"
    assert parse(b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9").text == "café"


def test_address_domain_is_lower_cased_and_local_part_kept():
    message = load("utf8_headers.eml")
    assert message.sender.email == "joerg@example.de"
    assert parse(b"From: Ann <Ann.Lee@Example.COM>\r\n\r\nx").sender.email == "Ann.Lee@example.com"


def test_encoded_words_split_inside_a_character_are_joined():
    message = load("rfc2047_subjects.eml")
    assert message.subject == "Überweisung für Rechnung № 12 — erledigt?"
    assert message.sender.name == "Renée Åberg"


def test_broken_encoded_words_are_kept_as_written():
    message = load("rfc2047_broken.eml")
    assert message.subject == "ABCx café =?utf-8?Q?unterminated"
    assert message.sender.name == "=?utf-8?B?!!!?="
    assert message.text == "Body survives."


def test_headers_are_kept_lower_cased_with_all_values():
    message = load("dsn_postfix.eml")
    assert message.headers["auto-submitted"] == ("auto-replied",)
    assert message.header("Return-Path") == "<>"
    assert message.headers["content-type"][0].startswith("multipart/report;")
    assert len(message.headers["received"]) == 1


def test_a_100kb_header_line_is_cut_and_noted():
    long_value = "x" * 100_000
    head = f"From: a@example.com\r\nX-Long: {long_value}\r\nSubject: {long_value}\r\n"
    message = parse(head.encode() + b"\r\nhi")
    assert len(message.header("x-long")) == parse_module.MAX_HEADER_CHARS
    assert len(message.subject) == parse_module.MAX_HEADER_CHARS
    assert message.text == "hi"
    assert any("cut to" in defect for defect in message.defects)


def test_header_count_is_capped():
    raw_mail = b"".join(b"X-H%d: v\r\n" % n for n in range(5000)) + b"\r\nbody"
    message = parse(raw_mail)
    assert sum(len(values) for values in message.headers.values()) == parse_module.MAX_HEADERS
    assert message.text == "body"


def test_references_tolerate_missing_brackets_commas_and_garbage():
    message = parse(
        b"In-Reply-To: abc@x.example, <d@e.example> (a comment)\r\n"
        b"References: <r1@x>,<r2@x>\r\n  r3@x garbage <r1@x> <>\r\n\r\nbody"
    )
    assert message.in_reply_to == ("<abc@x.example>", "<d@e.example>")
    assert message.references == ("<r1@x>", "<r2@x>", "<r3@x>")


@pytest.mark.parametrize(
    "header", [b"", b"Message-ID:\r\n", b"Message-ID: <>\r\n", b"Message-ID: no id here\r\n"]
)
def test_missing_or_garbage_message_id_is_synthesised_stably(header):
    raw_mail = header + b"From: a@example.com\r\n\r\nhello"
    first, again = parse(raw_mail), parse(raw_mail)
    assert "Message-ID missing or invalid: synthesised" in first.defects
    assert re.fullmatch(r"<[0-9a-f]{32}@synthesised\.mailgate>", first.message_id)
    assert first.message_id == again.message_id
    assert parse(raw_mail + b"!").message_id != first.message_id


def test_message_id_without_brackets_is_normalised():
    message = parse(b"Message-ID: abc.123@host.example\r\n\r\nx")
    assert message.message_id == "<abc.123@host.example>"
    assert not any(defect.startswith("Message-ID") for defect in message.defects)


def test_corpus_mail_without_message_id():
    message = load("no_message_id.eml")
    assert "Message-ID missing or invalid: synthesised" in message.defects
    assert message.message_id.endswith("@synthesised.mailgate>")


def test_dates_are_aware_and_garbage_is_none():
    assert load("customer_plain.eml").date.isoformat() == "2025-07-21T11:00:00+02:00"
    assert parse(b"Date: yesterday-ish\r\n\r\nx").date is None
    assert parse(b"Date: Mon, 21 Jul 2025 09:00:00 -0000\r\n\r\nx").date.utcoffset() is not None


def test_garbage_address_headers_do_not_raise():
    message = parse(b'From: <<<>>> ,,, "unterminated\r\nTo: @@@, a@b, (comment only)\r\n\r\nx')
    assert all("@" in address.email or address.email for address in message.to)


# --- bodies ----------------------------------------------------------------------------


def test_html_only_mail_gets_text_from_the_html():
    message = load("html_only.eml")
    assert message.text == (
        "Hello support,\n\n"
        "Please see the incident page (https://status.example.org/incident/7).\n"
        "Thanks & regards,\nSam"
    )
    assert '<a href="https://status.example.org/incident/7"' in message.html
    assert "alert" not in message.html and "color: red" not in message.html


def test_alternative_prefers_the_plain_text_and_keeps_sanitised_html():
    message = load("alternative.eml")
    assert message.text == "Plain version: the login page shows error 500."
    assert message.html == "<p>HTML version: the <b>login page</b> shows error 500.</p>"


def test_plain_mail_has_no_html():
    assert load("customer_plain.eml").html is None


def test_html_is_sanitised():
    html = load("xss.eml").html.lower()
    for bad in (
        "<script",
        "onerror",
        "onload",
        "javascript",
        "src=",
        "<iframe",
        "<svg",
        "<form",
        "<input",
        "<meta",
        "<base",
        "<style",
        "expression(",
        "data:",
        "cid:",
        "style=",
    ):
        assert bad not in html, bad
    assert '<a href="https://example.org/help"' in html
    assert "hello <b>support</b>" in html


def test_html_to_text_keeps_quotes_lists_and_drops_script():
    from mailgate.pipeline.html import sanitise, to_text

    text = to_text(
        sanitise(
            "<p>Hi</p><ul><li>one</li><li>two</li></ul><blockquote><p>old</p></blockquote>"
            "<script>x()</script><pre>  kept\n  spacing</pre>"
        )
    )
    assert text == "Hi\n\n- one\n- two\n\n>\n> old\n>\n\n  kept\n  spacing"


def test_oversized_html_is_cut_before_sanitising():
    html = "<p>" + "word " * 700_000 + "</p>"
    message = parse(b"Content-Type: text/html\r\n\r\n" + html.encode())
    assert f"HTML cut to {parse_module.MAX_HTML_CHARS} characters" in message.defects
    assert len(message.html) <= parse_module.MAX_HTML_CHARS + 100


def test_oversized_text_is_cut():
    message = parse(b"Subject: big\r\n\r\n" + b"0123456789abcdef\n" * 70_000)
    assert len(message.text) == parse_module.MAX_TEXT_CHARS
    assert f"text cut to {parse_module.MAX_TEXT_CHARS} characters" in message.defects


def test_nul_bytes_are_removed_and_noted():
    message = load("nul_bytes.eml")
    assert message.text == "BeforeNUL and after."
    assert "NUL characters removed from the text" in message.defects


def test_bare_lf_and_no_body():
    message = parse(b"From: a@example.com\nSubject: Bare LF\n\nLine one.\nLine two.\n")
    assert (message.subject, message.text) == ("Bare LF", "Line one.\nLine two.")
    empty = parse(b"From: a@example.com\r\nSubject: (no body)\r\n")
    assert (empty.text, empty.html, empty.attachments) == ("", None, ())


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\r\n", b" \t\r\n\x00\n"])
def test_an_empty_message_is_a_parse_error(raw):
    """Nothing but blanks and NULs: no ticket can be made of it (the intake refuses it)."""
    with pytest.raises(ParseError, match="the message is empty"):
        parse(raw)


# --- broken MIME -----------------------------------------------------------------------


def test_unused_boundary_keeps_the_text():
    message = load("broken_boundary.eml")
    assert "The printer on floor 3 is jammed." in message.text
    assert "StartBoundaryNotFoundDefect" in message.defects


def test_missing_end_boundary_keeps_text_and_attachment():
    message = load("missing_end_boundary.eml")
    assert message.text == "First part text."
    assert [(a.filename, a.data[:5]) for a in message.attachments] == [("scan.pdf", b"%PDF-")]
    assert "CloseBoundaryNotFoundDefect" in message.defects


def test_invalid_base64_is_salvaged():
    message = load("invalid_base64.eml")
    assert message.text == "Hello, my order is late. Please help"
    assert "InvalidBase64LengthDefect" in message.defects


def test_forty_levels_of_nesting_parse():
    message = load("deep_nesting.eml")
    assert message.text == "Deep inside."
    assert message.part_types.count("multipart/mixed") == 40


def nested(depth: int) -> bytes:
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="l%d"\r\n\r\n--l%d\r\n' % (n, n)
        for n in range(depth)
    )
    tail = b"".join(b"\r\n--l%d--" % n for n in reversed(range(depth)))
    return b"Subject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\ndeep" + tail


def test_nesting_beyond_the_limit_raises():
    with pytest.raises(ParseError, match="nested"):
        parse(nested(parse_module.MAX_DEPTH + 5))


def test_two_thousand_parts_raise_quickly():
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(2000))
    raw_mail = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    started = time.perf_counter()
    with pytest.raises(ParseError, match="too many MIME parts"):
        parse(raw_mail)
    assert time.perf_counter() - started < 0.5


def test_four_hundred_parts_are_fine():
    parts = b"".join(b"--b\r\nContent-Type: image/gif\r\n\r\nGIF89a\r\n" for _ in range(400))
    message = parse(b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n")
    assert len(message.attachments) == 400
    assert message.attachments[399].filename == "attachment-400.gif"


def test_nested_rfc822_messages_raise_instead_of_recursing():
    raw_mail = b"Subject: x\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 5000 + b"hi"
    started = time.perf_counter()
    with pytest.raises(ParseError):
        parse(raw_mail)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    "raw_mail",
    [
        b"Subject: lines\r\n\r\n" + b"\n" * (parse_module.MAX_LINES + 1),
        nested(40) + b"\n" * 200_000,
        b"Content-Type: message/delivery-status\r\n\r\n" + b"A: b\r\n\r\n" * 5000,
    ],
    ids=["many-lines", "deep-and-long", "delivery-status-blocks"],
)
def test_costly_structures_raise_quickly(raw_mail):
    started = time.perf_counter()
    with pytest.raises(ParseError):
        parse(raw_mail)
    assert time.perf_counter() - started < 2


HOSTILE_HEADERS = {
    "content-type-params": b"Content-Type: text/plain; " + b"a=b; " * 200_000 + b"\r\n\r\nx",
    "rfc2231-continuations": b'Content-Type: multipart/mixed; boundary="a"\r\n\r\n--a\r\n'
    b"Content-Disposition: attachment; "
    + b"".join(b"filename*%d=a; " % i for i in range(60_000))
    + b"\r\n\r\nx\r\n--a--",
    "nested-comments-in-to": b"To: " + b"(" * 30_000 + b"\r\n\r\nx",
    "many-angles-in-to": b"To: " + b"<" * 30_000 + b"\r\n\r\nx",
    "parts-with-long-params": b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    + b"".join(
        b"--b\r\nContent-Type: text/plain; " + b"a=b; " * 4000 + b"\r\n\r\nx\r\n"
        for _ in range(300)
    )
    + b"--b--\r\n",
    "header-flood": b"X-A: b\r\n" * 60_000 + b"\r\nx",
    "references-without-at": b"References: " + b"a" * 30_000 + b"\r\n\r\nx",
    "spaces-before-angle-in-to": b"To: a" + b" " * 30_000 + b"<\r\n\r\nx",
}


@pytest.mark.parametrize("raw_mail", HOSTILE_HEADERS.values(), ids=HOSTILE_HEADERS.keys())
def test_hostile_headers_finish_quickly(raw_mail):
    started = time.perf_counter()
    with contextlib.suppress(ParseError):
        parse(raw_mail)
    assert time.perf_counter() - started < 2


def test_stdlib_parameter_bugs_do_not_escape():
    mixed = b"charset*=x; charset*0=y\r\nContent-Disposition: inline; filename*=a; filename*0=b"
    assert parse(b"Content-Type: text/plain; " + mixed + b"\r\n\r\nhi").text == "hi"
    with pytest.raises(ParseError, match="stdlib parser failed"):
        parse(b"Content-Type: multipart/mixed; boundary*=x; boundary*0=y\r\n\r\n--x\r\n\r\nhi")


def test_deeply_nested_html_is_kept_as_text_only():
    started = time.perf_counter()
    message = parse(b"Content-Type: text/html\r\n\r\n" + b"<div>" * 100_000 + b"<p>deep &amp; x")
    assert time.perf_counter() - started < 2
    assert message.html is None
    assert message.text == "deep & x"
    assert "HTML nested too deeply to sanitise: kept as text only" in message.defects


# --- attachments -----------------------------------------------------------------------


def test_hostile_filenames_are_made_safe():
    names = [a.filename for a in load("evil_filenames.eml").attachments]
    assert names[:5] == ["passwd", "evil.exe", "invoicefdp.exe", "badname.txt", "attachment-5.png"]
    assert names[5].endswith(".pdf") and len(names[5].encode()) == 255
    assert names[6:] == ["_CON.txt", "secret.txt", "attachment-9.pdf"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Windows\\evil.exe", "evil.exe"),
        ("invoice\u202etxt.exe", "invoicetxt.exe"),
        ("a\x00b\x1b[31mc\u200b.txt", "ab[31mc.txt"),
        ("..", "attachment-3.pdf"),
        ("", "attachment-3.pdf"),
        ("   .hidden ", "hidden"),
        ("re:port<1>?.pdf", "re_port_1__.pdf"),
        ("nul", "_nul"),
    ],
)
def test_safe_filename(name, expected):
    assert safe_filename(name, 3, "application/pdf") == expected


def test_long_multibyte_filename_is_cut_on_a_character_boundary():
    name = safe_filename("日本語" * 100 + ".xlsx", 1, "application/octet-stream")
    assert name.endswith(".xlsx") and len(name.encode()) <= 255
    assert_safe_filename(name)


@given(st.text(max_size=400), st.integers(1, 500))
def test_safe_filename_is_always_safe(name, index):
    assert_safe_filename(safe_filename(name, index, "application/octet-stream"))


def test_attachment_checksums():
    attachment = load("missing_end_boundary.eml").attachments[0]
    assert attachment.sha256 == hashlib.sha256(attachment.data).hexdigest()


def test_forwarded_message_is_kept_as_eml():
    (attachment,) = load("forwarded_rfc822.eml").attachments
    assert (attachment.filename, attachment.content_type) == ("attachment-1.eml", "message/rfc822")
    assert parse(attachment.data).subject == "Your account"


def test_delivery_status_is_kept_as_text_attachment():
    attachments = load("dsn_postfix.eml").attachments
    assert [a.content_type for a in attachments] == [
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert b"Status: 5.1.1" in attachments[0].data


# --- TNEF ------------------------------------------------------------------------------


def tnef_attribute(level: int, attr_id: int, data: bytes) -> bytes:
    checksum = struct.pack("<H", sum(data) & 0xFFFF)
    return struct.pack("<BII", level, attr_id, len(data)) + data + checksum


def mapi_string(prop_type: int, prop_id: int, text: str) -> bytes:
    data = text.encode("utf-16-le") + b"\0\0" if prop_type == 0x1F else text.encode() + b"\0"
    return struct.pack("<HHII", prop_type, prop_id, 1, len(data)) + data + bytes(-len(data) % 4)


def winmail(files: list[tuple[str, str, str, bytes]]) -> bytes:
    """A TNEF stream as Outlook writes it ([MS-OXTNEF]): per file the rendering data,
    an 8.3 title, the data, and MAPI properties with the long name and MIME type."""
    out = struct.pack("<IH", 0x223E9F78, 1)
    out += tnef_attribute(1, 0x00089006, struct.pack("<I", 0x00010000))  # attTnefVersion
    out += tnef_attribute(1, 0x00069007, struct.pack("<II", 1252, 0))  # attOemCodepage
    out += tnef_attribute(1, 0x00078008, b"IPM.Microsoft Mail.Note\0")  # attMessageClass
    for long_name, short_name, mime, data in files:
        out += tnef_attribute(2, 0x00069002, struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 0))
        out += tnef_attribute(2, 0x00018010, short_name.encode("cp1252") + b"\0")
        out += tnef_attribute(2, 0x0006800F, data)
        props = [
            mapi_string(0x1F, 0x3707, long_name),
            mapi_string(0x1E, 0x370E, mime),
            struct.pack("<HHI", 0x0003, 0x3705, 1),
        ]
        out += tnef_attribute(2, 0x00069005, struct.pack("<I", len(props)) + b"".join(props))
    return out


WINMAIL_FILES = [
    ("Quarterly report \u2013 Q2.txt", "QUARTE~1.TXT", "text/plain", b"Revenue is up 5%.\r\n"),
    ("../logo.png", "LOGO.PNG", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(16)),
]


def test_winmail_dat_is_unpacked():
    message = load("winmail.eml")
    assert message.text == "See the attached report."
    assert [(a.filename, a.content_type, a.data) for a in message.attachments] == [
        ("Quarterly report \u2013 Q2.txt", "text/plain", b"Revenue is up 5%.\r\n"),
        ("logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(16)),
    ]


def test_corpus_winmail_dat_is_the_one_this_writer_makes():
    stored = email.message_from_bytes(raw("winmail.eml")).get_payload()[1]
    assert stored.get_payload(decode=True) == winmail(WINMAIL_FILES)


def test_tnef_short_title_is_used_without_mapi_names():
    stream = struct.pack("<IH", 0x223E9F78, 1)
    stream += tnef_attribute(2, 0x00069002, bytes(14))
    stream += tnef_attribute(2, 0x00018010, b"NOTES.TXT\0")
    stream += tnef_attribute(2, 0x0006800F, b"notes")
    assert [(f.name, f.data) for f in extract(stream)] == [("NOTES.TXT", b"notes")]


@pytest.mark.parametrize(
    "stream",
    [
        b"",
        b"not tnef at all",
        winmail(WINMAIL_FILES)[:60],
        struct.pack("<IH", 0x223E9F78, 1)
        + tnef_attribute(2, 0x00069002, bytes(14))
        + tnef_attribute(2, 0x00069005, struct.pack("<IHH", 1, 0x7777, 0x3707)),
    ],
    ids=["empty", "garbage", "truncated", "unknown-property-type"],
)
def test_broken_tnef_raises_tnef_error(stream):
    with pytest.raises(TnefError):
        extract(stream)


def test_broken_winmail_dat_is_kept_as_is():
    data = base64.encodebytes(b"\x78\x9f\x3e\x22garbage")
    message = parse(
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: application/ms-tnef\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="winmail.dat"\r\n\r\n' + data + b"--b--\r\n"
    )
    assert [a.filename for a in message.attachments] == ["winmail.dat"]
    assert any(defect.startswith("winmail.dat kept as is") for defect in message.defects)


@given(st.binary(max_size=300))
def test_tnef_reader_raises_only_tnef_error(tail):
    with contextlib.suppress(TnefError):
        extract(struct.pack("<IH", 0x223E9F78, 1) + tail)


# --- quoted history --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "quoted_start"),
    [
        ("reply_en.eml", "It works again, thank you!", "On Mon, Jul 21, 2025 at 11:00 AM Support"),
        ("reply_id.eml", "Sudah bisa, terima kasih banyak.", "Pada tanggal Sen, 21 Jul 2025"),
        ("reply_de.eml", "Danke, jetzt geht es.", "Am 21.07.2025 um 11:00 schrieb Support"),
        (
            "reply_outlook.eml",
            "Yes, the order number is 12345.\n\nRegards,\nMia",
            "________________________________\nFrom: Support <support@example.test>\nSent:",
        ),
    ],
)
def test_quoted_history_is_split_off(name, text, quoted_start):
    message = load(name)
    assert message.text == text
    assert message.quoted_text.startswith(quoted_start)


@pytest.mark.parametrize(
    "text",
    [
        "On Mon, 1 Jan 2024, Bob wrote:\n> q1\nanswer1\n> q2\nanswer2",  # interleaved answers
        "Hi,\nOn Monday you wrote:\nthe printer is broken",  # a person's sentence
        "-----Original Message-----\nFrom: a\nSent: b\nTo: c\n\nforwarded only",  # nothing new
        "> all quoted\n> nothing new",
    ],
)
def test_quote_splitter_keeps_text_whole_when_unsure(text):
    assert split_quoted(text) == (text, "")


def test_trailing_quote_block_is_split():
    assert split_quoted("Yes please.\n\n> Do you want it?\n>\n> Bob\n") == (
        "Yes please.",
        "> Do you want it?\n>\n> Bob",
    )


def test_quote_splitter_is_linear_on_hostile_text():
    started = time.perf_counter()
    split_quoted("> a\nb\n" * 100_000)
    split_quoted(("Am " + "schrieb " * 120 + "\n") * 1000)
    assert time.perf_counter() - started < 3


# --- properties ------------------------------------------------------------------------


def check_invariants(raw_mail: bytes) -> None:
    try:
        message = parse(raw_mail)
    except ParseError:
        return
    assert re.fullmatch(r"<[^<>\s]+>", message.message_id)
    assert all(re.fullmatch(r"<[^<>\s]+>", i) for i in message.in_reply_to + message.references)
    for attachment in message.attachments:
        assert_safe_filename(attachment.filename)
    assert "\0" not in message.text + message.subject


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_raise_parse_error(raw_mail):
    check_invariants(raw_mail)


MIME_PIECES = [
    b"\r\n",
    b"\n",
    b"--",
    b"=?",
    b"?=",
    b"=?utf-8?b?",
    b"boundary=",
    b'"',
    b";",
    b"Content-Type: multipart/mixed; boundary=x\r\n",
    b"--x\r\n",
    b"--x--",
    b"Content-Transfer-Encoding: base64\r\n",
    b"charset=",
    b"\x00",
    b"\xff\xfe",
    b"filename*=utf-8''%E2%80%AE",
    b"message/rfc822",
    b"<",
    b">",
    b"@",
]


@st.composite
def mutated_corpus_mail(draw):
    data = bytearray(draw(st.sampled_from(CORPUS)).read_bytes())
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "flip"]))
        if action == "insert":
            data[position:position] = draw(st.sampled_from(MIME_PIECES) | st.binary(max_size=8))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 64))]
        elif position < len(data):
            data[position] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_corpus_mail())
def test_mutated_corpus_mail_parses_or_raises_parse_error(raw_mail):
    check_invariants(raw_mail)


@pytest.mark.parametrize("path", CORPUS, ids=lambda path: path.name)
def test_every_corpus_file_parses(path):
    check_invariants(path.read_bytes())
    assert parse(path.read_bytes()) == parse(path.read_bytes())
