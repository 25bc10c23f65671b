"""Search finds words only in a message's HTML part, words of addresses and host
names, and a domain's customers, on both databases; mail stored before the index
covered the HTML is found after the upgrade."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select, text

from mailgate.db.migrate import upgrade
from mailgate.db.models import Ticket
from mailgate.db.session import sessions
from mailgate.web.search import matching
from tests.support import MailgateProcess, api_get, wait_until
from tests.test_pipeline import mail, send
from tests.web import WebClient, codes_on, give_password, with_agents

PASSWORD = "correct horse battery"


@pytest.fixture
async def daemon(setup, engine):
    setup.sections["api"] = {"tokens": ["test-token"]}
    with_agents(setup)
    process = MailgateProcess(setup)
    await process.start()
    await give_password(engine, "root@example.test", PASSWORD)
    yield process
    assert await process.stop() == 0


@pytest.fixture
async def root(daemon):
    client = WebClient(daemon.setup.web_port)
    await client.sign_in("root@example.test", PASSWORD)
    yield client
    await client.close()


def alternative(subject: str, plain: str, html: str, sender: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.test"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="client.test")
    message.set_content(plain)
    message.add_alternative(html, subtype="html")
    return message.as_bytes()


def html_only(subject: str, html: str, sender: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.test"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="client.test")
    message.set_content(html, subtype="html")
    return message.as_bytes()


async def delivered(daemon, *raws: bytes) -> list[str]:
    for raw in raws:
        await asyncio.to_thread(send, daemon.setup.smtp_port, raw)

    async def listed():
        found = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
        return [t["code"] for t in reversed(found)] if len(found) == len(raws) else None

    return await wait_until(listed, f"{len(raws)} tickets")


async def test_words_of_the_html_part_addresses_hosts_and_domains(daemon, root):
    both, only, nordic, sub, plain = await delivered(
        daemon,
        alternative(
            "Heater",
            "Please read the HTML version of this mail.",
            "<p>The <b>kerosene</b> heater smells.</p>",
            "Dewi <dewi@nordic.test>",
        ),
        html_only("Lamp", "<div>The <i>marmalade</i> lamp flickers.</div>", "eko@client.test"),
        mail(
            "Fjord",
            body="See www.fjordline.test/help or ask ops@harbour.test",
            sender="x@nordic.test",
        ),
        mail("Sub", sender="Fajar <fajar@mail.nordic.test>"),
        mail("Other", sender="Gita <gita@nordicx.test>"),
    )

    async def found(query: str) -> list[str]:
        status, page, _ = await root.get(f"/tickets?q={query}&sort=created&order=asc")
        assert status == 200
        return codes_on(page)

    assert await found("kerosene") == [both]  # only in the HTML alternative
    assert await found("KEROS") == [both]
    assert await found("heater kerosene") == [both]
    assert await found("marmalade") == [only]
    assert await found("fjordline") == [nordic]  # a host name's words
    assert await found("harbour") == [nordic]  # an address's words
    assert await found("nordic.test") == [both, nordic, sub]
    assert await found("%40nordic.test") == [both, nordic, sub]
    assert await found("mail.nordic.test") == [sub]
    assert await found("nordicx.test") == [plain]
    api = await api_get(daemon.setup, "/api/v1/tickets", q="kerosene")
    assert [t["code"] for t in api["tickets"]] == [both]


async def test_mail_stored_before_the_upgrade_is_found_by_its_html(engine):
    await upgrade(engine, "0011_journal_trusted_path")
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO tickets (code, subject, customer_name, customer_email, queue, "
                "status, priority, assignee, locale, route_address, created_at, updated_at, "
                "spam) VALUES ('TCK-20260101-OLD1', 'Old', '', 'old@client.test', 'support', "
                "'New', 'normal', NULL, 'en', 'support@example.test', :now, :now, false)"
            ),
            {"now": now},
        )
        await connection.execute(
            text(
                "INSERT INTO messages (ticket_id, kind, message_id, content_sha256, from_name, "
                "from_email, to_addrs, cc_addrs, subject, text, quoted_text, html, "
                "agent_authenticated, created_at) SELECT id, 'customer', '<old@client.test>', "
                "'', '', 'old@client.test', '[]', '[]', 'Old', 'See the HTML.', '', "
                "'<p>A <b>tangerine</b> stain.</p>', false, :now FROM tickets"
            ),
            {"now": now},
        )
    await upgrade(engine)
    async with sessions(engine)() as session:
        for query, expected in (
            ("tangerine", ["TCK-20260101-OLD1"]),
            ("tangerine see", ["TCK-20260101-OLD1"]),  # the HTML's and the text's words
            ("orange", []),
        ):
            codes = await session.scalars(
                select(Ticket.code).where(matching(query, engine.dialect))
            )
            assert list(codes) == expected, query
