"""A ``451`` means not stored: the journal's write is slow, or its link fails mid-write.

On both databases a message that waited behind a slow write gets ``451`` and is never
stored. On PostgreSQL the daemon reaches the database through ``tests.tcpproxy``: a
link that stalls and heals, one that dies (black-holed), and one that dies after
COMMIT was sent, when the outcome cannot be known and the sender's retry must end as
the same single ticket.
"""

from __future__ import annotations

import asyncio
import smtplib

import asyncpg
import pytest
from sqlalchemy import func, select

from mailgate.db.models import Ticket
from tests.support import (
    DatabaseLock,
    MailgateProcess,
    MailgateSetup,
    journal_entries,
    wait_until,
)
from tests.tcpproxy import TcpProxy

postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def message(subject: str) -> bytes:
    return (
        f"From: carol@client.test\r\nTo: support@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@client.test>\r\n\r\nPlease help: {subject}\r\n"
    ).encode()


def send(port: int, raw: bytes) -> int:
    """The SMTP code the daemon answered DATA with."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        try:
            client.sendmail("carol@client.test", ["support@example.test"], raw)
        except smtplib.SMTPDataError as error:
            return error.smtp_code
    return 250


async def send_all(port: int, subjects: list[str]) -> list[int]:
    return await asyncio.gather(*(asyncio.to_thread(send, port, message(s)) for s in subjects))


async def stored_subjects(engine) -> list[str]:
    entries = await journal_entries(engine)
    return [e.raw.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for e in entries]


async def tickets(engine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(select(func.count(Ticket.id)))


async def test_451_after_waiting_behind_a_slow_write_is_never_stored(
    mailgate, engine, database_url
):
    """Each message's write must end by its own deadline, counted from its arrival,
    not from the moment the writer gets to it."""
    port = mailgate.setup.smtp_port
    async with DatabaseLock(database_url):
        first = asyncio.create_task(send_all(port, ["first"]))
        await asyncio.sleep(0.5)  # queued behind the first one's write
        assert await send_all(port, ["queued"]) == [451]
    assert await first == [451]
    assert await send_all(port, ["after"]) == [250]  # the barrier: one writer, in order
    assert await stored_subjects(engine) == ["after"]


@pytest.fixture
async def proxy():
    tcp = TcpProxy("127.0.0.1", 5432)
    await tcp.start()
    yield tcp
    await tcp.stop()


@pytest.fixture
async def daemon(tmp_path, database_url, proxy):
    """``mailgate serve`` whose every database connection goes through ``proxy``."""
    setup = MailgateSetup(tmp_path, database_url.replace(":5432/", f":{proxy.port}/"))
    process = MailgateProcess(setup)
    await process.start()
    yield process
    await process.stop()


@postgresql_only
async def test_451_on_a_stalled_link_stays_unstored_when_the_link_heals(daemon, proxy, engine):
    port = daemon.setup.smtp_port
    assert await send_all(port, ["before"]) == [250]
    proxy.stall()
    lost = [f"stalled-{n}" for n in range(5)]
    assert await send_all(port, lost) == [451] * 5
    proxy.restore()
    # The barrier: the journal's single writer has finished with the stalled ones.
    assert await send_all(port, ["after"]) == [250]
    assert await stored_subjects(engine) == ["before", "after"]

    async def both_tickets() -> bool:
        return await tickets(engine) == 2

    await wait_until(both_tickets, "tickets for the mail before and after", seconds=60)


@postgresql_only
async def test_451_on_a_dead_link_and_the_daemon_recovers(daemon, proxy, engine):
    port = daemon.setup.smtp_port
    assert await send_all(port, ["before"]) == [250]
    proxy.blackhole()
    assert await send_all(port, [f"dead-{n}" for n in range(3)]) == [451] * 3
    proxy.restore()

    async def accepted() -> bool:  # as a sending MTA would, until it gets 250
        return await send_all(port, ["after"]) == [250]

    await wait_until(accepted, "250 after the link came back", seconds=60)
    stored = await stored_subjects(engine)
    assert stored[0] == "before" and set(stored[1:]) == {"after"}, stored
    # The worker processes' connections died with the link: cut them, as the server's
    # keepalive would in time; the mail then becomes tickets.
    proxy.refuse()
    proxy.restore()

    async def processed() -> bool:
        return await tickets(engine) == 2

    await wait_until(processed, "tickets for the mail before and after", seconds=60)


SLOW_COMMIT = """
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON journal_entries
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
"""


@postgresql_only
async def test_a_retry_after_an_unknown_outcome_is_one_ticket(daemon, proxy, engine, database_url):
    """The link dies after COMMIT was sent: the daemon answers 451 not knowing that the
    message is stored; the sender's retry (the same bytes) is the same ticket."""
    port = daemon.setup.smtp_port
    assert await send_all(port, ["before"]) == [250]
    admin = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await admin.execute(SLOW_COMMIT)
        first = asyncio.create_task(send_all(port, ["twice"]))

        async def committing() -> bool:
            query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
            return await admin.fetchval(query + " AND datname = current_database()") == 1

        await wait_until(committing, "COMMIT on its way", interval=0.01)
        proxy.stall()
        assert await first == [451]
        await admin.execute("DROP TRIGGER slow_commit ON journal_entries")  # after the commit
    finally:
        await admin.close()
    assert await stored_subjects(engine) == ["before", "twice"]  # stored after all
    proxy.restore()
    assert await send_all(port, ["twice"]) == [250]  # the sender retries

    async def all_processed() -> list[str] | None:
        states = [entry.state for entry in await journal_entries(engine)]
        return states if len(states) == 3 and not {"pending", "processing"} & set(states) else None

    states = await wait_until(all_processed, "the three entries processed", seconds=60)
    assert states == ["done", "done", "duplicate"]
    assert await tickets(engine) == 2
