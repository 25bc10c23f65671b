"""Every valid sender taken: quoted local parts, internationalised addresses and the
unqualified ``MAILER-DAEMON`` of bounces, at SMTP and LMTP, stored on the ticket and
quoted again in the acknowledgement that goes out.

A real daemon, real SMTP/LMTP clients, a real smarthost sink that records the RCPT it
was given; SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from mailgate.addresses import envelope_sender, mailbox
from tests.test_intake_smtp import raw_dialogue
from tests.test_pipeline import daemon, mail, send, sent_to, settled, tickets  # noqa: F401

QUOTED = '"System Administrator"@example.com'


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ('"System Administrator"@example.com', '"System Administrator"@example.com'),
        ('"john"@example.com', "john@example.com"),  # quotes only where needed
        ('"a\\"b"@example.com', '"a\\"b"@example.com'),
        ('"Jörg Müller"@bücher.example', '"Jörg Müller"@bücher.example'),
        ("jörg@bücher.example", "jörg@bücher.example"),
        ("john..doe@example.com", "john..doe@example.com"),  # seen in the wild: kept
        ("System Administrator@example.com", ""),
        ("<a@example.com>", ""),
        ("@example.com", ""),
    ],
)
def test_mailbox_quotes_a_local_part_only_when_it_must(written, stored):
    assert mailbox(written) == stored


@pytest.mark.parametrize(
    ("path", "sender"),
    [("<>", ""), ("", ""), ("<MAILER-DAEMON>", ""), ("mailer-daemon", ""),
     (f"<{QUOTED}>", QUOTED), ("junk", None)],
)  # fmt: skip
def test_envelope_sender_reads_null_senders_and_quoted_paths(path, sender):
    assert envelope_sender(path) == sender


def ack_rcpts(smarthost) -> list[tuple[str, ...]]:
    return [m.rcpt_tos for m in smarthost.messages if m.message["Auto-Submitted"] == "auto-replied"]


async def test_quoted_local_part_gets_a_ticket_and_an_acknowledgement(daemon, smarthost):  # noqa: F811
    raw = mail("Disk full", sender=f"System Administrator <{QUOTED}>")
    await asyncio.to_thread(send, daemon.setup.smtp_port, raw, sender=QUOTED)
    await smarthost.wait_for(2)  # the acknowledgement and the agent's notification
    [listed] = await tickets(daemon)
    # Addresses are compared without regard to case, and stored in lower case.
    customer = '"system administrator"@example.com'
    assert listed["customer"] == {"name": "System Administrator", "email": customer}
    assert ack_rcpts(smarthost) == [(customer,)]
    [ack] = sent_to(smarthost, customer)
    assert f"System Administrator <{customer}>".encode() in ack.raw  # To: quoted again
    assert ack.message["To"].addresses[0].username == "system administrator"


async def test_quoted_sender_over_lmtp(daemon, smarthost, engine):  # noqa: F811
    def deliver() -> None:
        with smtplib.LMTP("127.0.0.1", daemon.setup.lmtp_port) as client:
            client.sendmail(QUOTED, ["support@example.test"], mail("Over LMTP", sender=QUOTED))

    await asyncio.to_thread(deliver)
    [entry] = await settled(engine, 1)
    assert entry.mail_from == QUOTED
    await smarthost.wait_for(2)
    assert ack_rcpts(smarthost) == [('"system administrator"@example.com',)]


async def test_unqualified_mailer_daemon_is_a_bounce(daemon, smarthost, engine):  # noqa: F811
    bounce = mail("Delivery problem", sender="Mail System <mailsystem@mx.client.test>")
    lines = [
        b"EHLO mx.client.test",
        b"MAIL FROM:<MAILER-DAEMON>",
        b"RCPT TO:<support@example.test>",
        b"DATA",
        bounce.replace(b"\r\n.", b"\r\n..") + b".",
        b"QUIT",
    ]
    replies = await asyncio.to_thread(raw_dialogue, daemon.setup.smtp_port, lines)
    codes = [reply[:3] for reply in replies]
    assert codes == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"]
    # The barrier: a customer's mail after it is acknowledged, the bounce never.
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Barrier"))
    entries = await settled(engine, 2)
    assert entries[0].mail_from == ""  # stored as the null sender
    await smarthost.wait_for(2)  # the barrier's acknowledgement and notification
    assert ack_rcpts(smarthost) == [("carol@client.test",)]
    assert len(smarthost.messages) == 2  # and nothing about the bounce


@pytest.mark.parametrize("sender", ['"Jörg Müller"@bücher.example', "jörg@bücher.example"])
async def test_internationalised_sender_under_smtputf8(daemon, smarthost, sender):  # noqa: F811
    raw = f"From: Jörg <{sender}>\r\nTo: support@example.test\r\nSubject: Grüße\r\n\r\nHallo\r\n"

    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", daemon.setup.smtp_port) as client:
            client.sendmail(sender, ["support@example.test"], raw.encode(), ["SMTPUTF8"])

    await asyncio.to_thread(deliver)
    await smarthost.wait_for(2)
    customer = sender.lower()
    assert ack_rcpts(smarthost) == [(customer,)]
    [ack] = sent_to(smarthost, customer)
    assert f"<{customer}>".encode() in ack.raw  # a raw UTF-8 header (RFC 6532)
