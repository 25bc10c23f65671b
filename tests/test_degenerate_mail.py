"""Degenerate mail sent to a running daemon, by SMTP, LMTP and ``mailgate deliver``: each
message is refused with a clear code or stored and settled (a ticket, or quarantined
with its reason), and the good mail sent after each one becomes a ticket with its
acknowledgement delivered.

What each case becomes, and why:
- empty (``DATA`` then ``.``), a lone NUL: nothing to make a ticket of; refused at
  ``DATA`` with ``554 5.6.0`` (the sender's MTA bounces it at once), exit 65 from
  ``deliver``. One already in the journal is quarantined as empty.
- headers only, no headers, body only, a 0-byte attachment: real if odd mail; tickets.
- one 10 MB line: over the SMTP listener's line limit (4 MB, RFC 5321 allows 1,000
  bytes), so aiosmtpd answers ``500`` at the end of DATA; ``deliver`` has no line
  limit and it becomes a ticket (its text cut short by the parser).
- 10,000 MIME parts: stored, then quarantined past the parser's part limit.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.smarthost import Smarthost
from tests.support import api_get, daemon_running, journal_entries, wait_until
from tests.test_intake_smtp import raw_dialogue
from tests.test_pipe import deliver
from tests.test_pipeline import mail

SUPPORT = "support@example.test"
PROTOCOLS = ("smtp", "lmtp", "deliver")
REFUSED_EMPTY = {"smtp": "554 5.6.0", "lmtp": "554 5.6.0", "deliver": "exit 65"}
TICKET = dict.fromkeys(PROTOCOLS, "ticket")
TOO_MANY_PARTS = "quarantined: parse: ParseError: too many MIME parts: over 500"
EXPECTED = {
    "empty": REFUSED_EMPTY,
    "nul": REFUSED_EMPTY,
    "headers_only": TICKET,
    "no_headers": TICKET,
    "body_only": TICKET,
    "empty_attachment": TICKET,
    "huge_line": {"smtp": "500", "lmtp": "500", "deliver": "ticket"},
    "many_parts": dict.fromkeys(PROTOCOLS, TOO_MANY_PARTS),
}


def degenerate(case: str, sender: str) -> bytes:
    """The raw bytes of one degenerate message from ``sender``."""
    head = f"From: {sender}\r\nTo: {SUPPORT}\r\nMessage-ID: {make_msgid(domain='client.test')}\r\n"
    if case == "empty":
        return b""
    if case == "nul":
        return b"\x00"
    if case == "headers_only":
        return f"{head}Subject: Headers only".encode()
    if case == "no_headers":  # (each one different: with no Message-ID the same bytes
        return f"\r\nA body after an empty header block, from {sender}.\r\n".encode()
    if case == "body_only":  # are the same message, a duplicate)
        return f"Just a body, no headers at all.\r\nFrom {sender}.\r\n".encode()
    if case == "empty_attachment":
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = sender, SUPPORT, "Empty file"
        message.set_content("The file is attached.")
        message.add_attachment(b"", maintype="application", subtype="pdf", filename="e.pdf")
        return message.as_bytes().replace(b"\n", b"\r\n")
    if case == "huge_line":
        return b"x" * (10 * 1024 * 1024)
    assert case == "many_parts"
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n" for n in range(10_000))
    mime = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n"
    return f"{head}Subject: Many parts\r\n{mime}\r\n{parts}--b--\r\n".encode()


def transact(port: int, protocol: str, sender: str, raw: bytes) -> str:
    """One mail transaction on a new connection; the reply to the end of DATA.

    The body goes on the wire as it is (dot-stuffed, CRLF added only if missing), so
    an empty message is ``DATA`` followed at once by ``.``."""
    client_class = smtplib.LMTP if protocol == "lmtp" else smtplib.SMTP
    with client_class("127.0.0.1", port, timeout=60) as client:
        client.ehlo()  # LHLO on LMTP
        assert client.mail(sender)[0] == 250
        assert client.rcpt(SUPPORT)[0] == 250
        assert client.docmd("DATA")[0] == 354
        body = re.sub(rb"(?m)^\.", b"..", raw)
        if body and not body.endswith(b"\r\n"):
            body += b"\r\n"
        client.send(body + b".\r\n")
        code, text = client.getreply()
    return f"{code} {text.decode(errors='replace')}"


async def send(setup, protocol: str, sender: str, raw: bytes) -> str:
    """Send by ``protocol``; the SMTP reply, or ``exit N`` from ``mailgate deliver``."""
    if protocol == "deliver":
        code, _ = await deliver(setup, raw, f"--sender={sender}", f"--recipient={SUPPORT}")
        return f"exit {code}"
    port = setup.smtp_port if protocol == "smtp" else setup.lmtp_port
    return await asyncio.to_thread(transact, port, protocol, sender, raw)


@pytest.fixture
async def daemon(setup, smarthost: Smarthost):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    async with daemon_running(setup) as process:
        yield process


async def test_degenerate_mail_never_holds_back_the_mail_behind_it(daemon, smarthost, engine):
    replies: dict[tuple[str, str], str] = {}
    good: list[str] = []
    for case in EXPECTED:
        for protocol in PROTOCOLS:
            sender = f"{case}.{protocol}@client.test"
            replies[case, protocol] = await send(
                daemon.setup, protocol, sender, degenerate(case, sender)
            )
            after = f"good.{case}.{protocol}@client.test"
            raw = mail(f"Good mail after {case} by {protocol}", sender=after)
            # (after ``deliver`` by SMTP: the same place in the journal, and each run
            # of ``deliver`` costs a Python start-up)
            by = "smtp" if protocol == "deliver" else protocol
            assert (await send(daemon.setup, by, after, raw)).startswith("250")
            good.append(after)

    async def acknowledged():  # the barrier: every good mail a ticket, its ack delivered
        return all(any(after in m.rcpt_tos for m in smarthost.messages) for after in good)

    await wait_until(acknowledged, "an acknowledgement of every good mail", seconds=120)
    tickets = (await api_get(daemon.setup, "/api/v1/tickets", limit=500))["tickets"]
    customers = {ticket["customer"]["email"] for ticket in tickets}
    assert set(good) <= customers

    async def settled():
        entries = await journal_entries(engine)
        waiting = [e for e in entries if e.state in ("pending", "processing")]
        return entries if not waiting else None

    stored = {entry.mail_from: entry for entry in await wait_until(settled, "a settled journal")}
    became = {
        (case, protocol): outcome(reply, stored.get(f"{case}.{protocol}@client.test"), customers)
        for (case, protocol), reply in replies.items()
    }
    expected = {
        (case, protocol): e for case, row in EXPECTED.items() for protocol, e in row.items()
    }
    assert became == expected


def outcome(reply: str, entry, customers: set[str]) -> str:
    """What one degenerate message became: its refusal (``554 5.6.0``, ``500``, ``exit
    65``), ``ticket``, or the state and error of its journal entry."""
    if reply.startswith("exit") and reply != "exit 0":
        return reply
    if not reply.startswith(("250", "exit")):
        return re.match(r"\d{3}( \d\.\d{1,3}\.\d{1,3})?", reply).group()
    assert entry is not None, reply
    if entry.state == "done":
        assert entry.mail_from in customers
        return "ticket"
    return f"{entry.state}: {entry.error}"


async def test_lmtp_refuses_a_long_line_or_too_much_data_once_per_recipient(setup, engine):
    """aiosmtpd refuses a line over the limit (500) and a message over the size limit
    (552) with one reply; an LMTP client with two recipients waits for a second and
    the connection stalls. Each reply comes twice, and the next mail on the same
    connection is taken."""
    setup.sections["smtp"]["max_message_bytes"] = 1_000_000
    transaction = [
        b"MAIL FROM:<c@client.test>",
        b"RCPT TO:<support@example.test>",
        b"RCPT TO:<billing@example.test>",
        b"DATA",
    ]
    long_line = b"x" * (5 * 1024 * 1024) + b"\r\n."
    too_much = b"A line of a long message.\r\n" * 50_000 + b"."
    good = mail("After the refusals") + b"."
    lines = [b"LHLO client.test"]
    for body in (long_line, too_much, good):
        lines += [*transaction, body]
    async with daemon_running(setup):
        replies = await asyncio.to_thread(raw_dialogue, setup.lmtp_port, [*lines, b"QUIT"])
    codes = [reply[:3].decode() for reply in replies]
    before = ["250", "250", "250", "354"]  # MAIL, RCPT, RCPT, DATA
    assert codes == [
        *["220", "250", *before, "500", "500"],  # greeting, LHLO, then the long line
        *[*before, "552", "552"],
        *[*before, "250", "250"],
        "221",
    ]
    [entry] = await journal_entries(engine)
    assert b"After the refusals" in entry.raw
