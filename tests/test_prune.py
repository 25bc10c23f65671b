"""Pruning expired rows: only what no limit counts and what has expired, by any number
of nodes at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel
from sqlalchemy import func, insert, select

from mailgate.config import LoadedConfig, Settings, Tickets
from mailgate.db.migrate import upgrade
from mailgate.db.models import AgentSession, LoginToken, RateEvent, Ticket, WebhookDelivery
from mailgate.db.session import create_engine
from mailgate.prune import (
    CHUNK,
    WEBHOOK_DELIVERIES_KEPT,
    Pruner,
    longest_look_back,
    prune_expired,
)
from mailgate.runtime import RuntimeConfig
from tests.support import wait_until

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SETTINGS = Settings(tickets=Tickets(notify_rate_limit="100/2h"))  # the longest: 2 hours
SECOND = timedelta(seconds=1)


@pytest.fixture
async def database(engine):
    await upgrade(engine)
    return engine


async def add(engine, model, rows: list[dict]) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(model), rows)


async def rate_events(engine, old: int, recent: int, now: datetime = NOW) -> None:
    """``old`` events just past the longest look-back, ``recent`` ones just inside it."""
    edge = now - timedelta(hours=2)
    rows = [{"key": f"ack:c{n}@client.test", "at": edge - SECOND} for n in range(old)]
    rows += [{"key": "notify:alice@example.test", "at": edge + SECOND}] * recent
    await add(engine, RateEvent, rows)


async def count(engine, model) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(select(func.count()).select_from(model))


async def webhook_deliveries(engine) -> None:
    """Delivered and failed ones just past the time they are kept, one just inside
    it, and an old one still queued (a receiver down for long: never pruned)."""
    edge = NOW - WEBHOOK_DELIVERIES_KEPT
    await add(
        engine,
        Ticket,
        [{"id": 1, "code": "TCK-1", "customer_email": "c@client.test", "queue": "support"}
         | {"status": "New", "route_address": "support@example.test"}
         | {"created_at": edge, "updated_at": edge}],
    )  # fmt: skip
    rows = [
        ("delivered-old", "delivered", edge - SECOND),
        ("failed-old", "failed", edge - SECOND),
        ("queued-old", "queued", edge - SECOND),
        ("delivered-recent", "delivered", edge + SECOND),
    ]
    await add(
        engine,
        WebhookDelivery,
        [
            {"delivery_id": key, "webhook": "crm", "event": "ticket.created", "ticket_id": 1}
            | {"state": state, "attempts": 1, "next_attempt_at": at, "created_at": edge}
            for key, state, at in rows
        ],
    )


def test_the_longest_look_back_is_that_of_any_limit():
    assert longest_look_back(Settings()) == timedelta(hours=1)
    assert longest_look_back(SETTINGS) == timedelta(hours=2)
    limits = [
        (section, name)
        for section, value in SETTINGS
        if isinstance(value, BaseModel)
        for name in type(value).model_fields
        if name.endswith("rate_limit")
    ]
    assert len(limits) >= 7  # the seven of today, found
    for section, name in limits:  # each limit counts, whichever is the longest
        longer = Settings.model_validate({section: {name: "1/7d"}})
        assert longest_look_back(longer) == timedelta(days=7), name


async def test_prunes_only_what_no_limit_counts_and_what_has_expired(database):
    await rate_events(database, old=3, recent=2)
    signed_in = {"email": "alice@example.test", "created_at": NOW - timedelta(days=1)}
    await add(
        database,
        AgentSession,
        [
            {"id": "gone", **signed_in, "expires_at": NOW - SECOND},
            {"id": "live", **signed_in, "expires_at": NOW + SECOND},
        ],
    )
    link = {"email": "alice@example.test", "created_at": NOW - timedelta(minutes=20)}
    await add(
        database,
        LoginToken,
        [
            {"id": "gone", **link, "expires_at": NOW - SECOND, "used_at": None},
            {"id": "used", **link, "expires_at": NOW - SECOND, "used_at": NOW - 2 * SECOND},
            {"id": "live", **link, "expires_at": NOW + SECOND, "used_at": None},
        ],
    )

    await webhook_deliveries(database)

    deleted = await prune_expired(database, SETTINGS, NOW)

    assert deleted == {
        "rate_events": 3,
        "agent_sessions": 1,
        "login_tokens": 2,
        "webhook_deliveries": 2,
        "presence": 0,
    }
    async with database.connect() as connection:
        assert set(await connection.scalars(select(RateEvent.key))) == {"notify:alice@example.test"}
        assert list(await connection.scalars(select(AgentSession.id))) == ["live"]
        assert list(await connection.scalars(select(LoginToken.id))) == ["live"]
        kept = await connection.scalars(select(WebhookDelivery.delivery_id).order_by("id"))
        assert list(kept) == ["queued-old", "delivered-recent"]
    assert await prune_expired(database, SETTINGS, NOW) == dict.fromkeys(deleted, 0)


async def test_two_nodes_pruning_at_once_delete_each_row_once(database, database_url):
    old = 3 * CHUNK + 17  # several transactions' worth each
    await rate_events(database, old=old, recent=5)
    other = create_engine(database_url)
    try:
        both = await asyncio.gather(
            prune_expired(database, SETTINGS, NOW), prune_expired(other, SETTINGS, NOW)
        )
    finally:
        await other.dispose()
    assert sum(deleted["rate_events"] for deleted in both) == old
    assert await count(database, RateEvent) == 5


async def test_the_pruner_prunes_every_period_until_stopped(database):
    runtime = RuntimeConfig(LoadedConfig(SETTINGS, None))
    pruner = Pruner(database, runtime, period_seconds=0.05)
    task = asyncio.create_task(pruner.run())
    try:
        for _ in range(2):  # the second batch is old once the first pass is over
            await rate_events(database, old=4, recent=0, now=datetime.now(UTC))
            await wait_until(lambda: is_empty(database), "the old rate events to go")
    finally:
        pruner.stop()
        await task
    assert task.done() and task.exception() is None


async def is_empty(engine) -> bool:
    return await count(engine, RateEvent) == 0
