"""Health that tells the truth: /healthz, the metrics and the systemd watchdog say when
mail is stuck, and a failing work loop says so once, not once per pass."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import smtplib
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from mailgate.config import Settings
from mailgate.db.migrate import upgrade
from mailgate.db.models import JournalEntry, Node, Ticket
from mailgate.db.nodes import NodeHeartbeat
from mailgate.health import assess
from mailgate.loop import WorkLoop
from mailgate.pipeline.journal import Arrival, insert_entries
from tests.support import MailgateProcess, wait_until
from tests.test_daemon import healthz
from tests.test_pipeline import mail


def worker_pid(daemon: MailgateProcess, role: str) -> int:
    """The pid of the daemon's ``mailgate work --role ROLE`` child."""
    assert daemon.process is not None
    parent = daemon.process.pid
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    for pid in children:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if role.encode() in arguments and b"work" in arguments:
            return int(pid)
    raise AssertionError(f"no {role} worker among {children}")


def datagrams(sock: socket.socket) -> list[str]:
    """What the daemon told systemd since the last call."""
    said = []
    while True:
        try:
            said.append(sock.recv(4096).decode())
        except BlockingIOError:
            return said


async def test_a_stuck_pipeline_turns_health_503_and_starves_the_watchdog(setup, engine, tmp_path):
    setup.sections["health"] = {"stall_seconds": 3}
    setup.sections["cluster"] = {"node_timeout_seconds": 2}
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setblocking(False)
    os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"] = str(tmp_path / "notify"), "1000000"
    daemon = MailgateProcess(setup)
    try:
        await daemon.start()
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
    pipeline = worker_pid(daemon, "pipeline")
    try:
        await wait_until(pinged(notify), "a watchdog ping")
        os.kill(pipeline, signal.SIGSTOP)
        with smtplib.SMTP("127.0.0.1", setup.smtp_port) as client:
            client.sendmail("carol@client.test", ["support@example.test"], mail("Stuck?"))

        async def unhealthy():
            status, body = await asyncio.to_thread(healthz, setup.web_port)
            return body if status == 503 else None

        body = await wait_until(unhealthy, "/healthz to answer 503")
        assert body["status"] == "unavailable"
        assert {p["component"] for p in body["problems"]} == {"pipeline"}
        assert body["oldest_waiting_seconds"]["journal"] > 3
        await wait_until(logged(daemon, "not feeding the systemd watchdog"), "the log line")
        datagrams(notify)
        # Four of the watchdog's half intervals: a fed watchdog would have had four pings.
        await asyncio.sleep(2.0)
        assert "WATCHDOG=1" not in datagrams(notify)

        os.kill(pipeline, signal.SIGCONT)
        await wait_until(lambda: ticket_subjects(engine), "the mail to become a ticket")
        assert await ticket_subjects(engine) == ["Stuck?"]
        await wait_until(healthy(setup), "/healthz to answer 200")
        await wait_until(pinged(notify), "the watchdog fed again")
    finally:
        os.kill(pipeline, signal.SIGCONT)
        await daemon.stop()
        notify.close()


async def ticket_subjects(engine) -> list[str]:
    async with engine.connect() as connection:
        return list(await connection.scalars(select(Ticket.subject)))


def pinged(notify: socket.socket):
    async def check() -> bool:
        return any("WATCHDOG=1" in said for said in datagrams(notify))

    return check


def logged(daemon: MailgateProcess, text: str):
    async def check() -> bool:
        return text in daemon.log()

    return check


def healthy(setup):
    async def check() -> bool:
        return (await asyncio.to_thread(healthz, setup.web_port))[0] == 200

    return check


async def test_a_live_worker_that_fails_or_hangs_is_reported_a_silent_one_taken_over(engine):
    """A worker failing pass after pass, or alive but with no pass finished for
    stall_seconds, is a problem; mail waiting with no pipeline left at all is one
    too; a dead worker alone is not (the others take over its claims)."""
    await upgrade(engine)
    settings = Settings(health={"stall_seconds": 60}, cluster={"node_timeout_seconds": 5})
    assert (await assess(engine, settings, [])).ok
    failing, hung, dead = (NodeHeartbeat(engine, "pipeline", 5.0) for _ in range(3))
    for node in (failing, hung, dead):
        await node.join()
    now = datetime.now(UTC)
    failing.loop_state.progress_at = now
    for _ in range(3):
        failing.loop_state.failed(now, "database unavailable: disk I/O error")
    await failing.beat()
    async with engine.begin() as connection:
        hour_ago = now - timedelta(hours=1)
        await connection.execute(
            update(Node).where(Node.id == hung.id).values(progress_at=hour_ago)
        )
        await connection.execute(update(Node).where(Node.id == dead.id).values(beat_at=hour_ago))
    health = await assess(engine, settings, [])
    assert {problem.reason for problem in health.problems} == {
        f"worker {failing.id}: failing pass after pass for 0s",
        f"worker {hung.id}: no pass finished for 3600s",
    }
    assert [p.detail for p in health.problems if failing.id in p.reason] == [
        "database unavailable: disk I/O error"
    ]

    # Mail waiting longer than stall_seconds with no live pipeline making progress.
    [entry] = await insert_entries(engine, [Arrival("smtp", "c@client.test", ("s@x.test",), b"")])
    async with engine.begin() as connection:
        await connection.execute(update(Node).values(beat_at=now - timedelta(hours=1)))
        await connection.execute(
            update(JournalEntry)
            .where(JournalEntry.id == entry)
            .values(received_at=now - timedelta(seconds=61))
        )
    health = await assess(engine, settings, [])
    [problem] = health.problems
    assert problem.component == "pipeline"
    assert problem.reason.startswith("mail has waited 61s and no pipeline worker")


async def test_a_failing_loop_says_so_once_and_once_again_when_it_recovers(caplog):
    results: list[int | Exception] = [RuntimeError("bug A")] * 3 + [RuntimeError("bug B"), 1, 0]
    seen = asyncio.Event()

    async def one_pass() -> int:
        result = results.pop(0)
        if not results:
            seen.set()
        if isinstance(result, Exception):
            raise result
        return result

    loop = WorkLoop("pipeline", one_pass, batch_size=1, poll_seconds=0.01, error_pause=0.0)
    loop_task = asyncio.create_task(loop.run())
    with caplog.at_level(logging.INFO, logger="mailgate.loop"):
        await asyncio.wait_for(seen.wait(), 10)
        loop.stop()
        await loop_task
    said = [record.getMessage() for record in caplog.records]
    assert said == [
        "pipeline: pass failed: RuntimeError('bug A'); retrying",
        "pipeline: pass failed: RuntimeError('bug B'); retrying",
        "pipeline: working again",
    ]
    assert (loop.state.failures, loop.state.failures_total) == (0, 4)
