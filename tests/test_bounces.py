"""Bounces of our own mail and mail loops between two helpdesks.

The DSN reader over the corpus in tests/data; signed bounce (VERP) addresses; the
delivery worker holding automatic mail back from suppressed addresses; then through
a real ``mailgate serve``: an acknowledgement bounced back by SMTP fails its delivery,
shows on the ticket, tells the agent and suppresses the address, while forged and
soft bounces do not; and two daemons whose customers are each other's support
address exchange a bounded number of messages, then stop. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mailgate.addresses import RouteTable
from mailgate.config import Route
from mailgate.db.models import AuditEvent, DeliveryAttempt, OutboxItem, Suppression
from mailgate.db.session import sessions
from mailgate.pipeline.dsn import read_reports
from mailgate.signing import Signer
from tests.support import MailgateProcess, api_get
from tests.test_pipeline import mail, send, sent_to, settled

# file -> (recipient, action, status, hard) of each report
CORPUS = {
    "dsn_postfix.eml": [("nobody@customer.example", "failed", "5.1.1", True)],
    "dsn_postfix_delayed.eml": [("carol@greylist.example", "delayed", "4.7.1", False)],
    "ndr_exchange.eml": [("gone@contoso.example", "failed", "5.1.10", True)],
    "ndr_mixed_delivery_status.eml": [("gone@legacy.example", "failed", "5.0.0", True)],
    "dsn_gmail_failure.eml": [("nosuchuser@gmail.com", "failed", "5.1.1", True)],
    "dsn_gmail_delay.eml": [("slow@busy.example", "delayed", "4.4.1", False)],
    "bounce_exim.eml": [("olduser@legacy.example", "failed", "5.1.1", True)],
    "warning_exim_delay.eml": [("slowuser@legacy.example", "delayed", "4.0.0", False)],
    "bounce_qmail.eml": [("gone@oldhost.example", "failed", "5.1.1", True)],
    # not bounces: no report
    "customer_plain.eml": [],
    "autoreply_rfc3834.eml": [],
    "exchange_oof.eml": [],
    "vacation_xautoreply.eml": [],
    "forwarded_rfc822.eml": [],
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_dsn_reader_over_the_corpus(corpus, name):
    reports = read_reports(corpus(name))
    found = [(r.recipient, r.action, r.status, r.hard) for r in reports]
    assert found == CORPUS[name]


def test_dsn_reader_keeps_the_diagnostic_and_the_original_recipient(corpus):
    [gmail] = read_reports(corpus("dsn_gmail_failure.eml"))
    assert gmail.diagnostic.startswith("550-5.1.1 The email account that you tried to reach")
    assert "\n" not in gmail.diagnostic  # folded lines joined
    [postfix] = read_reports(corpus("dsn_postfix_delayed.eml"))
    assert postfix.original == "carol@greylist.example"
    assert postfix.describe() == (
        "delivery to carol@greylist.example delayed: 4.7.1 "
        "(451 4.7.1 Greylisted, please try again later)"
    )


def test_dsn_reader_reads_base64_and_utf8_reports():
    raw = (
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--b\r\nContent-Type: message/global-delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: utf-8; j\xc3\xb6rg@x.test\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\nUmVwb3J0aW5nLU1UQTogZG5zOyB4DQoNCkZpbmFsLVJlY2lwaWVudDogcmZjODIyOyBhQGIudGVz"
        b"dA0KQWN0aW9uOiBkZWxheWVkDQpTdGF0dXM6IDQuNC4xDQo=\r\n--b--\r\n"
    )
    found = [(r.recipient, r.action, r.status) for r in read_reports(raw)]
    assert found == [("jörg@x.test", "failed", "5.1.1"), ("a@b.test", "delayed", "4.4.1")]


def test_bounce_addresses_are_signed_and_checked():
    signer = Signer(b"secret")
    verp = signer.bounce_address("support@example.test", 42)
    assert re.fullmatch(r"support\+bounce-42\.[a-z2-7]{16}@example\.test", verp)
    assert signer.read_bounce_address(verp) == 42
    assert signer.read_bounce_address(verp.upper()) == 42  # MTAs may change the case
    assert signer.read_bounce_address(f"<{verp}>") == 42
    domain_form = signer.bounce_address("support@example.test", 7, "Bounces.Example.test")
    assert re.fullmatch(r"bounce\+7\.[a-z2-7]{16}@bounces\.example\.test", domain_form)
    assert signer.read_bounce_address(domain_form) == 7
    mac = verp.split(".")[1].split("@")[0]
    forged = [
        verp.replace("-42.", "-43."),
        verp.replace(mac, "a" * 16),
        f"support+bounce-42.{mac[:-1]}@example.test",
        "support+bounce-x.aaaaaaaaaaaaaaaa@example.test",
        "support@example.test",
        "bounce@example.test",
    ]
    assert [signer.read_bounce_address(a) for a in forged] == [None] * len(forged)
    assert Signer(b"other").read_bounce_address(verp) is None


def test_bounce_addresses_of_the_return_path_domain_are_ours():
    routes = [Route(address="support@example.test")]
    with_domain = RouteTable(routes, "bounces.example.test")
    assert with_domain.is_ours("bounce+7.abc@Bounces.Example.test")
    assert not with_domain.is_ours("bounce@bounces.example.test")  # no detail: not one
    assert not with_domain.is_ours("other+7.abc@bounces.example.test")
    assert with_domain.match("bounce+7.abc@bounces.example.test") is None  # not a route
    assert not RouteTable(routes).is_ours("bounce+7.abc@bounces.example.test")


# -- through a real daemon ---------------------------------------------------------


@pytest.fixture
async def daemon(setup, smarthost):
    setup.sections["outbound"] = {
        "smarthost": f"127.0.0.1:{smarthost.port}",
        "suppress_after_bounce_hours": 48.0,
    }
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice"}]
    process = MailgateProcess(setup)
    await process.start()
    yield process
    assert await process.stop() == 0


def dsn(
    verp: str,
    recipient: str,
    message_id: str,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "550 5.1.1 <{r}>: Recipient address rejected: User unknown",
) -> bytes:
    """A Postfix-style DSN about ``message_id``, sent back to ``verp``."""
    diagnostic = diagnostic.format(r=recipient)
    text = f"""Return-Path: <>
From: MAILER-DAEMON@mx.client.test (Mail Delivery System)
To: {verp}
Subject: Undelivered Mail Returned to Sender
Message-ID: <{action}-{message_id.strip("<>")}>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered to {recipient}.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.client.test

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--B
Content-Type: text/rfc822-headers

Message-ID: {message_id}

--B--
"""
    return text.replace("\n", "\r\n").encode()


def outbox_id(verp: str) -> int:
    return int(re.search(r"bounce[+-](\d+)\.", verp).group(1))


async def rows(engine, model, *where) -> list:
    async with sessions(engine)() as session:
        return list(await session.scalars(select(model).where(*where)))


async def ticket(daemon, code: str) -> dict:
    return await api_get(daemon.setup, f"/api/v1/tickets/{code}")


async def bounce_back(daemon, engine, raw: bytes, verp: str, entries: int) -> None:
    """Send a report to ``verp`` from the null sender; wait until it is processed."""
    await asyncio.to_thread(send, daemon.setup.smtp_port, raw, [verp], "")
    await settled(engine, entries)


async def test_hard_bounce_fails_delivery_shows_event_tells_agent_and_suppresses(
    daemon, smarthost, engine
):
    port = daemon.setup.smtp_port
    await asyncio.to_thread(send, port, mail("Printer on fire"))
    await smarthost.wait_for(2)
    [ack] = sent_to(smarthost, "carol@client.test")
    verp, code = ack.mail_from, ack.message["X-Mailgate-Ticket"]
    assert re.fullmatch(r"support\+bounce-\d+\.[a-z2-7]{16}@example\.test", verp)
    assert sent_to(smarthost, "alice@example.test")[0].mail_from != verp  # one per item

    report = dsn(verp, "carol@client.test", ack.message["Message-ID"])
    await bounce_back(daemon, engine, report, verp, 2)
    [item] = await rows(engine, OutboxItem, OutboxItem.id == outbox_id(verp))
    assert item.state == "failed" and "5.1.1" in item.last_error
    attempts = await rows(engine, DeliveryAttempt, DeliveryAttempt.outbox_id == item.id)
    assert [a.ok for a in attempts] == [True, False]
    assert attempts[1].detail.startswith("bounce: delivery to carol@client.test failed: 5.1.1")
    [suppression] = await rows(engine, Suppression)
    assert suppression.email == "carol@client.test"
    until = (
        suppression.until.replace(tzinfo=UTC) if not suppression.until.tzinfo else suppression.until
    )
    assert timedelta(hours=47) < until - datetime.now(UTC) <= timedelta(hours=48)

    shown = await ticket(daemon, code)
    [event] = [m for m in shown["messages"] if m["kind"] == "system"]
    assert event["text"].startswith("Delivery to carol@client.test failed: 5.1.1 (550 5.1.1")
    [audit] = await rows(engine, AuditEvent, AuditEvent.action == "delivery_failed")
    assert audit.data["recipient"] == "carol@client.test" and audit.data["status"] == "5.1.1"
    listed = await api_get(daemon.setup, "/api/v1/tickets")
    assert len(listed["tickets"]) == 1  # the report did not become a ticket

    await smarthost.wait_for(3)
    [notice] = [
        m for m in sent_to(smarthost, "alice@example.test") if "Delivery" in m.message["Subject"]
    ]
    assert notice.message["Subject"] == f"[{code}] Delivery failed: Printer on fire"
    assert notice.message["Auto-Submitted"] == "auto-generated"
    body = notice.message.get_content()
    assert "carol@client.test: 5.1.1" in body and "for 48 hours" in body

    await asyncio.to_thread(send, port, mail("Another problem"))
    await settled(engine, 3)
    await smarthost.wait_for(4)  # the agent's notification of the new ticket ...
    assert len(sent_to(smarthost, "carol@client.test")) == 1  # ... and no acknowledgement
    skipped = await rows(engine, AuditEvent, AuditEvent.action == "ack_skipped")
    assert "suppressed" in skipped[0].data["reason"]


async def test_forged_and_soft_bounces_neither_fail_nor_suppress(daemon, smarthost, engine):
    port = daemon.setup.smtp_port
    await asyncio.to_thread(send, port, mail("Slow mail"))
    await smarthost.wait_for(2)
    [ack] = sent_to(smarthost, "carol@client.test")
    verp, code, message_id = (
        ack.mail_from,
        ack.message["X-Mailgate-Ticket"],
        ack.message["Message-ID"],
    )
    mac = verp.split(".")[1].split("@")[0]
    forged = verp.replace(mac, "a" * 16)

    await bounce_back(daemon, engine, dsn(forged, "carol@client.test", message_id), forged, 2)
    soft = dsn(verp, "carol@client.test", message_id, "delayed", "4.4.1", "451 4.4.1 Try later")
    await bounce_back(daemon, engine, soft, verp, 3)

    [item] = await rows(engine, OutboxItem, OutboxItem.id == outbox_id(verp))
    assert item.state == "sent" and item.last_error is None
    assert await rows(engine, Suppression) == []
    assert await rows(engine, AuditEvent, AuditEvent.action == "delivery_failed") == []
    [delayed] = await rows(engine, AuditEvent, AuditEvent.action == "delivery_delayed")
    assert delayed.data["status"] == "4.4.1"
    events = [m for m in (await ticket(daemon, code))["messages"] if m["kind"] == "system"]
    assert [e["text"] for e in events] == [
        "Delivery to carol@client.test delayed: 4.4.1 (451 4.4.1 Try later)"
    ]
    # The forged report is ordinary automatic mail: stored on a ticket of its own,
    # answered by nobody; no notice went out for either report.
    listed = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
    assert [t["customer"]["email"] for t in listed] == [
        "mailer-daemon@mx.client.test",
        "carol@client.test",
    ]
    assert len(await rows(engine, OutboxItem)) == 2

    await asyncio.to_thread(send, port, mail("Still there?"))
    await smarthost.wait_for(4)  # not suppressed: acknowledged again
    assert len(sent_to(smarthost, "carol@client.test")) == 2


async def test_return_path_domain_bounces_and_text_bounces(setup, smarthost, engine, corpus):
    setup.sections["outbound"] = {
        "smarthost": f"127.0.0.1:{smarthost.port}",
        "return_path_domain": "bounces.example.test",
    }
    process = MailgateProcess(setup)
    await process.start()
    try:
        port = setup.smtp_port
        await asyncio.to_thread(
            send,
            port,
            mail("Old address", sender="Old <olduser@legacy.example>"),
            sender="olduser@legacy.example",
        )
        [ack] = await smarthost.wait_for(1)
        verp = ack.mail_from
        assert re.fullmatch(r"bounce\+\d+\.[a-z2-7]{16}@bounces\.example\.test", verp)
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.ehlo()
            client.mail("")
            assert client.rcpt("bounce+1.junk@bounces.example.test")[0] == 250
            assert client.rcpt("bounce@bounces.example.test")[0] == 550
            assert client.rcpt("other+1.x@bounces.example.test")[0] == 550
        # Exim's plain-text bounce: no delivery-status part, read by flufl.bounce.
        exim = corpus("bounce_exim.eml").replace(
            b"support+bounce-10.abcdefghijklmnop@example.test", verp.encode()
        )
        await asyncio.to_thread(send, port, exim, [verp], "")
        forged = re.sub(r"\.[a-z2-7]{16}@", ".aaaaaaaaaaaaaaaa@", verp)
        another = exim.replace(b"<E1uDnXq-0004aB-7c@", b"<E1forged-0004aB-7c@")
        await asyncio.to_thread(send, port, another, [forged], "")
        entries = await settled(engine, 3)
        assert [e.state for e in entries] == ["done", "done", "quarantined"]
        assert "no route" in entries[2].error
        [item] = await rows(engine, OutboxItem, OutboxItem.id == outbox_id(verp))
        assert item.state == "failed" and "5.1.1" in item.last_error
        [suppression] = await rows(engine, Suppression)
        assert suppression.email == "olduser@legacy.example"
    finally:
        assert await process.stop() == 0
