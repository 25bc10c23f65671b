"""Outgoing mail as a recipient sees it: the composer's bytes parsed back by the stdlib.

Headers must decode to the values we wrote, lines stay within 998 characters (78
where a space allows) and end in CRLF, and the body decodes to the template's text.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from mailgate.config import Route
from mailgate.db.models import Ticket
from mailgate.outbox.compose import Composer, InReplyTo, NewAttachment, Outgoing, Reply
from mailgate.outbox.templates import MailTemplates
from mailgate.signing import Signer

ROUTE = Route(address="support@example.test", name="Example Support")
PARENT = InReplyTo("<first@client.test>")
COMPOSER = Composer(MailTemplates(), Signer(b"k" * 32), "http://mailgate.test")

# What people type as names and subjects: any printable text, single-spaced, as the
# templates and the address parser leave it.
TEXT = (
    st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1)
    .map(lambda text: " ".join(text.split()))
    .filter(bool)
)


def ticket(subject: str = "Printer on fire", name: str = "Carol", email: str = "c@client.test"):
    return Ticket(
        code="ABC-1234",
        subject=subject,
        customer_name=name,
        customer_email=email,
        queue="support",
        status="new",
        priority="normal",
        assignee=None,
        created_at=datetime.now(UTC),
    )


def acknowledgement(subject: str = "Printer on fire", **kw) -> Outgoing:
    customer = ticket(subject, **kw)
    return COMPOSER.acknowledgement(customer, ROUTE, PARENT, customer.customer_name)


def reply(text: str, *, to=(("c@client.test", "Carol"),), cc=(), attachments=()) -> Outgoing:
    answer = Reply("Alice", text, tuple(to), tuple(cc), tuple(attachments))
    return COMPOSER.agent_reply(ticket(), ROUTE, PARENT, answer)


def parse(outgoing: Outgoing) -> EmailMessage:
    """``outgoing`` as a recipient reads it, after checking its lines."""
    raw = outgoing.raw
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    return email.message_from_bytes(raw, policy=email.policy.default)


def head_lines(outgoing: Outgoing) -> list[bytes]:
    return outgoing.raw.partition(b"\r\n\r\n")[0].split(b"\r\n")


def decoded(message: EmailMessage, name: str) -> str:
    """The raw field ``name`` decoded as RFC 2047 says. (The stdlib's address parser
    keeps the space between two encoded words of a display name; mail clients drop
    it, as the RFC says.)"""
    [value] = [value for field, value in message.raw_items() if field == name]
    return str(make_header(decode_header(value.replace("\r\n", ""))))


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def test_an_acknowledgement_reads_back_as_written():
    outgoing = acknowledgement("Pertanyaan tentang tagihan ✓", name="Jörg Müller")
    message = parse(outgoing)
    assert outgoing.raw.isascii()  # encoded words and quoted-printable, no SMTPUTF8
    assert message["Subject"] == outgoing.subject == "[ABC-1234] Pertanyaan tentang tagihan ✓"
    assert message["Thread-Topic"] == "Pertanyaan tentang tagihan ✓"
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Jörg Müller", "c@client.test")
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Example Support", ROUTE.address)
    assert message["Message-ID"] == outgoing.message_id
    assert message["In-Reply-To"] == message["References"] == PARENT.message_id
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Mailgate-Ticket"] == "ABC-1234"
    assert message["Reply-To"].startswith("support+abc-1234.")
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert "Hello Jörg Müller," in text_of(message)
    assert all(len(line) <= 78 for line in outgoing.raw.split(b"\r\n"))


def test_ascii_short_lines_go_as_7bit():
    message = parse(acknowledgement(name="Carol"))
    assert message["Content-Transfer-Encoding"] == "7bit"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"


def test_a_long_subject_is_folded_between_words():
    subject = " ".join(f"word{n:03d}" for n in range(25)) + "!"
    assert len(subject) == 200
    outgoing = acknowledgement(subject)
    assert parse(outgoing)["Subject"] == f"[ABC-1234] {subject}"
    subject_lines = [line for line in head_lines(outgoing) if b"word" in line]
    assert len(subject_lines) > 4  # Subject and Thread-Topic, folded
    assert all(len(line) <= 78 for line in subject_lines)


def test_a_word_too_long_for_a_line_stays_whole():
    word = "x" * 120
    outgoing = acknowledgement(f"see {word}")
    assert parse(outgoing)["Thread-Topic"] == f"see {word}"
    assert b"Thread-Topic: see\r\n " + word.encode() + b"\r\n" in outgoing.raw


def test_display_names_that_need_quoting():
    to = [("a@client.test", 'Doe, John "JD"'), ("b@client.test", "O'Brien (home)")]
    cc = [("c@client.test", "back\\slash"), ("d@client.test", "")]
    message = parse(reply("Hi", to=to, cc=cc))
    assert [(a.addr_spec, a.display_name) for a in message["To"].addresses] == to
    assert [(a.addr_spec, a.display_name) for a in message["Cc"].addresses] == cc
    assert str(message["From"].addresses[0].display_name) == "Alice via Example Support"


def test_a_long_non_ascii_name_becomes_several_encoded_words():
    name = "Jörg Müller-Lüdenscheidt von Großherzogtum Mecklenburg-Strelitz ✓"
    message = parse(acknowledgement(name=name))
    assert decoded(message, "To") == f"{name} <c@client.test>"
    words = [word for word in dict(message.raw_items())["To"].split() if word.startswith("=?")]
    assert len(words) > 1 and all(len(word) <= 75 for word in words)


def test_text_that_looks_like_an_encoded_word_reads_back_as_written():
    outgoing = acknowledgement("=?utf-8?q?not_encoded?=", name="=?utf-8?q?Mallory?=")
    message = parse(outgoing)
    assert message["Thread-Topic"] == "=?utf-8?q?not_encoded?="
    assert message["To"].addresses[0].display_name == "=?utf-8?q?Mallory?="


def test_only_a_non_ascii_address_makes_it_smtputf8():
    outgoing = acknowledgement("Frage ✓", name="Jörg Müller", email="jörg@例え.jp")
    message = parse(outgoing)
    assert "jörg@例え.jp".encode() in outgoing.raw
    assert "Jörg Müller".encode() in outgoing.raw  # raw UTF-8, as RFC 6532 allows
    # The bytes parser leaves raw UTF-8 in address parts undecoded; the whole reads right.
    assert str(message["To"]) == "Jörg Müller <jörg@例え.jp>"
    assert message["Subject"] == "[ABC-1234] Frage ✓"
    assert outgoing.recipients == ("jörg@例え.jp",)


def test_the_references_chain_is_folded_between_ids():
    chain = tuple(f"<{n:04d}.{'x' * 30}@client.test>" for n in range(30))
    parent = InReplyTo(chain[-1], chain[:-1])
    outgoing = COMPOSER.solved(ticket(), ROUTE, parent, "Solved")
    message = parse(outgoing)
    assert message["References"].split() == list(chain[-20:])
    lines = head_lines(outgoing)
    start = next(n for n, line in enumerate(lines) if line.startswith(b"References:"))
    folded = lines[start : start + 20]
    assert folded[0] == b"References: " + chain[-20].encode()
    assert [line.strip() for line in folded[1:]] == [i.encode() for i in chain[-19:]]


def test_the_body_decodes_to_the_text_with_long_lines_and_non_ascii():
    text = "Grüße ✓\n" + "long " * 300 + "\n\n-- \nAlice\n"
    outgoing = reply(text)
    message = parse(outgoing)
    assert message.get_body(("plain",))["Content-Transfer-Encoding"] == "quoted-printable"
    assert text in text_of(message)
    assert all(len(line) <= 78 for line in outgoing.raw.split(b"\r\n"))


def test_a_reply_with_attachments_is_multipart():
    files = [
        NewAttachment("Rechnung März.pdf", "application/pdf", b"%PDF-1.4 \x00\xff"),
        NewAttachment("notes.txt", "text/plain", "grüße\n".encode()),
    ]
    outgoing = reply("See the files ✓", attachments=files)
    message = parse(outgoing)
    assert outgoing.raw.isascii()
    assert message.get_content_type() == "multipart/mixed"
    assert "See the files ✓" in text_of(message)
    assert "See the files ✓" in message.get_body(("html",)).get_content()
    parts = list(message.iter_attachments())
    assert [p.get_filename() for p in parts] == ["Rechnung März.pdf", "notes.txt"]
    assert [p.get_content_type() for p in parts] == ["application/pdf", "text/plain"]
    assert [p.get_payload(decode=True) for p in parts] == [f.data for f in files]
    assert b"filename*=utf-8''Rechnung%20M%C3%A4rz.pdf" in outgoing.raw


def test_a_reply_is_plain_text_and_the_same_as_html():
    message = parse(reply("Dear <Carol> & co,\n\nswitch it off.\n\n-- \nAlice\nTier 2"))
    assert message.get_content_type() == "multipart/alternative"
    markup = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert "Dear &lt;Carol&gt; &amp; co,<br>\n<br>\nswitch it off." in markup
    assert "-- <br>\nAlice<br>\nTier 2<br>" in markup and "<Carol>" not in markup


@settings(max_examples=300, deadline=None)
@given(name=TEXT.filter(lambda name: len(name.encode()) <= 45), subject=TEXT)
def test_any_name_and_subject_read_back_as_written(name, subject):
    outgoing = acknowledgement(subject, name=name)
    message = parse(outgoing)
    assert outgoing.raw.isascii()
    assert message["Thread-Topic"] == subject
    assert message["Subject"] == outgoing.subject
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, "c@client.test")
    assert f"Hello {name}," in text_of(message)


@settings(max_examples=100, deadline=None)
@given(name=TEXT.map(lambda text: f"Jörg {text} Müller-Lüdenscheidt von Großherzogtum"))
def test_any_long_non_ascii_name_reads_back_as_written(name):
    message = parse(acknowledgement(name=name))
    assert decoded(message, "To") == f"{name} <c@client.test>"
