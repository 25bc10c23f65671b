"""A merged ticket's portal link: its own thread read-only, nothing of the ticket it
joined when that is another customer's, and no reply through it.

A real daemon fed by SMTP; the merge made by an agent on the web; the portal driven
over plain HTTP like a browser. The ticket's customer and its first mail are its own:
Carol opens A, Dave opens B, and A is merged into B.
"""

from __future__ import annotations

import asyncio
import html

import pytest
from sqlalchemy import select

from mailgate.db.models import Message, OutboxItem, Ticket
from mailgate.db.session import sessions
from mailgate.signing import Signer
from tests.support import MailgateProcess, journal_entries, wait_until
from tests.test_pipeline import mail, send
from tests.test_web_agent import deliver
from tests.web import CSRF_INPUT, WebClient, give_password

PASSWORD = "correct horse battery"
SIGNER = Signer(b"test-secret-key")
CAROL = "Carol Customer <carol@client.test>"
DAVE = "Dave Other <dave@other.test>"
DAVES_SECRET = "Account 5551234 was charged twice."


@pytest.fixture
async def daemon(setup, smarthost, engine):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice"}]
    process = MailgateProcess(setup)
    await process.start()
    await give_password(engine, "alice@example.test", PASSWORD)
    yield process
    assert await process.stop() == 0


@pytest.fixture
async def alice(daemon):
    client = WebClient(daemon.setup.web_port)
    await client.sign_in("alice@example.test", PASSWORD)
    yield client
    await client.close()


def link(code: str) -> str:
    return f"/t/{code}?k={SIGNER.portal_token(code)}"


async def merge(alice: WebClient, source: str, target: str) -> None:
    page = f"/tickets/{source}"
    form = {"target": target, "confirmed": "1"}
    status, body, _ = await alice.post(f"{page}/merge", form, csrf_from=page)
    assert status == 303, body[:300]


async def thread_of(engine, code: str) -> list[Message]:
    async with sessions(engine)() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
        found = await session.scalars(
            select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
        )
        return list(found)


async def test_a_merged_link_shows_only_its_own_ticket_and_takes_no_reply(
    daemon, engine, client, alice
):
    a, b = await deliver(
        daemon,
        engine,
        (
            mail("Printer on fire", body="My printer is on fire.", sender=CAROL),
            "support@example.test",
        ),
        (mail("Invoice 4411 is wrong", body=DAVES_SECRET, sender=DAVE), "support@example.test"),
    )
    csrf = html.unescape(CSRF_INPUT.search((await client.get(link(a)))[1]).group(1))
    await merge(alice, a, b)

    status, page, _ = await client.get(link(a))
    assert status == 200
    assert a in page and "Printer on fire" in page and "My printer is on fire." in page
    assert "merged with another one" in page and 'name="text"' not in page
    for other in (b, "Invoice 4411", DAVES_SECRET, "dave@other.test", "Dave Other"):
        assert other not in page, other

    # A page opened before the merge still posts its form: refused, the text kept.
    journal = len(await journal_entries(engine))
    form = {"csrf": csrf, "text": "Carol writes into the wrong ticket"}
    status, page, _ = await client.post(link(a), form, csrf_from=None)
    assert status == 409 and "Your reply was not sent" in page
    assert "Carol writes into the wrong ticket</textarea>" in page and DAVES_SECRET not in page
    assert len(await journal_entries(engine)) == journal

    # Carol answers by mail instead, to A's reply address: it joins B as hers, and
    # nothing of B is mailed to her. Once it is on B, B has nothing else new.
    reply_to = SIGNER.reply_address("support@example.test", a)
    answer = mail(f"Re: [{a}] Printer on fire", body="Barrier: still burning.", sender=CAROL)
    await asyncio.to_thread(send, daemon.setup.smtp_port, answer, [reply_to])

    async def answered():
        messages = await thread_of(engine, b)
        return messages if len(messages) == 3 else None

    messages = await wait_until(answered, "Carol's mail reply on B")
    assert [(m.from_email, m.text.strip()) for m in messages] == [
        ("carol@client.test", "My printer is on fire."),
        ("dave@other.test", DAVES_SECRET),
        ("carol@client.test", "Barrier: still burning."),
    ]
    async with sessions(engine)() as session:
        to_carol = [
            item.kind
            for item in await session.scalars(select(OutboxItem))
            if "carol@client.test" in item.recipients
        ]
    assert to_carol == ["acknowledgement"]


async def test_a_link_merged_into_the_same_customers_ticket_leads_there(
    daemon, engine, client, alice
):
    a, b = await deliver(
        daemon,
        engine,
        (mail("Printer on fire", sender=CAROL), "support@example.test"),
        (mail("Printer still on fire", sender=CAROL), "support@example.test"),
    )
    csrf = html.unescape(CSRF_INPUT.search((await client.get(link(a)))[1]).group(1))
    await merge(alice, a, b)

    status, _, response = await client.get(link(a))
    assert status == 303 and response.headers["Location"] == link(b)
    status, page, _ = await client.get(link(b))
    assert status == 200 and 'name="text"' in page and "merged with another one" not in page

    # A reply from a page opened before the merge joins the ticket that goes on.
    status, _, response = await client.post(link(a), {"csrf": csrf, "text": "Now smoking."}, None)
    assert status == 303 and response.headers["Location"] == link(b) + "&sent=1"

    async def replied():
        messages = await thread_of(engine, b)
        return messages[-1] if "Now smoking." in messages[-1].text else None

    reply = await wait_until(replied, "the reply on B")
    assert reply.from_email == "carol@client.test" and reply.kind == "customer"
