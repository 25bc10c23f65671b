"""The schema the migrations build, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from mailgate.db.migrate import upgrade
from mailgate.db.models import Base, Message, OutboxItem
from mailgate.db.session import sessions
from tests.support import journal_entries

# Full-text search lives beside the models, not in them (migration 0004).
SEARCH_OBJECTS = ("messages_fts", "search_vector")


def _outside_search(difference) -> bool:
    return not any(name in repr(difference) for name in SEARCH_OBJECTS)


async def test_migrations_build_what_the_models_describe(engine):
    await upgrade(engine)
    async with engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
    assert [d for d in differences if _outside_search(d)] == []


async def test_lookups_by_message_id_use_an_index(engine):
    """Dedupe and threading find stored mail by Message-ID without reading the table."""
    await upgrade(engine)
    query = select(Message.id).where(Message.message_id.in_(["<a@x.test>", "<b@x.test>"]))
    sql = str(query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True}))
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL enable_seqscan = off"))  # empty table
            plan = (await connection.execute(text(f"EXPLAIN {sql}"))).scalars().all()
        else:
            plan = [row[-1] for row in await connection.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
    assert any("Index" in step or "INDEX" in step for step in plan), plan


async def test_journal_bytes_survive_the_move_to_their_own_table(engine):
    """Entries journaled before migration 0006 keep their bytes and their state."""
    raw = b"From: c@client.test\r\nSubject: before the upgrade\r\n\r\n\x00\xff\r\n"
    await upgrade(engine, "0005_message_id_index")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO journal_entries (received_at, source, mail_from, recipients, "
                "peer, helo, size, sha256, raw, state, attempts) VALUES (:at, 'smtp', "
                "'c@client.test', :rcpt, '', '', :size, :sha, :raw, 'pending', 0)"
            ),
            {
                "at": datetime.now(UTC),
                "rcpt": '["support@example.test"]',
                "size": len(raw),
                "sha": hashlib.sha256(raw).hexdigest(),
                "raw": raw,
            },
        )
    await upgrade(engine)
    [entry] = await journal_entries(engine)
    assert (entry.raw, entry.state, entry.size) == (raw, "pending", len(raw))


async def test_outbox_bytes_survive_the_move_to_their_own_table(engine):
    """Mail queued before migration 0007 keeps its bytes and goes out as it was."""
    raw = b"From: support@example.test\r\nSubject: queued before\r\n\r\n\xc3\xbc\r\n"
    await upgrade(engine, "0006_journal_raw")
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO outbox (kind, mail_from, recipients, message_id, raw, state, "
                "attempts, next_attempt_at, created_at) VALUES ('acknowledgement', "
                "'support@example.test', :rcpt, '<q@example.test>', :raw, 'queued', 0, "
                ":now, :now)"
            ),
            {"rcpt": '["c@client.test"]', "raw": raw, "now": now},
        )
    await upgrade(engine)
    async with sessions(engine)() as session:
        [item] = await session.scalars(select(OutboxItem))
    assert (item.raw, item.state, item.message_id) == (raw, "queued", "<q@example.test>")
