"""SMTP and LMTP intake against a running daemon, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import socket
from datetime import UTC, datetime, timedelta

import pytest

from mailgate.db.migrate import upgrade
from mailgate.localtime import utc
from mailgate.pipeline.journal import Arrival, Journal
from tests.support import DatabaseLock, journal_entries

MESSAGE = (
    b"From: Customer <cust@client.test>\r\n"
    b"To: support@example.test\r\n"
    b"Subject: Printer on fire\r\n"
    b"Message-ID: <m1@client.test>\r\n"
    b"\r\n"
    b"It is still burning.\r\n"
)


def smtp_send(port: int, sender: str, recipients: list[str], raw: bytes) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail(sender, recipients, raw)


def lmtp_send(port: int, sender: str, recipients: list[str], raw: bytes) -> list[int]:
    """Deliver over LMTP; the DATA reply codes, one per recipient (smtplib reads one)."""
    with smtplib.LMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo_or_helo_if_needed()
        client.mail(sender)
        accepted = [r for r in recipients if client.rcpt(r)[0] == 250]
        codes = [client.data(raw)[0]]
        codes += [client.getreply()[0] for _ in accepted[1:]]
        return codes


async def test_smtp_message_is_journaled_byte_for_byte(mailgate, engine):
    raw = MESSAGE + b"Caf\xc3\xa9 \xff\x00 binary tail\r\n"
    await asyncio.to_thread(
        smtp_send, mailgate.setup.smtp_port, "cust@client.test", ["support@example.test"], raw
    )
    [entry] = await journal_entries(engine)
    assert entry.raw == raw
    assert entry.source == "smtp"
    assert entry.mail_from == "cust@client.test"
    assert entry.recipients == ["support@example.test"]


async def test_lmtp_message_is_journaled_byte_for_byte(mailgate, engine):
    await asyncio.to_thread(
        lmtp_send, mailgate.setup.lmtp_port, "cust@client.test", ["support@example.test"], MESSAGE
    )
    [entry] = await journal_entries(engine)
    assert entry.raw == MESSAGE
    assert entry.source == "lmtp"


async def test_two_of_our_addresses_make_one_entry_with_two_recipients(mailgate, engine):
    recipients = ["Support@Example.TEST", "billing+invoices@example.test"]
    setup = mailgate.setup
    refused = await asyncio.to_thread(
        smtp_send, setup.smtp_port, "c@client.test", recipients, MESSAGE
    )
    assert refused == {}
    codes = await asyncio.to_thread(
        lmtp_send, setup.lmtp_port, "c@client.test", recipients, MESSAGE
    )
    assert codes == [250, 250]
    entries = await journal_entries(engine)
    assert [e.recipients for e in entries] == [recipients, recipients]


def raw_dialogue(port: int, lines: list[bytes]) -> list[bytes]:
    """Send ``lines`` (ending with QUIT) and return every reply line until the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"".join(line + b"\r\n" for line in lines))
        stream = sock.makefile("rb")
        return [line for line in stream if line[3:4] != b"-"]


async def test_lmtp_answers_once_per_recipient(mailgate, engine):
    lines = [
        b"LHLO client.test",
        b"MAIL FROM:<cust@client.test>",
        b"RCPT TO:<support@example.test>",
        b"RCPT TO:<nobody@example.test>",
        b"RCPT TO:<billing@example.test>",
        b"DATA",
        b"Subject: two\r\n\r\nbody\r\n.",
        b"QUIT",
    ]
    replies = await asyncio.to_thread(raw_dialogue, mailgate.setup.lmtp_port, lines)
    codes = [reply[:3] for reply in replies]
    assert codes.count(b"550") == 1
    data_at = codes.index(b"354")
    # After the final dot: one 250 per accepted recipient, then QUIT's 221.
    assert codes[data_at + 1 : data_at + 3] == [b"250", b"250"]
    [entry] = await journal_entries(engine)
    assert entry.recipients == ["support@example.test", "billing@example.test"]


async def test_unknown_recipient_is_550_at_rcpt(mailgate, engine):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await asyncio.to_thread(
            smtp_send, mailgate.setup.smtp_port, "x@client.test", ["nobody@example.test"], MESSAGE
        )
    code, text = refused.value.recipients["nobody@example.test"]
    assert code == 550 and text.startswith(b"5.1.1")
    assert await journal_entries(engine) == []


async def test_oversize_message_is_552_and_not_stored(setup, engine):
    from tests.support import MailgateProcess

    setup.sections["smtp"]["max_message_bytes"] = 10_000
    daemon = MailgateProcess(setup)
    await daemon.start()
    try:
        big = MESSAGE + b"x" * 20_000 + b"\r\n"
        with pytest.raises(smtplib.SMTPException) as error:
            await asyncio.to_thread(
                smtp_send, setup.smtp_port, "c@client.test", ["support@example.test"], big
            )
        assert "552" in str(error.value)
        assert await journal_entries(engine) == []
    finally:
        assert await daemon.stop() == 0


async def test_disconnect_mid_data_leaves_nothing(mailgate, engine):
    def half_message() -> None:
        with socket.create_connection(("127.0.0.1", mailgate.setup.smtp_port)) as sock:
            stream = sock.makefile("rwb")
            stream.readline()
            for command in (
                b"HELO c",
                b"MAIL FROM:<c@client.test>",
                b"RCPT TO:<support@example.test>",
            ):
                stream.write(command + b"\r\n")
                stream.flush()
                assert stream.readline()[:3] == b"250"
            stream.write(b"DATA\r\n")
            stream.flush()
            assert stream.readline()[:3] == b"354"
            stream.write(b"Subject: cut\r\n\r\nhalf a mess")
            stream.flush()

    await asyncio.to_thread(half_message)
    await asyncio.to_thread(
        smtp_send, mailgate.setup.smtp_port, "c@client.test", ["support@example.test"], MESSAGE
    )
    entries = await journal_entries(engine)
    assert [e.raw for e in entries] == [MESSAGE]


async def test_malformed_commands_get_5xx(mailgate):
    lines = [
        b"HELO",
        b"MAIL FROM:<broken",
        b"EHLO c",
        b"RCPT TO:<support@example.test>",
        b"MAIL FROM:<broken",
        b"BOGUS",
        b"QUIT",
    ]
    replies = await asyncio.to_thread(raw_dialogue, mailgate.setup.smtp_port, lines)
    codes = [reply[:3] for reply in replies]
    assert codes == [b"220", b"501", b"503", b"250", b"503", b"553", b"500", b"221"]


async def test_smtputf8_and_8bitmime(mailgate, engine):
    raw = "Subject: Grüße\r\n\r\nÜnïcödé body\r\n".encode()

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", mailgate.setup.smtp_port) as client:
            client.ehlo()
            assert client.has_extn("smtputf8") and client.has_extn("8bitmime")
            client.sendmail(
                "jürgen@client.test", ["support@example.test"], raw, mail_options=["SMTPUTF8"]
            )

    await asyncio.to_thread(send)
    [entry] = await journal_entries(engine)
    assert entry.raw == raw and entry.mail_from == "jürgen@client.test"


async def test_arrivals_at_once_share_commits_and_each_gets_its_own_entry(engine):
    """The journal commits arrivals that wait together in one transaction (on SQLite
    from a thread of its own): each sender still learns its own entry, and the entry
    holds exactly what arrived."""
    await upgrade(engine)
    journal = Journal(engine, timeout=10.0)
    arrivals = [
        Arrival(
            "smtp",
            f"c{n}@client.test",
            ("support@example.test", "Bïlling@example.test"),
            MESSAGE + bytes([n]) * n,
            f"127.0.0.1:{4000 + n}",
            "client.test",
        )
        for n in range(40)
    ]
    try:
        ids = await asyncio.gather(*(journal.store(arrival) for arrival in arrivals))
    finally:
        await journal.close()
    assert len(set(ids)) == 40
    by_id = {entry.id: entry for entry in await journal_entries(engine)}
    now = datetime.now(UTC)
    for entry_id, arrival in zip(ids, arrivals, strict=True):
        entry = by_id[entry_id]
        assert (entry.raw, entry.mail_from, entry.peer) == (
            arrival.raw,
            arrival.mail_from,
            arrival.peer,
        )
        assert entry.recipients == list(arrival.recipients)
        assert entry.sha256 == hashlib.sha256(arrival.raw).hexdigest()
        assert (entry.state, entry.attempts, entry.error) == ("pending", 0, None)
        assert abs(now - utc(entry.received_at)) < timedelta(minutes=1)


async def test_a_commit_waits_for_another_writer_and_then_lands(engine, database_url):
    """A writer holding the database for a moment (the pipeline's transaction) delays
    a journal commit; it does not fail it."""
    await upgrade(engine)
    journal = Journal(engine, timeout=10.0)
    try:
        async with DatabaseLock(database_url):
            storing = asyncio.ensure_future(
                journal.store(Arrival("smtp", "c@client.test", ("support@example.test",), MESSAGE))
            )
            await asyncio.sleep(0.3)
            assert not storing.done()
        entry_id = await asyncio.wait_for(storing, 10)
    finally:
        await journal.close()
    [entry] = await journal_entries(engine)
    assert (entry.id, entry.raw) == (entry_id, MESSAGE)
