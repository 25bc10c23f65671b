"""The daemon as an admin runs it: database outages, SIGTERM, SIGHUP, /healthz."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import func, insert, select

from mailgate.db.migrate import upgrade
from mailgate.db.models import OutboxItem, RateEvent
from tests.support import (
    PG_ADMIN_URL,
    DatabaseLock,
    MailgateProcess,
    daemon_running,
    journal_entries,
    wait_until,
)


def send(port: int, body: str, recipient: str = "support@example.test") -> None:
    raw = f"From: c@client.test\r\nSubject: {body}\r\n\r\n{body}\r\n".encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("c@client.test", [recipient], raw)


def healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


async def test_locked_database_gives_451_and_stores_nothing(mailgate, engine, database_url):
    port = mailgate.setup.smtp_port
    async with DatabaseLock(database_url):
        with pytest.raises(smtplib.SMTPDataError) as error:
            await asyncio.to_thread(send, port, "during-lock")
        assert error.value.smtp_code == 451
        assert error.value.smtp_error.startswith(b"4.3.0")
        await asyncio.sleep(1.0)  # past the database's own timeout: nothing lands late
    await asyncio.to_thread(send, port, "after-lock")
    entries = await journal_entries(engine)
    assert [e.raw.split(b"\r\n")[1] for e in entries] == [b"Subject: after-lock"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgres_gone_gives_451_and_503_then_recovers(setup, engine):

    name = setup.database_url.rsplit("/", 1)[1]
    daemon = MailgateProcess(setup)
    await daemon.start()
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        with pytest.raises(smtplib.SMTPDataError) as error:
            await asyncio.to_thread(send, setup.smtp_port, "while-down")
        assert error.value.smtp_code == 451
        status, body = await asyncio.to_thread(healthz, setup.web_port)
        assert status == 503 and body["status"] == "unavailable"
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    await asyncio.to_thread(send, setup.smtp_port, "after-recovery")
    assert (await asyncio.to_thread(healthz, setup.web_port))[0] == 200
    assert await daemon.stop() == 0
    entries = await journal_entries(engine)
    assert [e.raw.split(b"\r\n")[1] for e in entries] == [b"Subject: after-recovery"]


async def test_healthz_reports_ok(mailgate):
    status, body = await asyncio.to_thread(healthz, mailgate.setup.web_port)
    assert status == 200
    assert body["status"] == "ok" and body["database"] == "ok"


async def test_sigterm_during_a_stream_loses_nothing_that_got_250(mailgate, engine):
    port = mailgate.setup.smtp_port
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        for number in range(10_000):
            if stop.is_set():
                return
            token = f"w{worker}-{number}"
            try:
                send(port, token)
            except (OSError, smtplib.SMTPException):
                return  # refused or cut off: the sender would retry; not our 250
            with lock:
                accepted.append(token)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    await wait_until(_at_least(accepted, 40), "40 messages accepted")
    mailgate.signal(signal.SIGTERM)
    exit_code = await asyncio.wait_for(mailgate.process.wait(), 30)
    stop.set()
    for thread in threads:
        await asyncio.to_thread(thread.join, 30)
    assert exit_code == 0, mailgate.log()
    stored = {
        e.raw.split(b"\r\n")[1].removeprefix(b"Subject: ").decode()
        for e in await journal_entries(engine)
    }
    missing = set(accepted) - stored
    assert not missing, f"{len(missing)} messages got 250 but are not in the journal"
    assert "mailgate stopped" in mailgate.log()


def _at_least(items: list, count: int):
    async def check() -> bool:
        return len(items) >= count

    return check


async def test_sighup_reloads_routes_without_dropping_connections(mailgate, engine):
    setup = mailgate.setup
    with smtplib.SMTP("127.0.0.1", setup.smtp_port, timeout=30) as open_session:
        open_session.ehlo()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await asyncio.to_thread(send, setup.smtp_port, "before", "sales@example.test")
        setup.routes.append({"address": "sales@example.test", "queue": "sales"})
        setup.write()
        mailgate.signal(signal.SIGHUP)
        # The two worker processes reload first, the daemon last: three log lines.
        await wait_until(_logged(mailgate, "config reloaded", 3), "three reloads", seconds=60)
        await asyncio.to_thread(send, setup.smtp_port, "after", "sales@example.test")
        # The session opened before the reload still works, with the new routes.
        refused = open_session.sendmail(
            "c@client.test", ["sales@example.test"], b"Subject: kept\r\n\r\nx\r\n"
        )
        assert refused == {}
    entries = await journal_entries(engine)
    assert [e.recipients for e in entries] == [["sales@example.test"]] * 2
    # The worker process reloaded before the daemon did: the new route's mail becomes
    # tickets, never "no route" in quarantine.
    states = await wait_until(_all_processed(engine, 2), "both entries processed")
    assert states == ["done", "done"], [e.error for e in await journal_entries(engine)]


def _logged(mailgate, line: str, count: int):
    async def check() -> bool:
        return mailgate.log().count(line) >= count

    return check


def _all_processed(engine, count: int):
    async def check():
        states = [entry.state for entry in await journal_entries(engine)]
        waiting = len(states) < count or {"pending", "processing"} & set(states)
        return None if waiting else states

    return check


async def test_worker_processes_that_die_are_started_again(mailgate, engine):
    """The pipeline and delivery run in ``mailgate work`` processes, children of the
    daemon: killed, each is started again, and mail accepted meanwhile still becomes a
    ticket and its acknowledgement is still sent (captured). They work from the daemon's
    config, not the file, which an admin may be halfway through editing."""
    mailgate.setup.config_path.write_text("[smtp\nhalf-edited")
    children = await asyncio.create_subprocess_exec(
        "pgrep", "-P", str(mailgate.process.pid), stdout=asyncio.subprocess.PIPE
    )
    pids = (await children.communicate())[0].split()
    assert len(pids) == 2
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    await asyncio.to_thread(send, mailgate.setup.smtp_port, "while-the-workers-were-down")
    states = await wait_until(_all_processed(engine, 1), "the entry processed", seconds=60)
    assert states == ["done"]
    await wait_until(_captured(engine, 1), "the acknowledgement captured", seconds=60)
    log = mailgate.log()
    assert "pipeline worker process exited" in log and "delivery worker process exited" in log


def _captured(engine, count: int):
    async def check():
        async with engine.connect() as connection:
            query = select(func.count(OutboxItem.id)).where(OutboxItem.state == "captured")
            return await connection.scalar(query) >= count

    return check


async def test_bad_config_on_sighup_keeps_running(mailgate, engine):
    setup = mailgate.setup
    setup.config_path.write_text("[smtp\nbroken")
    mailgate.signal(signal.SIGHUP)
    await wait_until(_logged(mailgate, "reload failed", 1), "the failed reload", seconds=60)
    await asyncio.to_thread(send, setup.smtp_port, "still-running")
    states = await wait_until(_all_processed(engine, 1), "the entry processed")
    assert states == ["done"]


async def test_the_daemon_prunes_expired_rows_at_start(setup, engine):
    """Rate events older than any limit looks back go as soon as a node starts; the
    ones a limit still counts stay."""
    await upgrade(engine)
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.execute(
            insert(RateEvent),
            [{"key": "ack:old@client.test", "at": now - timedelta(days=30)}] * 3
            + [{"key": "ack:new@client.test", "at": now}],
        )

    async def keys() -> list[str]:
        async with engine.connect() as connection:
            return list(await connection.scalars(select(RateEvent.key)))

    async with daemon_running(setup):
        await wait_until(lambda: _only(keys, ["ack:new@client.test"]), "the old rows to go")


async def _only(rows, expected: list) -> bool:
    return await rows() == expected
