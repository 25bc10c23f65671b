"""Fault isolation in the pipeline's batch path: whatever one entry does, or the database
does, the other entries of the batch become tickets and no pass is stopped for good.

Each test journals a batch with one troublesome entry among good mail and runs the
pipeline passes itself (SQLite and PostgreSQL). The faults are real: bytes in the
journal, a row the program cannot read back, a template that fails, and database
triggers that fail an insert or drop the connection.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from mailgate.config import LoadedConfig, Route, Settings, Templates
from mailgate.db.migrate import upgrade
from mailgate.db.models import JournalEntry, Message
from mailgate.db.nodes import new_node_id
from mailgate.db.outage import DatabaseOutage, is_outage, raise_if_outage
from mailgate.db.session import create_engine
from mailgate.pipeline.journal import Arrival, insert_entries
from mailgate.pipeline.worker import MAX_DATABASE_TRIES, PipelineWorker
from mailgate.runtime import RuntimeConfig
from mailgate.work import pipeline_deps
from tests.support import free_port
from tests.test_pipeline import mail

SUPPORT = "support@example.test"
FINAL = ("done", "duplicate", "quarantined")


def make_worker(engine, **settings) -> PipelineWorker:
    runtime = RuntimeConfig(
        LoadedConfig(Settings(routes=[Route(address=SUPPORT)], **settings), None)
    )
    return PipelineWorker(engine, pipeline_deps(runtime), new_node_id(), batch_size=100)


async def journal(engine, raws: list[bytes]) -> list[int]:
    await upgrade(engine)
    arrivals = [
        Arrival("smtp", f"sender{n}@client.test", (SUPPORT,), raw) for n, raw in enumerate(raws)
    ]
    return await insert_entries(engine, arrivals)


async def entries(engine, ids: list[int]) -> list[JournalEntry]:
    async with engine.connect() as connection:
        query = select(JournalEntry.state, JournalEntry.error, JournalEntry.attempts)
        result = await connection.execute(query.where(JournalEntry.id.in_(ids)).order_by("id"))
        return list(result.all())


async def subjects(engine) -> list[str]:
    async with engine.connect() as connection:
        return sorted(await connection.scalars(select(Message.subject)))


async def passes_until_final(worker: PipelineWorker, engine, ids: list[int], most: int) -> int:
    """Run passes until every entry of ``ids`` is final; how many it took."""
    for count in range(1, most + 1):
        await worker.process_pending()
        if all(row.state in FINAL for row in await entries(engine, ids)):
            return count
    raise AssertionError(f"entries not final after {most} passes: {await entries(engine, ids)}")


@pytest.mark.parametrize("blank", [b"", b"\x00", b"\r\n"], ids=["empty", "nul", "crlf"])
async def test_an_empty_entry_first_in_a_batch_is_quarantined_and_the_rest_go_on(engine, blank):
    """A 0-byte entry once stopped every pass (IndexError grouping the batch by size)."""
    ids = await journal(engine, [blank, mail("First"), b"", mail("Second")])
    assert await make_worker(engine).process_pending() == 4
    found = await entries(engine, ids)
    assert [row.state for row in found] == ["quarantined", "done", "quarantined", "done"]
    assert found[0].error == "parse: ParseError: the message is empty"
    assert await subjects(engine) == ["First", "Second"]


async def test_an_entry_that_cannot_be_read_is_quarantined_and_its_batch_goes_on(engine):
    """A row the program cannot read back (its recipients nested past Python's
    recursion limit, as a hand edit might leave them) fails alone, at step load."""
    ids = await journal(engine, [mail("First"), mail("Unreadable"), mail("Third")])
    nested = "[" * 5000 + "]" * 5000
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE journal_entries SET recipients = :nested WHERE id = :id"),
            {"nested": nested, "id": ids[1]},
        )
    assert await make_worker(engine).process_pending() == 3
    found = await entries(engine, ids)
    assert [row.state for row in found] == ["done", "quarantined", "done"]
    assert found[1].error.startswith("load: RecursionError")
    assert await subjects(engine) == ["First", "Third"]


async def test_a_template_failing_for_one_mail_quarantines_that_mail_only(engine, tmp_path):
    """An admin's acknowledgement template that fails for some tickets (a variable
    that does not exist, in a branch): those mails are quarantined with the error."""
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "acknowledgement.txt").write_text(
        "Subject: [{{ ticket.code }}] {{ ticket.subject }}\n\n"
        "{% if 'refund' in ticket.subject %}{{ no_such_value }}{% endif %}Thank you.\n"
    )
    ids = await journal(engine, [mail("First"), mail("A refund please"), mail("Third")])
    worker = make_worker(engine, templates=Templates(directory=str(tmp_path)))
    assert await worker.process_pending() == 3
    found = await entries(engine, ids)
    assert [row.state for row in found] == ["done", "quarantined", "done"]
    assert "'no_such_value' is undefined" in found[1].error
    assert await subjects(engine) == ["First", "Third"]


def trigger(dialect: str, when: str, action: str) -> list[str]:
    """A trigger that runs ``action`` when a message is stored and ``when`` holds (of
    ``NEW``); on PostgreSQL ``action`` is PL/pgSQL, on SQLite the trigger's body."""
    if dialect == "sqlite":
        return [f"CREATE TRIGGER fault BEFORE INSERT ON messages WHEN {when} BEGIN {action}; END"]
    return [
        "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF {when} THEN {action}; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER fault BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION fault()",
    ]


async def install(engine, statements: list[str]) -> None:
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


async def test_a_database_error_that_repeats_for_one_mail_ends_in_quarantine(engine):
    """A constraint that one mail breaks on every try (a race that keeps being lost):
    retried by later passes, quarantined after MAX_DATABASE_TRIES; the rest go on."""
    ids = await journal(engine, [mail("First"), mail("The poison pill"), mail("Third")])
    if engine.dialect.name == "sqlite":
        fail = "SELECT RAISE(ABORT, 'poisoned row')"
    else:
        fail = "RAISE EXCEPTION 'poisoned row' USING ERRCODE = 'unique_violation'"
    await install(engine, trigger(engine.dialect.name, "NEW.subject LIKE '%poison%'", fail))
    worker = make_worker(engine)
    assert await passes_until_final(worker, engine, ids, most=10) == MAX_DATABASE_TRIES
    found = await entries(engine, ids)
    assert [row.state for row in found] == ["done", "quarantined", "done"]
    assert found[1].attempts == MAX_DATABASE_TRIES
    assert "IntegrityError" in found[1].error and "poisoned row" in found[1].error
    assert await subjects(engine) == ["First", "Third"]


@asynccontextmanager
async def outage(database_url: str):
    """A pipeline engine whose database fails the pipeline's writes of new messages
    while the block runs, and lets small writes through: on PostgreSQL storing a
    message drops the connection (the server ends the session), on SQLite the disk
    is full (a page quota a little over the file's size)."""
    engine = create_engine(database_url)
    if engine.dialect.name == "postgresql":
        drop = "PERFORM pg_terminate_backend(pg_backend_pid())"
        await install(engine, trigger("postgresql", "TRUE", drop))
    else:
        event.listen(engine.sync_engine, "connect", page_quota)
    try:
        yield engine
    finally:
        if engine.dialect.name == "postgresql":
            await install(engine, ["DROP TRIGGER fault ON messages"])
        else:
            event.remove(engine.sync_engine, "connect", page_quota)
        await engine.dispose()  # the next connections come without the fault


def page_quota(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA page_count")
    (pages,) = cursor.fetchone()
    cursor.execute(f"PRAGMA max_page_count = {pages + 25}")
    cursor.close()


async def test_a_database_outage_is_never_counted_against_the_mail(engine, database_url):
    """An outage through more passes than MAX_DATABASE_TRIES: every pass ends as an
    outage, no attempt is counted, nothing is quarantined; afterwards all become
    tickets. (Before, each pass counted an attempt against every entry of the batch
    and the good mail was quarantined.)"""
    body = "A long report line, one of many.\r\n" * 10_000  # more than the quota
    ids = await journal(engine, [mail("First", body=body), mail("Second", body=body)])
    async with outage(database_url) as failing:
        worker = make_worker(failing)
        for _ in range(MAX_DATABASE_TRIES + 1):
            with pytest.raises(Exception) as raised:
                await worker.process_pending()
            assert is_outage(raised.value), raised.value
        found = await entries(engine, ids)
        assert all(row.state != "quarantined" and row.attempts == 0 for row in found), found
    assert await worker.process_pending() == 2
    assert [row.state for row in await entries(engine, ids)] == ["done", "done"]


async def test_an_unclassified_error_is_an_outage_only_while_the_database_is_away(engine):
    """What the error does not say, asking the database does: the same error counts
    against the mail while the database answers, and is an outage while it does not."""
    await raise_if_outage(engine, ValueError("a failure of the mail itself"))
    if engine.dialect.name == "sqlite":  # a file where its directory should be
        away = create_async_engine(f"sqlite+aiosqlite:///{engine.url.database}/x.db")
    else:  # a port nobody listens on
        away = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    try:
        with pytest.raises(DatabaseOutage):
            await raise_if_outage(away, ValueError("a failure of the mail itself"))
    finally:
        await away.dispose()
