"""IMAP ingest benchmark: a throwaway Dovecot, ~2 KB messages, all figures from one run.

(a) a plain aioimaplib client that only fetches (UID FETCH BODY.PEEK[], 50 UIDs each);
(b) mailgate's IMAP intake: fetch, journal commit, \\Seen, batched; its ratio to (a);
(c) flatness: the intake's rate on folders of 1,000 and 20,000 messages, and on 1,000
    new messages arriving in a folder that already holds 20,000 seen ones;
(d) mailbox to tickets through the pipeline.

Run as root on a machine with dovecot-imapd: ``.venv/bin/python bench/imap_ingest.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioimaplib import IMAP4_SSL
from sqlalchemy import func, select, update

from mailgate.config import Imap
from mailgate.db.migrate import upgrade
from mailgate.db.session import create_engine
from mailgate.intake.imap import ImapIntake
from mailgate.intake.imap_source import FETCH_CHUNK
from mailgate.intake.imap_wire import fetched_bodies, search_uids, uid_set
from mailgate.pipeline.journal import Journal
from tests.dovecot import Dovecot, message, missing


def fill(server: Dovecot, count: int, size: int, tag: str, user: str = "") -> str:
    """A mailbox (new unless ``user`` is given) with ``count`` more messages in INBOX."""
    user = user or server.add_user()
    server.drop(user, (message(n, size, tag) for n in range(count)))
    return user


async def plain_fetch(server: Dovecot, user: str) -> tuple[int, float]:
    """Fetch every message with aioimaplib alone: (messages, seconds)."""
    started = time.perf_counter()
    context = ssl.create_default_context(cafile=server.ca_file)
    client = IMAP4_SSL(server.host, server.imaps_port, ssl_context=context)
    await client.wait_hello_from_server()
    await client.login(user, server.users[user])
    await client.select("INBOX")
    uids = search_uids((await client.uid_search("ALL", charset=None)).lines)
    fetched = 0
    for start in range(0, len(uids), FETCH_CHUNK):  # the intake's own command size
        chunk = uid_set(uids[start : start + FETCH_CHUNK])
        fetched += len(fetched_bodies((await client.uid("fetch", chunk, "(BODY.PEEK[])")).lines))
    seconds = time.perf_counter() - started
    await client.logout()
    return fetched, seconds


def mailbox(server: Dovecot, user: str) -> Imap:
    return Imap(
        name=user,
        host=server.host,
        port=server.imaps_port,
        ca_file=server.ca_file,
        username=user,
        password=server.users[user],
        deliver_to="support@example.test",
        poll_seconds=300,
    )


async def intake_run(engine, server: Dovecot, user: str, expected: int) -> float:
    """Run the intake until ``expected`` new messages are journaled and marked; seconds."""
    journal = Journal(engine, timeout=30.0)
    intake = ImapIntake(mailbox(server, user), journal)
    started = time.perf_counter()
    task = asyncio.create_task(intake.run())
    try:
        while not (intake.status.journaled >= expected and intake.status.idling):
            if task.done():
                raise RuntimeError("the intake stopped")
            await asyncio.sleep(0.005)
        return time.perf_counter() - started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()
        if intake.status.last_error:
            print(f"  note: intake reported {intake.status.last_error}")


async def mailbox_to_tickets(engine, server: Dovecot, user: str, count: int, url: str) -> float:
    """Seconds from a full mailbox to ``count`` tickets: the intake here, the pipeline
    and delivery in ``mailgate work`` processes woken by it, as ``mailgate serve`` runs
    them."""
    from mailgate.db.models import JournalEntry, Ticket
    from mailgate.workers import Workers

    config = Path(tempfile.mkdtemp(prefix="mailgate-bench-")) / "mailgate.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[web]\nsecret_key = "bench"\n[log]\nlevel = "warning"\n'
        '[tickets]\nack_rate_limit = "1000000/1m"\n[[routes]]\naddress = "support@example.test"\n'
    )
    async with engine.begin() as connection:  # (a)-(c) journaled mail is not this phase's
        await connection.execute(
            update(JournalEntry).where(JournalEntry.state == "pending").values(state="done")
        )
    workers = Workers(str(config), config.read_text())
    journal = Journal(engine, 30.0, workers.wake_pipeline)
    intake = ImapIntake(mailbox(server, user), journal)
    worker_task = asyncio.create_task(workers.run())
    await asyncio.sleep(2.0)  # the worker processes start (imports) before the clock does
    started = time.perf_counter()
    intake_task = asyncio.create_task(intake.run())
    try:
        while True:  # tickets are rows, not events: poll for them
            if await _count(engine, Ticket.id) >= count:
                return time.perf_counter() - started
            await asyncio.sleep(0.05)
    finally:
        intake_task.cancel()
        await asyncio.gather(intake_task, return_exceptions=True)
        await workers.stop(15.0)
        await worker_task
        await journal.close()
        shutil.rmtree(config.parent, ignore_errors=True)


async def _count(engine, column) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count(column)))).scalar_one()


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.0f} messages/s  ({count} in {seconds:.2f}s)"


async def run(server: Dovecot, args: argparse.Namespace) -> None:
    engine = create_engine(args.database)
    await upgrade(engine)
    try:
        await fetch_versus_intake(engine, server, args)
        await flatness(engine, server, args)
        e2e_user = fill(server, args.messages, args.size, "e2e")
        e2e = await mailbox_to_tickets(engine, server, e2e_user, args.messages, args.database)
        print(f"(d) mailbox to tickets         {rate(args.messages, e2e)}")
    finally:
        await engine.dispose()


async def fetch_versus_intake(engine, server: Dovecot, args: argparse.Namespace) -> None:
    """(a) and (b) on the same fresh mailbox, ``rounds`` times; the medians (and the
    median of the per-round ratios) damp the noise of a shared machine."""
    plain, intake = [], []
    for _ in range(args.rounds):
        user = fill(server, args.messages, args.size, "main")
        await plain_fetch(server, user)  # warm Dovecot's index and the page cache
        fetched, seconds = await plain_fetch(server, user)
        assert fetched == args.messages, fetched
        plain.append(seconds)
        intake.append(await intake_run(engine, server, user, args.messages))
    ratio = statistics.median(p / i for p, i in zip(plain, intake, strict=True))
    print(f"(a) plain aioimaplib fetch     {rate(args.messages, statistics.median(plain))}")
    print(f"(b) mailgate IMAP intake       {rate(args.messages, statistics.median(intake))}")
    print(f"    intake / plain fetch: {ratio:.2f} (median of {args.rounds} paired rounds)")


async def flatness(engine, server: Dovecot, args: argparse.Namespace) -> None:
    small = []
    for _ in range(args.rounds):
        user = fill(server, args.small, args.size, "small")
        small.append(await intake_run(engine, server, user, args.small))
    small_seconds = statistics.median(small)
    print(f"(c) folder of {args.small:>6,}          {rate(args.small, small_seconds)}")
    large = fill(server, args.large, args.size, "large")
    large_seconds = await intake_run(engine, server, large, args.large)
    print(f"(c) folder of {args.large:>6,}          {rate(args.large, large_seconds)}")
    fill(server, args.small, args.size, "late", user=large)
    late_seconds = await intake_run(engine, server, large, args.small)
    print(f"(c) {args.small:,} new beside {args.large:,} seen {rate(args.small, late_seconds)}")
    per_small, per_large = small_seconds / args.small, large_seconds / args.large
    print(f"    cost per message, {args.large:,} vs {args.small:,}: {per_large / per_small:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", help="an empty database URL (default: fresh SQLite)")
    args = parser.parse_args()
    if missing():
        print(f"cannot run: {missing()}", file=sys.stderr)
        return 1
    workdir = tempfile.mkdtemp(prefix="mailgate-bench-")
    args.database = args.database or f"sqlite+aiosqlite:///{workdir}/bench.db"
    print(f"{os.cpu_count()} cores; {args.size}-byte messages; database {args.database}")
    server = Dovecot().start()
    try:
        asyncio.run(run(server, args))
    finally:
        server.remove()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
