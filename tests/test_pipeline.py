"""Mail in through SMTP, tickets and acknowledgements out: the pipeline end to end.

A real daemon, a real aiosmtpd smarthost sink, the database for real (SQLite and
PostgreSQL); the state is read back through the JSON API, as a script would.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.utils import make_msgid

import pytest
from sqlalchemy import select, update

from mailgate.db.models import OutboxItem, Ticket
from tests.support import MailgateProcess, api_get, daemon_running, journal_entries, wait_until

pytestmark = pytest.mark.usefixtures("smarthost")


def mail(
    subject: str,
    body: str = "Hello, my printer is on fire.",
    sender: str = "Carol Customer <carol@client.test>",
    to: str = "support@example.test",
    extra: str = "",
    message_id: str | None = None,
) -> bytes:
    message_id = message_id or make_msgid(domain="client.test")
    head = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
        f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n{extra}"
    )
    return f"{head}\r\n{body}\r\n".encode()


def send(port: int, raw: bytes, recipients=("support@example.test",), sender="carol@client.test"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, list(recipients), raw)


@pytest.fixture
async def daemon(setup, smarthost):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.routes[1]["agents"] = ["budi@example.test"]
    setup.agents = [
        {"email": "alice@example.test", "name": "Alice"},
        {"email": "budi@example.test", "name": "Budi"},
    ]
    async with daemon_running(setup) as process:
        yield process


async def tickets(daemon, **params) -> list[dict]:
    body = await api_get(daemon.setup, "/api/v1/tickets", **params)
    return body["tickets"]


async def ticket(daemon, code: str) -> dict:
    return await api_get(daemon.setup, f"/api/v1/tickets/{code}")


async def settled(engine, count: int) -> list:
    """Wait until ``count`` journal entries are through the pipeline."""

    async def done():
        entries = await journal_entries(engine)
        finished = [e for e in entries if e.state in ("done", "duplicate", "quarantined")]
        return entries if len(finished) >= count else None

    return await wait_until(done, what=f"{count} journal entries processed")


def sent_to(smarthost, address: str) -> list:
    return [m for m in smarthost.messages if address in m.rcpt_tos]


async def test_new_mail_makes_ticket_ack_and_agent_notification(daemon, smarthost, engine):
    raw = mail("Printer on fire", message_id="<first@client.test>")
    await asyncio.to_thread(send, daemon.setup.smtp_port, raw)
    await smarthost.wait_for(2)
    [ack] = sent_to(smarthost, "carol@client.test")
    [note] = sent_to(smarthost, "alice@example.test")
    [listed] = await tickets(daemon)
    code = listed["code"]
    assert listed["status"] == "New" and listed["queue"] == "support"
    assert listed["customer"] == {"name": "Carol Customer", "email": "carol@client.test"}
    message = ack.message
    assert message["Subject"] == f"[{code}] Printer on fire"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<first@client.test>"
    assert message["X-Loop"] == "support@example.test"
    assert "support@example.test" in message["From"]
    assert message["Reply-To"].startswith(f"support+{code.lower()}.")
    assert message["Thread-Index"] and message["Thread-Topic"] == "Printer on fire"
    body = message.get_content()
    assert f"/t/{code}?k=" in body
    assert note.message["Subject"] == f"[{code}] New ticket: Printer on fire"
    assert "my printer is on fire" in note.message.get_content()
    assert note.message["Reply-To"].startswith(f"support+{code.lower()}.")
    assert note.message["Reply-To"] != message["Reply-To"]  # signed for Alice


async def test_replies_by_subject_code_and_references_stay_on_the_ticket(daemon, smarthost, engine):
    port = daemon.setup.smtp_port
    await asyncio.to_thread(send, port, mail("Invoice missing", message_id="<q1@client.test>"))
    await smarthost.wait_for(2)
    [listed] = await tickets(daemon)
    code = listed["code"]
    by_subject = mail(f"Re: AW: [{code}] Invoice missing", body="Any news?")
    await asyncio.to_thread(send, port, by_subject)
    ack_id = sent_to(smarthost, "carol@client.test")[0].message["Message-ID"]
    by_references = mail("no code here", body="Here is the PDF", extra=f"References: {ack_id}\r\n")
    await asyncio.to_thread(send, port, by_references)
    await settled(engine, 3)
    await smarthost.wait_for(4)  # two more agent notifications, no second acknowledgement
    assert len(sent_to(smarthost, "carol@client.test")) == 1
    shown = await ticket(daemon, code)
    assert [m["text"].strip() for m in shown["messages"]] == [
        "Hello, my printer is on fire.",
        "Any news?",
        "Here is the PDF",
    ]
    assert len(await tickets(daemon)) == 1


async def test_stranger_quoting_a_code_gets_a_new_ticket(daemon, smarthost, engine):
    port = daemon.setup.smtp_port
    await asyncio.to_thread(send, port, mail("My order"))
    await settled(engine, 1)
    [first] = await tickets(daemon)
    stranger = mail(f"Re: [{first['code']}] My order", sender="mallory@evil.test")
    await asyncio.to_thread(send, port, stranger, sender="mallory@evil.test")
    await settled(engine, 2)
    listed = await tickets(daemon)
    assert len(listed) == 2
    newest = listed[0]
    assert newest["customer"]["email"] == "mallory@evil.test"
    assert (await ticket(daemon, first["code"]))["message_count"] == 1


AUTOMATIC = {
    "auto-submitted": "Auto-Submitted: auto-replied\r\n",
    "precedence-bulk": "Precedence: bulk\r\n",
    "list": "List-Id: Customers <customers.lists.client.test>\r\n",
    "our-loop": "X-Loop: support@example.test\r\n",
}


@pytest.mark.parametrize("kind", sorted(AUTOMATIC))
async def test_automatic_mail_gets_no_acknowledgement(daemon, smarthost, engine, kind):
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Automatic", extra=AUTOMATIC[kind]))
    await settled(engine, 1)
    [listed] = await tickets(daemon)
    shown = await ticket(daemon, listed["code"])
    assert shown["messages"][0]["auto_reason"]
    await only_the_barrier_is_answered(daemon, smarthost, engine, count=2)


async def test_bounces_get_no_acknowledgement(daemon, smarthost, engine, corpus):
    port = daemon.setup.smtp_port
    for name in ("dsn_postfix.eml", "ndr_exchange.eml"):
        await asyncio.to_thread(send, port, corpus(name), sender="")
    await settled(engine, 2)
    for listed in await tickets(daemon):
        shown = await ticket(daemon, listed["code"])
        assert shown["messages"][0]["auto_reason"]
    await only_the_barrier_is_answered(daemon, smarthost, engine, count=3)


async def only_the_barrier_is_answered(daemon, smarthost, engine, count: int) -> None:
    """A customer's mail after the automatic ones: its acknowledgement and the agent's
    notice are the only mail queued and the only mail sent (the pipeline queues in the
    transaction that stores each entry, so ``count`` entries settled means all queued)."""
    barrier = mail("Barrier", sender="Dave <dave@client.test>")
    await asyncio.to_thread(send, daemon.setup.smtp_port, barrier, sender="dave@client.test")
    await settled(engine, count)
    code = next(t["code"] for t in await tickets(daemon) if t["subject"] == "Barrier")
    async with engine.connect() as connection:
        queued = (await connection.execute(select(OutboxItem.kind, Ticket.code).join(Ticket))).all()
    assert sorted(queued) == [("acknowledgement", code), ("agent_notification", code)]
    sent = await smarthost.wait_for(2)
    assert sorted(m.rcpt_tos for m in sent) == [("alice@example.test",), ("dave@client.test",)]


async def test_billing_route_queue_priority_tags_locale_and_agent(daemon, smarthost):
    raw = mail("Tagihan ganda", to="billing@example.test")
    await asyncio.to_thread(send, daemon.setup.smtp_port, raw, ["billing@example.test"])
    await smarthost.wait_for(2)
    [listed] = await tickets(daemon)
    assert listed["queue"] == "billing" and listed["priority"] == "high"
    assert listed["tags"] == ["billing"]
    [ack] = sent_to(smarthost, "carol@client.test")
    assert "Terima kasih" in ack.message.get_content()
    assert "billing@example.test" in ack.message["From"]
    assert sent_to(smarthost, "budi@example.test")
    assert not sent_to(smarthost, "alice@example.test")


async def test_duplicates_once_and_reused_message_id_kept(daemon, smarthost, engine):
    port = daemon.setup.smtp_port
    original = mail("Same", message_id="<dup@client.test>")
    await asyncio.to_thread(send, port, original)
    await asyncio.to_thread(send, port, original, ["billing@example.test"])  # reply-all copy
    reused = mail("Same", body="Completely different text", message_id="<dup@client.test>")
    await asyncio.to_thread(send, port, reused)
    entries = await settled(engine, 3)
    assert [e.state for e in entries] == ["done", "duplicate", "done"]
    listed = await tickets(daemon)
    assert sum(t["message_count"] for t in listed) == 2


async def test_reply_reopens_pending_and_closed_gets_follow_up(daemon, smarthost, engine):
    port = daemon.setup.smtp_port
    await asyncio.to_thread(send, port, mail("Status test"))
    await settled(engine, 1)
    [listed] = await tickets(daemon)
    code = listed["code"]
    await set_status(engine, code, "Pending")
    await asyncio.to_thread(send, port, mail(f"Re: [{code}] Status test", body="ping"))
    await settled(engine, 2)
    assert (await ticket(daemon, code))["status"] == "Open"
    await set_status(engine, code, "Closed")
    await asyncio.to_thread(send, port, mail(f"Re: [{code}] Status test", body="again"))
    await settled(engine, 3)
    listed = await tickets(daemon)
    assert len(listed) == 2
    assert listed[0]["code"] != code and listed[0]["status"] == "New"


async def set_status(engine, code: str, status: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(Ticket).where(Ticket.code == code).values(status=status))


async def test_smarthost_down_acks_wait_and_go_out_later(setup, smarthost, engine):
    setup.sections["outbound"] = {
        "smarthost": f"127.0.0.1:{smarthost.port}",
        "retry_base_seconds": 1.0,
    }
    setup.sections["api"] = {"tokens": ["test-token"]}
    await smarthost.stop()
    process = MailgateProcess(setup)
    await process.start()
    try:
        await asyncio.to_thread(send, setup.smtp_port, mail("While down"))
        await settled(engine, 1)
        await wait_until(_delivery_failed(engine), "a failed delivery attempt")
        await smarthost.start()
        await smarthost.wait_for(1, timeout=30)
        [ack] = smarthost.messages
        assert ack.message["Subject"].endswith("While down")
    finally:
        assert await process.stop() == 0


def _delivery_failed(engine):
    async def check() -> bool:
        async with engine.connect() as connection:
            query = select(OutboxItem.id).where(
                OutboxItem.attempts > 0, OutboxItem.sent_at.is_(None)
            )
            return await connection.scalar(query) is not None

    return check


EXPECTED_TEXT = {
    "iso2022jp.eml": ("請求書の金額", "請求書の金額が間違っています。"),
    "koi8r.eml": ("Заказ", "Заказ 42 не пришёл."),
    "gb2312.eml": ("发票问题", "发票有问题"),
    "windows1252_as_latin1.eml": ("Price question", "The \u201cbasic\u201d plan costs \u20ac50"),
    "utf8_headers.eml": ("Grüße aus München \u2013 Bestellung ✓", "Lieferung für Bestellung 77"),
}


async def test_odd_mail_corpus_never_crashes_or_loses_a_message(daemon, engine, corpus):
    """Every file in tests/data through SMTP: each ends as a ticket message or in
    quarantine, the daemon stays healthy, and text arrives without mojibake."""
    from pathlib import Path

    names = sorted(p.name for p in (Path(__file__).parent / "data").glob("*.eml"))
    for name in names:
        await asyncio.to_thread(send, daemon.setup.smtp_port, corpus(name))
    entries = await settled(engine, len(names))
    assert len(entries) == len(names)
    assert {e.state for e in entries} <= {"done", "duplicate", "quarantined"}
    assert daemon.healthy()
    by_subject = {}
    for listed in await tickets(daemon, limit=500):
        shown = await ticket(daemon, listed["code"])
        by_subject[listed["subject"]] = shown["messages"][0]["text"]
    for name, (subject, text) in EXPECTED_TEXT.items():
        assert text in by_subject[subject], name
