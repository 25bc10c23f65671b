"""A customer's history: on the ticket page, on the customer page and in the API.

Against a running daemon fed over SMTP, on SQLite and PostgreSQL. Carol writes three
times (twice to support, once to billing), Dave once; each agent sees exactly the
customer's tickets of their own queues, newest first, and never another customer's.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import text

from mailgate.db.migrate import upgrade
from mailgate.db.session import is_postgres, sessions
from mailgate.web.auth import AgentSession
from mailgate.web.customer_history import tickets_of
from mailgate.web.formats import UTC_ZONE
from tests.support import MailgateProcess, api_call, api_get
from tests.test_pipeline import mail, send, settled
from tests.web import WebClient, codes_on, give_password, with_agents

PASSWORD = "correct horse battery"
CAROL = "Carol Customer <carol@client.test>"
DAVE = "Dave Other <dave@client.test>"
SIDEBAR = re.compile(r'<section class="card customer-history".*?</section>', re.DOTALL)


@pytest.fixture
async def daemon(setup, smarthost, engine):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    with_agents(setup)
    process = MailgateProcess(setup)
    await process.start()
    for agent in ("alice", "root"):
        await give_password(engine, f"{agent}@example.test", PASSWORD)
    yield process
    assert await process.stop() == 0


@pytest.fixture
async def desk(daemon, engine):
    """The codes of the tickets, by name: carol1, dave, carol2 (billing), carol3."""
    mails = [
        ("carol1", CAROL, "Printer jammed", "support"),
        ("dave", DAVE, "Dave's own problem", "support"),
        ("carol2", CAROL, "Invoice twice", "billing"),
        ("carol3", CAROL, "Printer again", "support"),
    ]
    codes = {}
    for count, (name, sender, subject, queue) in enumerate(mails, 1):
        raw = mail(subject, sender=sender, to=f"{queue}@example.test")
        address = sender.split("<")[1].rstrip(">")
        await asyncio.to_thread(
            send, daemon.setup.smtp_port, raw, [f"{queue}@example.test"], address
        )
        await settled(engine, count)  # one at a time: each is newer than the last
        [found] = (await api_get(daemon.setup, "/api/v1/tickets", limit=1))["tickets"]
        codes[name] = found["code"]
    return codes


@pytest.fixture
async def signed_in(daemon):
    clients = []

    async def sign_in(name: str) -> WebClient:
        client = WebClient(daemon.setup.web_port)
        clients.append(client)
        await client.sign_in(f"{name}@example.test", PASSWORD)
        return client

    yield sign_in
    for client in clients:
        await client.close()


def sidebar(page: str) -> list[str]:
    """The codes the ticket page lists as the customer's other tickets."""
    [section] = SIDEBAR.findall(page)
    return codes_on(section)


async def test_ticket_page_lists_the_customers_other_tickets(desk, signed_in):
    alice, root = await signed_in("alice"), await signed_in("root")
    _, page, _ = await alice.get(f"/tickets/{desk['carol3']}")
    assert sidebar(page) == [desk["carol1"]]  # not billing's, not Dave's, not itself
    assert 'href="/customers/carol@client.test"' in page
    _, page, _ = await root.get(f"/tickets/{desk['carol3']}")
    assert sidebar(page) == [desk["carol2"], desk["carol1"]]  # newest first
    assert "Invoice twice" in SIDEBAR.findall(page)[0]
    _, page, _ = await root.get(f"/tickets/{desk['dave']}")
    assert sidebar(page) == [] and "None." in SIDEBAR.findall(page)[0]


async def test_customer_page_shows_who_they_are_and_their_tickets(daemon, desk, signed_in):
    alice, root = await signed_in("alice"), await signed_in("root")
    _, inbox, _ = await alice.get("/tickets")
    assert 'href="/customers/carol@client.test"' in inbox
    assert 'href="/customers/dave@client.test"' in inbox

    status, page, _ = await root.get("/customers/Carol%40Client.test")  # any case, encoded
    assert status == 200
    assert "<h1>Carol Customer</h1>" in page and "First contact" in page
    assert codes_on(page) == [desk["carol3"], desk["carol2"], desk["carol1"]]
    assert '<dd data-category="new">3</dd>' in page
    _, page, _ = await alice.get("/customers/carol@client.test")
    assert codes_on(page) == [desk["carol3"], desk["carol1"]]  # her queue's only
    assert '<dd data-category="new">2</dd>' in page

    _, page, _ = await root.get("/customers/carol@client.test?limit=2")
    assert codes_on(page) == [desk["carol3"], desk["carol2"]]
    older = re.search(r'href="(\?cursor=[^"]+)" rel="next"', page).group(1)
    _, page, _ = await root.get("/customers/carol@client.test" + older.replace("&amp;", "&"))
    assert codes_on(page) == [desk["carol1"]] and 'rel="next"' not in page
    status, _, _ = await root.get("/customers/carol@client.test?cursor=bogus")
    assert status == 400


async def test_unknown_or_unseen_customer_is_a_404_page(daemon, desk, signed_in):
    alice = await signed_in("alice")
    for address in ("nobody@client.test", "mallory%2Bx@client.test"):
        status, page, _ = await alice.get(f"/customers/{address}")
        assert status == 404 and "Customer not found" in page and 'href="/tickets"' in page
    stranger = WebClient(daemon.setup.web_port)
    try:
        status, _, response = await stranger.get("/customers/carol@client.test")
        assert status == 303 and response.headers["Location"].startswith("/login")
    finally:
        await stranger.close()


async def test_api_customer(daemon, desk):
    setup = daemon.setup
    body = await api_get(setup, "/api/v1/customers/CAROL@client.test")
    assert (body["email"], body["name"], body["ticket_count"]) == (
        "carol@client.test", "Carol Customer", 3
    )  # fmt: skip
    assert body["counts"] == {"new": 3, "open": 0, "pending": 0, "solved": 0, "closed": 0}
    assert [t["code"] for t in body["tickets"]] == [desk["carol3"], desk["carol2"], desk["carol1"]]
    assert body["first_contact_at"] and body["next_cursor"] is None
    first = await api_get(setup, "/api/v1/customers/carol@client.test", limit=2)
    rest = await api_get(setup, "/api/v1/customers/carol@client.test", cursor=first["next_cursor"])
    assert [t["code"] for t in first["tickets"] + rest["tickets"]] == [
        desk["carol3"], desk["carol2"], desk["carol1"]
    ]  # fmt: skip
    status, body = await api_call(setup, "/api/v1/customers/nobody@client.test")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, _ = await api_call(setup, "/api/v1/customers/carol@client.test", token=None)
    assert status == 401


async def test_the_history_reads_the_customer_index(engine):
    """The customer's tickets are an index range, not a scan of all the tickets."""
    await upgrade(engine)
    agent = AgentSession("alice@example.test", "", False, frozenset({"support"}), UTC_ZONE)
    query = tickets_of("carol@client.test", agent.visible)
    compiled = query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
    async with sessions(engine)() as session:
        if is_postgres(engine):
            await session.execute(text("SET enable_seqscan = off"))  # as with many tickets
            rows = await session.execute(text(f"EXPLAIN {compiled}"))
        else:
            rows = await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
        plan = " ".join(str(row[-1]) for row in rows)
    assert "ix_tickets_customer_email" in plan, plan
