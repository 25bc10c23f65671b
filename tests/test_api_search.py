"""The API's ``q=`` is the inbox's search: the same tickets for a word only in a
message's body, a word prefix, a ticket code, a customer's address and a domain, and
nothing else; on both databases the search starts from the full-text index."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from mailgate.config import parse_config
from mailgate.db.migrate import upgrade
from mailgate.db.models import Message, Ticket
from mailgate.web.api import DEFAULT_LIMIT, listed_tickets
from mailgate.web.auth import AgentSession
from mailgate.web.listing import Filters, ticket_query
from tests.support import MailgateProcess, api_get
from tests.test_pipeline import mail, send, settled
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


async def test_api_q_finds_what_the_inbox_search_finds(daemon, engine, root):
    mails = [
        mail("Heater", body="The kerosene heater smells.", sender="Dewi <dewi@nordic.test>"),
        mail("Printer jammed", body="The paper tray is stuck.", sender="eko@client.test"),
        mail("Lamp", body="It flickers.", sender="Fajar <fajar@mail.nordic.test>"),
        mail("Other", body="Nothing to see.", sender="Gita <gita@nordicx.test>"),
    ]
    for raw in mails:
        await asyncio.to_thread(send, daemon.setup.smtp_port, raw)
    await settled(engine, len(mails))
    listed = await api_get(daemon.setup, "/api/v1/tickets")
    heater, printer, lamp, other = [t["code"] for t in reversed(listed["tickets"])]

    async def found(query: str) -> list[str]:
        """The codes both searches list, oldest first; they must agree."""
        status, page, _ = await root.get(
            "/tickets", params={"q": query, "sort": "created", "order": "asc"}
        )
        assert status == 200
        api = await api_get(daemon.setup, "/api/v1/tickets", q=query)
        from_api = [t["code"] for t in reversed(api["tickets"])]
        assert from_api == codes_on(page), query
        return from_api

    assert await found("kerosene") == [heater]  # a word only in the body
    assert await found("KEROS") == [heater]  # a word prefix, any case
    assert await found("print stuck") == [printer]  # every word, in subject or text
    assert await found(printer.lower()) == [printer]  # a ticket code
    assert await found("DEWI@nordic.test") == [heater]  # a customer's address
    assert await found("nordic.test") == [heater, lamp]  # a domain, subdomains included
    assert await found("@mail.nordic.test") == [lamp]
    assert await found("nordicx.test") == [other]
    # nothing else: no part of a word but its start, no word that is nowhere
    assert await found("erosene") == []
    assert await found("kerosene lamp") == []
    assert await found("nothing-like-this") == []


CONFIG = """
[database]
url = "sqlite+aiosqlite:///unused.db"
[[routes]]
address = "support@example.test"
queue = "support"
"""
FILLER = " ".join(f"toner{n % 97} paper{n % 89} tray{n % 83}" for n in range(20))
INDEX = {"postgresql": "ix_messages_search_vector", "sqlite": "messages_fts VIRTUAL TABLE INDEX"}


async def test_both_searches_start_from_the_full_text_index(engine):
    """The plans of the inbox's page and the API's page for a word in 1 of 3,000
    messages: each reads the matches from the full-text index (bench/web.py shows
    the plans at 100,000 tickets)."""
    await upgrade(engine)
    now = datetime.now(UTC)
    tickets = [
        {
            "code": f"TCK-20260101-{number:04X}", "subject": f"Question {number}",
            "customer_email": f"c{number}@client.test", "queue": "support", "status": "New",
            "route_address": "support@example.test", "created_at": now, "updated_at": now,
        }
        for number in range(1, 3001)
    ]  # fmt: skip
    messages = [
        {
            "ticket_id": number, "kind": "customer", "message_id": f"<m{number}@client.test>",
            "subject": f"Question {number}", "created_at": now,
            "text": f"{'kerosene' if number == 1234 else 'printer'} {number} {FILLER}",
        }
        for number in range(1, 3001)
    ]  # fmt: skip
    async with engine.begin() as connection:
        await connection.execute(insert(Ticket), tickets)
        await connection.execute(insert(Message), messages)
    dialect = engine.dialect
    postgres = dialect.name == "postgresql"
    async with engine.connect() as connection:
        # VACUUM moves the GIN index's pending entries into the index proper
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.exec_driver_sql("VACUUM ANALYZE" if postgres else "ANALYZE")
    settings = parse_config(CONFIG, "test")
    admin = AgentSession("root@example.test", "Root", True, frozenset(), ZoneInfo("UTC"))
    filters = Filters.from_query({"q": "kerosene"})
    queries = {
        "inbox": ticket_query(filters, admin, settings.tickets, dialect, now).limit(50),
        "api": listed_tickets({"q": "kerosene"}, settings, now, dialect).limit(DEFAULT_LIMIT),
    }
    async with engine.connect() as connection:
        explain = "EXPLAIN" if postgres else "EXPLAIN QUERY PLAN"
        for name, query in queries.items():
            sql = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            plan = "\n".join(
                str(row[-1]) for row in await connection.exec_driver_sql(f"{explain} {sql}")
            )
            assert INDEX[dialect.name] in plan, (name, plan)
            codes = (await connection.execute(query)).all()
            assert [row.code for row in codes] == ["TCK-20260101-04D2"], name
