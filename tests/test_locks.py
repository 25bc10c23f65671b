"""What ``db.locks.hold`` guards: while one transaction counts or assigns, another one
on its own connection cannot, until the first commits.

The second transaction is impatient (SQLite without a busy timeout, PostgreSQL with a
short ``lock_timeout``), so "it has to wait" shows as an error at once rather than
as a wait the test would have to time.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mailgate.config import Route, Tickets
from mailgate.db.migrate import upgrade
from mailgate.db.models import Ticket
from mailgate.db.session import create_engine, sessions
from mailgate.outbox.ratelimit import ack_key, notify_key, take
from mailgate.pipeline.route import Assigner

AGENTS = ["alice@example.test", "bob@example.test"]
ROUND_ROBIN = Route(address="support@example.test", assign="round_robin", agents=AGENTS)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
async def database(engine):
    await upgrade(engine)
    return engine


@asynccontextmanager
async def impatient(database_url: str):
    """A transaction on a connection of its own that fails at once on a held lock."""
    engine = create_engine(database_url, lock_wait_seconds=0.0)
    try:
        async with sessions(engine).begin() as session:
            if engine.dialect.name == "postgresql":
                await session.execute(text("SET LOCAL lock_timeout = '50ms'"))
            yield session
    finally:
        await engine.dispose()


def ticket(code: str, assignee: str) -> Ticket:
    return Ticket(
        code=code,
        customer_email="carol@client.test",
        queue="support",
        status="New",
        assignee=assignee,
        route_address="support@example.test",
        created_at=NOW,
        updated_at=NOW,
    )


async def test_an_assigner_reads_only_once_the_one_before_has_committed(database, database_url):
    async with sessions(database).begin() as first:
        assert await Assigner(first, Tickets()).choose(ROUND_ROBIN) == AGENTS[0]
        first.add(ticket("TCK-20261202-AAAA", AGENTS[0]))
        with pytest.raises(DBAPIError):
            async with impatient(database_url) as second:
                await Assigner(second, Tickets()).choose(ROUND_ROBIN)
    async with impatient(database_url) as second:
        assert await Assigner(second, Tickets()).choose(ROUND_ROBIN) == AGENTS[1]


async def test_a_rate_count_waits_for_the_one_before(database, database_url):
    limits = [(ack_key("carol@client.test"), (1, 600))]
    async with sessions(database).begin() as first:
        assert await take(first, limits, NOW) is None
        with pytest.raises(DBAPIError):
            async with impatient(database_url) as second:
                await take(second, limits, NOW)
    async with impatient(database_url) as second:
        assert await take(second, limits, NOW) == limits[0][0]


async def test_one_lock_per_agent_guards_the_agents_ticket_counts(database, database_url):
    """A notification about a ticket is counted with its agent's own key, so holding
    the agent's key holds back a count about any of the agent's tickets."""
    agent = AGENTS[0]
    async with sessions(database).begin() as first:
        assert await take(first, [(notify_key(agent), (10, 600))], NOW) is None
        with pytest.raises(DBAPIError):
            async with impatient(database_url) as second:
                await take(second, [(notify_key(agent, "TCK-20261202-AAAA"), (10, 600))], NOW)
