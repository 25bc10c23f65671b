"""The inbox's SLA sort and filters over the stored due times, and the timer's
stored state, on both databases (no daemon: the query and the state are asked
directly)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from mailgate.config import Settings, Sla
from mailgate.db.migrate import upgrade
from mailgate.db.models import Ticket
from mailgate.db.session import sessions
from mailgate.localtime import utc
from mailgate.sla.state import refresh_changed, stale_tickets
from mailgate.web.auth import AgentSession
from mailgate.web.listing import Filters, after_cursor, encode_cursor, ticket_query

NOW = datetime(2026, 7, 25, 20, 0, tzinfo=UTC)  # 03:00 on the 26th in Jakarta
JAKARTA = ZoneInfo("Asia/Jakarta")
ADMIN = AgentSession("root@example.test", "Root", True, frozenset(), JAKARTA)


@pytest.fixture
async def db(engine):
    await upgrade(engine)
    return sessions(engine)


def ticket(code: str, due: datetime | None, status: str = "Open") -> Ticket:
    created = NOW - timedelta(hours=1)
    return Ticket(
        code=code,
        customer_email="carol@client.test",
        queue="support",
        status=status,
        route_address="support@example.test",
        created_at=created,
        updated_at=created,
        sla_due_at=due,
        sla_seen_at=created,
    )


async def listed(db, engine, filters: Filters) -> list[str]:
    """Every code the inbox lists, page after page."""
    codes: list[str] = []
    query = ticket_query(filters, ADMIN, Settings().tickets, engine.dialect, NOW)
    page_query = query
    async with db() as session:
        while True:
            page = list(await session.scalars(page_query.limit(2)))
            codes += [t.code for t in page]
            if len(page) < 2:
                return codes
            page_query = after_cursor(query, filters, encode_cursor(page[-1], filters.sort))


async def test_next_due_first_overdue_and_due_today_in_the_agents_zone(db, engine):
    async with db.begin() as session:
        session.add_all(
            [
                ticket("T-LATE", NOW - timedelta(hours=2)),
                ticket("T-NONE-1", None),
                ticket("T-SOON", NOW + timedelta(hours=1)),  # 04:00 the 26th, Jakarta
                ticket("T-TONIGHT", NOW + timedelta(hours=20)),  # 23:00 the 26th
                ticket("T-TOMORROW", NOW + timedelta(hours=21, minutes=30)),  # 00:30 the 27th
                ticket("T-NONE-2", None),
            ]
        )
    due_order = await listed(db, engine, Filters(sort="due", order="asc"))
    assert due_order == ["T-LATE", "T-SOON", "T-TONIGHT", "T-TOMORROW", "T-NONE-1", "T-NONE-2"]
    latest_first = await listed(db, engine, Filters(sort="due", order="desc"))
    assert latest_first == list(reversed(due_order))
    assert await listed(db, engine, Filters(sla="overdue")) == ["T-LATE"]
    today = await listed(db, engine, Filters(sla="today", sort="due", order="asc"))
    # The 26th began at 17:00 UTC in Jakarta: T-LATE (18:00 UTC) fell due today too.
    assert today == ["T-LATE", "T-SOON", "T-TONIGHT"]


async def test_the_timer_stores_due_times_of_changed_tickets_only(db, engine):
    settings = Settings(sla=[Sla(name="standard", first_response="4h")])
    async with db.begin() as session:
        fresh = ticket("T-NEW", None)
        fresh.sla_seen_at = None  # never worked out
        paused = ticket("T-PENDING", None, status="Pending")
        paused.sla_seen_at = None
        untouched = ticket("T-SEEN", NOW)  # worked out from its updated_at already
        session.add_all([fresh, paused, untouched])
    assert await refresh_changed(engine, settings, NOW) == 2
    assert await refresh_changed(engine, settings, NOW) == 0
    async with db() as session:
        stored = {t.code: t for t in await session.scalars(select(Ticket))}
    created = NOW - timedelta(hours=1)
    assert utc(stored["T-NEW"].sla_due_at) == created + timedelta(hours=4)
    assert stored["T-PENDING"].sla_due_at is None  # its clock is not running
    assert utc(stored["T-SEEN"].sla_due_at) == NOW  # not looked at


async def test_the_timer_finds_stale_tickets_by_an_index(db, engine):
    sql = str(stale_tickets().compile(engine.sync_engine, compile_kwargs={"literal_binds": True}))
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL enable_seqscan = off"))  # empty table
            plan = (await connection.execute(text(f"EXPLAIN {sql}"))).scalars().all()
        else:
            plan = [row[-1] for row in await connection.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
    assert any("ix_tickets_sla_stale" in step for step in plan), plan
