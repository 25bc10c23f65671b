"""IMAP intake against a real Dovecot (tests/dovecot.py), on SQLite and PostgreSQL.

Most tests drive ``ImapIntake`` directly with an engine, as ``app.py`` does; the last
ones run ``mailgate serve`` with ``[[imap]]`` mailboxes. Waits are bounded: each one
names what it waits for and fails after its deadline.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy import func, select

from mailgate.config import Imap
from mailgate.db.migrate import upgrade
from mailgate.db.models import JournalEntry, Ticket
from mailgate.db.session import create_engine
from mailgate.intake.imap import ImapIntake
from mailgate.intake.imap_source import ImapError, ImapSource
from mailgate.intake.imap_state import Position, load_position, save_position
from mailgate.intake.imap_wire import fetched_bodies, plan_batches, return_path, uid_set
from mailgate.pipeline.journal import Journal
from tests.dovecot import Dovecot, message, missing
from tests.support import MailgateProcess, free_port, journal_entries, need, wait_until

SEEN = "\\Seen"


@pytest.fixture(scope="session")
def dovecot():
    need(not missing(), missing() or "dovecot")
    server = Dovecot().start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def bare_dovecot():
    """A Dovecot that offers neither IDLE nor MOVE after login: polling and COPY."""
    need(not missing(), missing() or "dovecot")
    server = Dovecot(capability="IMAP4rev1 LITERAL+ UIDPLUS").start()
    yield server
    server.remove()


@pytest.fixture
async def db(engine):
    await upgrade(engine)
    return engine


@pytest.fixture
async def journal(db):
    """The journal the intakes commit to, on the test's database."""
    journal = Journal(db, timeout=10.0)
    yield journal
    await journal.close()


def mailbox(server: Dovecot, user: str, security: str = "tls", **keys) -> Imap:
    port = server.imaps_port if security == "tls" else server.imap_port
    keys.setdefault("password", server.users[user])
    keys.setdefault("name", user)
    keys.setdefault("ca_file", server.ca_file)
    return Imap(
        host=server.host,
        port=port,
        security=security,
        username=user,
        deliver_to="support@example.test",
        **keys,
    )


@asynccontextmanager
async def running(*intakes: ImapIntake) -> AsyncIterator[list[asyncio.Task]]:
    tasks = [asyncio.create_task(intake.run()) for intake in intakes]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results), results


def status_says(predicate):
    """An async check for ``wait_until`` over in-memory status."""

    async def check():
        return predicate()

    return check


async def entry_count(engine) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count(JournalEntry.id)))).scalar_one()


async def settled(engine, intake: ImapIntake, count: int, seconds: float = 60.0) -> None:
    """Wait until the journal holds ``count`` entries and the intake has nothing left."""

    async def check() -> bool:
        status = intake.status
        quiet = status.idling or (status.connected and status.backlog == 0)
        return quiet and await entry_count(engine) == count

    await wait_until(check, f"{count} journal entries and a caught-up intake", seconds)


def append(server: Dovecot, user: str, messages: list[bytes], folder: str = "INBOX"):
    return asyncio.to_thread(server.append, user, messages, folder)


async def assert_once_each(engine, sent: list[bytes]) -> None:
    raws = [entry.raw for entry in await journal_entries(engine)]
    assert len(raws) == len(set(raws)) == len(sent)
    assert set(raws) == set(sent)


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_500_then_50_more_after_a_restart_each_once_and_seen(dovecot, db, security, journal):
    user = dovecot.add_user()
    first = [message(n, 2000) for n in range(500)]
    await append(dovecot, user, first)
    config = mailbox(dovecot, user, security, poll_seconds=300)
    started = time.monotonic()
    async with running(intake := ImapIntake(config, journal)):
        await settled(db, intake, 500)
    print(f"500 messages over {security} journaled in {time.monotonic() - started:.2f}s")
    await assert_once_each(db, first)

    second = [message(n, 2000, tag="later") for n in range(50)]
    await append(dovecot, user, second)
    async with running(intake := ImapIntake(config, journal)):
        await settled(db, intake, 550)
    await assert_once_each(db, first + second)
    flags = await asyncio.to_thread(dovecot.flags, user)
    assert len(flags) == 550 and all(SEEN in f for f in flags.values())
    [entry] = [e for e in await journal_entries(db) if e.raw == first[7]]
    assert (entry.source, entry.mail_from) == ("imap", "customer7@client.test")
    assert entry.recipients == ["support@example.test"]
    assert entry.peer.endswith(";UID=8")
    assert (await load_position(db, user)).last_uid == 550


async def test_move_mode_leaves_inbox_empty_and_folder_seen(dovecot, db, journal):
    user = dovecot.add_user()
    sent = [message(n) for n in range(40)]
    await append(dovecot, user, sent)
    config = mailbox(dovecot, user, "starttls", after="move:Processed")
    async with running(intake := ImapIntake(config, journal)):
        await settled(db, intake, 40)
    await assert_once_each(db, sent)
    assert await asyncio.to_thread(dovecot.count, user) == 0
    moved = await asyncio.to_thread(dovecot.flags, user, "Processed")
    assert len(moved) == 40 and all(SEEN in f for f in moved.values())


async def test_delete_mode_removes_journaled_mail(dovecot, db, journal):
    user = dovecot.add_user()
    sent = [message(n) for n in range(30)]
    await append(dovecot, user, sent)
    async with running(intake := ImapIntake(mailbox(dovecot, user, after="delete"), journal)):
        await settled(db, intake, 30)
        await append(dovecot, user, [extra := message(99)])
        await settled(db, intake, 31)
    await assert_once_each(db, [*sent, extra])
    assert await asyncio.to_thread(dovecot.count, user) == 0


async def test_idle_push_is_fetched_long_before_poll_seconds(dovecot, db, journal):
    user = dovecot.add_user()
    async with running(intake := ImapIntake(mailbox(dovecot, user, poll_seconds=300), journal)):
        await wait_until(status_says(lambda: intake.status.idling), "IDLE", 30)
        started = time.monotonic()
        await append(dovecot, user, [pushed := message(1)])
        await wait_until(lambda: entry_count(db), "the pushed message", 10)
        latency = time.monotonic() - started
    print(f"IDLE push to journal: {latency:.2f}s")
    await assert_once_each(db, [pushed])


async def test_without_idle_or_move_it_polls_and_copies(bare_dovecot, db, journal):
    server, user = bare_dovecot, bare_dovecot.add_user()
    await append(server, user, early := [message(n) for n in range(5)])
    config = mailbox(server, user, poll_seconds=0.3, after="move:Archive")
    async with running(intake := ImapIntake(config, journal)):
        await settled(db, intake, 5)
        await append(server, user, late := [message(n, tag="late") for n in range(5)])
        await settled(db, intake, 10)
        assert not intake.status.idling
    await assert_once_each(db, early + late)
    assert await asyncio.to_thread(server.count, user) == 0
    assert await asyncio.to_thread(server.count, user, "Archive") == 10


async def test_reconnects_after_dovecot_restarts(db, journal):
    need(not missing(), missing() or "dovecot")
    server = await asyncio.to_thread(Dovecot().start)
    try:
        user = server.add_user()
        await append(server, user, before := [message(n) for n in range(10)])
        async with running(intake := ImapIntake(mailbox(server, user, poll_seconds=300), journal)):
            await settled(db, intake, 10)
            await asyncio.to_thread(server.stop)
            await wait_until(status_says(lambda: not intake.status.connected), "the drop")
            await asyncio.to_thread(server.start)
            await append(server, user, after := [message(n, tag="after") for n in range(5)])
            await settled(db, intake, 15, seconds=60)
            assert intake.status.last_error
        await assert_once_each(db, before + after)
    finally:
        await asyncio.to_thread(server.remove)


async def test_wrong_password_is_reported_and_other_mailbox_keeps_working(dovecot, db, journal):
    good, bad = dovecot.add_user(), dovecot.add_user()
    wrong = ImapIntake(mailbox(dovecot, bad, password="not-the-password"), journal)
    right = ImapIntake(mailbox(dovecot, good), journal)
    await append(dovecot, bad, [message(0)])
    async with running(wrong, right):
        await append(dovecot, good, sent := [message(n) for n in range(5)])
        await settled(db, right, 5)
        await wait_until(status_says(lambda: wrong.status.last_error), "the login error")
    error = wrong.status.last_error
    assert error.startswith(f"login failed for {bad}: NO") and "AUTHENTICATIONFAILED" in error
    assert not wrong.status.connected and wrong.status.last_error_at
    await assert_once_each(db, sent)


async def test_untrusted_certificate_is_a_clear_tls_error(dovecot, db, journal):
    user = dovecot.add_user()
    intake = ImapIntake(mailbox(dovecot, user, ca_file=""), journal)  # the system CAs only
    async with running(intake):
        await wait_until(status_says(lambda: intake.status.last_error), "the TLS error")
    error = intake.status.last_error
    assert error.startswith(f"TLS handshake with 127.0.0.1:{dovecot.imaps_port} failed:")
    assert "certificate verify failed" in error


async def test_uidvalidity_change_fetches_the_folder_again(dovecot, db, journal):
    user = dovecot.add_user()
    await append(dovecot, user, sent := [message(n) for n in range(5)])
    await save_position(db, user, Position(uidvalidity=1, last_uid=10_000))
    async with running(intake := ImapIntake(mailbox(dovecot, user), journal)):
        await settled(db, intake, 5)
    await assert_once_each(db, sent)
    position = await load_position(db, user)
    assert position.uidvalidity != 1 and position.last_uid == 5


async def test_oversized_message_stays_unread_and_does_not_stall_the_rest(dovecot, db, journal):
    user = dovecot.add_user()
    poison = b"\xff\xfe not a header line\r\n\r\n\x80\x81 binary junk\r\n"
    small = [message(0), poison, message(2)]
    await append(dovecot, user, [small[0], message(1, 60_000), *small[1:]])
    intake = ImapIntake(mailbox(dovecot, user, after="delete"), journal, max_message_bytes=20_000)
    async with running(intake):
        await settled(db, intake, 3)
    await assert_once_each(db, small)  # the unparseable one is journaled like any other
    assert intake.status.left_in_mailbox == [2]
    assert "UID 2" in intake.status.last_error and "over the limit" in intake.status.last_error
    left = await asyncio.to_thread(dovecot.flags, user)
    assert list(left) == [2] and SEEN not in left[2]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_nodes_on_postgresql_journal_each_message_once(dovecot, db, database_url):
    user = dovecot.add_user()
    await append(dovecot, user, sent := [message(n) for n in range(300)])
    other_engine = create_engine(database_url)
    config = mailbox(dovecot, user, poll_seconds=300)
    journals = [Journal(engine, timeout=10.0) for engine in (db, other_engine)]
    nodes = [ImapIntake(config, journal, lease_retry_seconds=0.3) for journal in journals]
    try:
        async with running(*nodes) as tasks:
            holder = await lease_holder(nodes)
            await settled(db, holder, 300)
            assert sum(n.status.connected for n in nodes) == 1
            # The holder's database session dies (a crash, a partition): the other takes over.
            await terminate_lease_sessions(database_url)
            standby = next(n for n in nodes if n is not holder)
            await wait_until(status_says(lambda: standby.status.holds_lease), "takeover")
            await append(dovecot, user, more := [message(n, tag="b") for n in range(20)])
            await settled(db, standby, 320)
            sent += more
            # The new holder stops cleanly: its lease is released at once.
            tasks[nodes.index(standby)].cancel()
            await wait_until(status_says(lambda: holder.status.holds_lease), "handback", 30)
            await append(dovecot, user, more := [message(n, tag="c") for n in range(20)])
            await settled(db, holder, 340)
            sent += more
    finally:
        for journal in journals:
            await journal.close()
        await other_engine.dispose()
    await assert_once_each(db, sent)


async def lease_holder(nodes: list[ImapIntake]) -> ImapIntake:
    await wait_until(status_says(lambda: any(n.status.holds_lease for n in nodes)), "a lease")
    [holder] = [n for n in nodes if n.status.holds_lease]
    return holder


async def terminate_lease_sessions(database_url: str) -> None:
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        killed = await connection.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await connection.close()
    assert killed == 1


async def test_mailgate_serve_turns_imap_mail_into_tickets_and_smtp_survives_a_bad_box(
    dovecot, setup, db
):
    good, bad = dovecot.add_user(), dovecot.add_user()
    setup.imap = [
        mailbox(dovecot, good, poll_seconds=300).model_dump(exclude_defaults=True),
        mailbox(dovecot, bad, password="wrong").model_dump(exclude_defaults=True),
    ]
    await append(dovecot, good, sent := [message(n) for n in range(20)])
    daemon = MailgateProcess(setup)
    await daemon.start()
    try:
        await wait_until(lambda: _count_from(db, "imap", 20), "20 IMAP messages", 60)
        customers = {f"customer{n}@client.test" for n in range(20)}
        await wait_until(lambda: _has_tickets_of(db, customers), "their 20 tickets", 60)
        raw = b"From: c@client.test\r\nSubject: by smtp\r\n\r\nhello\r\n"
        await asyncio.to_thread(_smtp_send, setup.smtp_port, raw)
        await wait_until(lambda: _count_from(db, "smtp", 1), "the SMTP message", 30)
        await wait_until(status_says(lambda: "login failed for" in daemon.log()), "log")
        assert await asyncio.to_thread(daemon.healthy)
    finally:
        assert await daemon.stop() == 0
    imap_raws = {e.raw for e in await journal_entries(db) if e.source == "imap"}
    assert imap_raws == set(sent)


async def test_mailgate_serve_500_tickets_then_50_more_after_a_restart(
    dovecot, setup, db, database_url
):
    security = "tls" if database_url.startswith("sqlite") else "starttls"  # both, once each
    user = dovecot.add_user()
    setup.imap = [mailbox(dovecot, user, security, poll_seconds=300).model_dump()]
    await append(dovecot, user, first := [message(n, 2000) for n in range(500)])
    await serve_until_tickets(setup, db, 500)
    await append(dovecot, user, second := [message(n, 2000, "later") for n in range(50)])
    await serve_until_tickets(setup, db, 550)
    await assert_once_each(db, first + second)
    flags = await asyncio.to_thread(dovecot.flags, user)
    assert len(flags) == 550 and all(SEEN in f for f in flags.values())


async def serve_until_tickets(setup, engine, count: int) -> None:
    """Run ``mailgate serve`` until the database holds ``count`` tickets, then SIGTERM."""
    daemon = MailgateProcess(setup)
    await daemon.start()
    started = time.monotonic()
    try:
        await wait_until(lambda: _ticket_count_is(engine, count), f"{count} tickets", 240)
    finally:
        assert await daemon.stop() == 0
    print(f"{count} tickets after {time.monotonic() - started:.1f}s")


async def _ticket_count_is(engine, count: int) -> bool:
    async with engine.connect() as connection:
        found = (await connection.execute(select(func.count(Ticket.id)))).scalar_one()
    assert found <= count, f"{found} tickets, expected {count}"
    return found == count


async def _has_tickets_of(engine, customers: set[str]) -> bool:
    async with engine.connect() as connection:
        emails = (await connection.execute(select(Ticket.customer_email))).scalars()
        return customers <= set(emails)


async def _count_from(engine, source: str, wanted: int) -> bool:
    return sum(e.source == source for e in await journal_entries(engine)) == wanted


def _smtp_send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("c@client.test", ["support@example.test"], raw)


def test_batches_are_bounded_and_oversized_mail_is_set_aside():
    sizes = {3: 500, 6: 90}  # the large ones; the rest are assumed to be 10 bytes
    batches = plan_batches([1, 2, 3, 4, 5, 6, 7], sizes, 100, 2, max_bytes=95, assumed_size=10)
    assert [(b.fetch, b.too_big, b.last_uid) for b in batches] == [
        ((1, 2), ((3, 500),), 3),
        ((4, 5), (), 5),
        ((6,), (), 6),
        ((7,), (), 7),
    ]
    assert plan_batches([], {}, 100, 2, 95, 10) == []


def test_wire_helpers():
    assert uid_set([9, 1, 2, 3, 7, 10]) == "1:3,7,9:10"
    lines = [b"1 FETCH (BODY[] {3}", bytearray(b"abc"), b" UID 5)", b"2 FETCH (UID 6 FLAGS ())"]
    assert fetched_bodies([*lines, b"Fetch completed."]) == [(5, b"abc")]
    assert return_path(b"Subject: x\r\nReturn-Path: <a@b.test>\r\n\r\nReturn-Path: <c@d>") == (
        "a@b.test"
    )
    assert return_path(b"Return-Path: <>\r\n\r\n") == ""
    assert return_path(b"From: a@b.test\r\n\r\n") == ""


async def test_a_server_that_never_greets_is_told_from_one_that_refuses():
    """A listener that takes the connection and says nothing is a missing greeting; a
    port where nothing listens is a failed connection, with the system's reason."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    quiet_port = server.sockets[0].getsockname()[1]
    closed_port = free_port()
    try:
        for port, expected in (
            (quiet_port, f"no IMAP greeting from 127.0.0.1:{quiet_port}"),
            (closed_port, f"cannot connect to 127.0.0.1:{closed_port}: Connect call failed"),
        ):
            config = Imap(
                name="box",
                host="127.0.0.1",
                port=port,
                security="none",
                username="u",
                deliver_to="support@example.test",
            )
            source = ImapSource(config, timeout=0.5)
            with pytest.raises(ImapError) as raised:
                await source.open()
            await source.close()
            assert str(raised.value).startswith(expected), str(raised.value)
    finally:
        server.close()
        await server.wait_closed()
