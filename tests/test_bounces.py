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
from mailgate.db.migrate import upgrade
from mailgate.db.models import (
    AuditEvent,
    DeliveryAttempt,
    JournalEntry,
    Message,
    OutboxItem,
    Suppression,
    Ticket,
)
from mailgate.db.session import create_engine, sessions
from mailgate.outbox.queue import enqueue_outgoing
from mailgate.outbox.transport import SmtpTransport
from mailgate.outbox.worker import DeliveryWorker
from mailgate.pipeline.dsn import read_reports
from mailgate.signing import Signer
from tests.relay import Relay
from tests.support import (
    PG_ADMIN_URL,
    MailgateProcess,
    MailgateSetup,
    api_get,
    daemon_running,
    outgoing,
    wait_until,
)
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


async def test_automatic_mail_is_held_back_from_suppressed_addresses(engine, smarthost):
    """The delivery worker sends no automatic mail (Auto-Submitted) to a suppressed
    address, whoever composed it; a relayed human reply still goes. Every message
    leaves with its own signed return path."""
    await upgrade(engine)
    now = datetime.now(UTC)
    async with sessions(engine).begin() as session:
        session.add(Suppression(email="bounced@client.test", until=now + timedelta(days=1)))
        session.add(Suppression(email="expired@client.test", until=now - timedelta(seconds=1)))
        queued = [
            _enqueue(session, ["Bounced@client.test"], automatic=True),
            _enqueue(session, ["bounced@client.test", "expired@client.test"], automatic=True),
            _enqueue(session, ["bounced@client.test"], automatic=False),
        ]
    signer = Signer(b"secret")
    transport = SmtpTransport("127.0.0.1", smarthost.port, local_hostname="mailgate.test")
    worker = DeliveryWorker(
        engine, transport, "node", return_path=lambda s, i: signer.bounce_address(s, i)
    )
    assert await worker.deliver_due() == 3
    states = {i.id: (i.state, i.last_error) for i in await rows(engine, OutboxItem)}
    held, partly, human = (states[item.id] for item in queued)
    assert held == ("suppressed", "not sent: Bounced@client.test: suppressed after a hard bounce")
    assert partly == ("sent", "bounced@client.test: suppressed after a hard bounce")
    assert human == ("sent", None)
    assert [m.rcpt_tos for m in smarthost.messages] == [
        ("expired@client.test",),
        ("bounced@client.test",),
    ]
    ids = [queued[1].id, queued[2].id]
    assert [signer.read_bounce_address(m.mail_from) for m in smarthost.messages] == ids


def _enqueue(session, recipients: list[str], automatic: bool) -> OutboxItem:
    route = "support@example.test"
    composed = (
        outgoing("acknowledgement", route, recipients, "Automatic", "Hello", "auto-replied")
        if automatic
        else outgoing("relay", route, recipients, "A person's reply", "Hello")
    )
    return enqueue_outgoing(session, composed, ticket=None)


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
    async with daemon_running(setup) as process:
        yield process


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

    # The notice bounces too: no notice about the notice (no loop); Alice is suppressed.
    items = len(await rows(engine, OutboxItem))
    back = dsn(notice.mail_from, "alice@example.test", notice.message["Message-ID"])
    await bounce_back(daemon, engine, back, notice.mail_from, 4)
    [failed] = await rows(engine, OutboxItem, OutboxItem.id == outbox_id(notice.mail_from))
    assert failed.state == "failed" and len(await rows(engine, OutboxItem)) == items
    assert {s.email for s in await rows(engine, Suppression)} == {
        "carol@client.test",
        "alice@example.test",
    }


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
    # To the plain support address, as a mailbox fetched by IMAP has it: To: counts.
    await bounce_back(daemon, engine, soft, "support@example.test", 3)

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
        another = exim.replace(verp.encode(), forged.encode()).replace(b"<E1u", b"<E1forged")
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


# -- two helpdesks writing to each other -------------------------------------------


@pytest.fixture
async def other_database_url(database_url, tmp_path):
    """A second database of the same kind, for a second mailgate."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path}/other.db"
        return
    asyncpg = pytest.importorskip("asyncpg")
    name = database_url.rpartition("/")[2] + "_other"
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url.rpartition("/")[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


LOOP_HEADERS = re.compile(rb"^(auto-submitted|x-loop|precedence):[^\r\n]*\r\n", re.I | re.M)
THREAD_HEADERS = re.compile(rb"^(in-reply-to|references):[^\r\n]*\r\n", re.I | re.M)
CODES = re.compile(rb"\[TCK-\d{8}-[A-Z0-9]{4}\] ?")


def strip_loop_headers(raw: bytes) -> bytes:
    """A path that drops the RFC 3834 headers (some forwarders and gateways do)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return LOOP_HEADERS.sub(b"", head + b"\r\n") + b"\r\n" + body


def strip_loop_and_thread_headers(raw: bytes) -> bytes:
    """Worse: no threading headers and no ticket codes either; only the
    acknowledgement rate limit is left to stop the two."""
    head, _, body = strip_loop_headers(raw).partition(b"\r\n\r\n")
    head = CODES.sub(b"", THREAD_HEADERS.sub(b"", head + b"\r\n"))
    return head + b"\r\n" + body


async def _auto_submitted_held(a, b) -> bool:
    """B stored A's acknowledgement as automatic mail and answered nothing."""
    [reason] = await _all(b, Message.auto_reason)
    return "Auto-Submitted: auto-replied" in reason


async def _threading_held(a, b) -> bool:
    """B's acknowledgement threaded to A's ticket (References), which takes no ack."""
    return len(await _all(a, Ticket.id)) == 1 and len(await _all(a, Message.id)) == 2


async def _ack_rate_limit_held(a, b) -> bool:
    reasons = [data["reason"] for data in await _all(a, AuditEvent.data) if "reason" in data]
    return any("acknowledgement rate limit reached for support@b.test" in r for r in reasons)


async def _all(engine, column) -> list:
    async with sessions(engine)() as session:
        return list(await session.scalars(select(column)))


# path -> (the most messages the two may exchange, the mechanism that stops them)
PATHS = {
    "faithful": (lambda raw: raw, 1, _auto_submitted_held),
    "strips_loop_headers": (strip_loop_headers, 2, _threading_held),
    "strips_threading_too": (strip_loop_and_thread_headers, 6, _ack_rate_limit_held),
}


def helpdesk(directory, database_url: str, name: str, relay_port: int) -> MailgateSetup:
    directory.mkdir()
    setup = MailgateSetup(directory, database_url)
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{relay_port}"}
    setup.sections["web"]["secret_key"] = f"secret-of-{name}"
    setup.routes = [{"address": f"support@{name}.test", "agents": [f"agent@{name}.agents.test"]}]
    setup.agents = [{"email": f"agent@{name}.agents.test", "name": f"Agent {name}"}]
    return setup


async def snapshot(engine) -> tuple[int, int, bool]:
    """Journal entries, outbox items, and whether nothing is waiting or in flight."""
    async with sessions(engine)() as session:
        journal = list(await session.scalars(select(JournalEntry.state)))
        outbox = list(await session.scalars(select(OutboxItem.state)))
    busy = {"pending", "processing", "queued", "sending"} & {*journal, *outbox}
    return len(journal), len(outbox), not busy


async def quiet(*engines) -> list[tuple[int, int, bool]]:
    """Wait until every instance is idle, twice in a row with nothing new between:
    a message in flight is always waiting somewhere (the relay hands it on before
    the sender counts it sent)."""
    last: list = []

    async def settled_twice():
        nonlocal last
        now = [await snapshot(engine) for engine in engines]
        done = now == last and all(idle for *_, idle in now)
        last = now
        return now if done else None

    return await wait_until(settled_twice, "both helpdesks idle", seconds=120, interval=0.2)


@pytest.mark.parametrize("path", sorted(PATHS))
async def test_two_helpdesks_writing_to_each_other_stop(
    tmp_path, database_url, other_database_url, smarthost, path
):
    rewrite, bound, held = PATHS[path]
    relay = Relay({}, smarthost.port, rewrite)
    a = helpdesk(tmp_path / "a", database_url, "a", relay.port)
    b = helpdesk(tmp_path / "b", other_database_url, "b", relay.port)
    relay.ports = {"a.test": a.smtp_port, "b.test": b.smtp_port}
    await relay.start()
    daemons = [MailgateProcess(a), MailgateProcess(b)]
    engines = [create_engine(a.database_url), create_engine(b.database_url)]
    try:
        for daemon in daemons:
            await daemon.start()
        first = mail("Hello from B", sender="B Support <support@b.test>", to="support@a.test")
        await asyncio.to_thread(send, a.smtp_port, first, ["support@a.test"], "support@b.test")
        await quiet(*engines)
        exchanged = len(relay.to("a.test")) + len(relay.to("b.test"))
        assert 1 <= exchanged <= bound
        assert await held(*engines)
        for engine in engines:  # and not because mail failed: all was delivered
            assert set(await _all(engine, OutboxItem.state)) <= {"sent"}
        assert all(daemon.healthy() for daemon in daemons)
    finally:
        for daemon in daemons:
            await daemon.stop()
        for engine in engines:
            await engine.dispose()
        await relay.stop()
