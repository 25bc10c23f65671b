"""Pipeline benchmark: journal entries to tickets and acknowledgements, nothing else.

N new-ticket mails of ~2 KB are journaled first; then the pipeline worker (parse,
classify, thread, route, apply, outbox) runs over them in this process, timed. The
baseline, from the same run: the stdlib parsing the same mails (``policy.default``,
every header and the body read), which any pipeline must at least do.

    .venv/bin/python bench/pipeline.py [--messages 5000] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import sys
import tempfile
import time
from email.parser import BytesParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from mailgate.config import LoadedConfig, Route, Settings
from mailgate.db.migrate import upgrade
from mailgate.db.models import OutboxItem, Ticket
from mailgate.db.nodes import new_node_id
from mailgate.db.session import create_engine
from mailgate.pipeline.journal import Arrival, insert_entries
from mailgate.pipeline.worker import PipelineWorker
from mailgate.runtime import RuntimeConfig
from mailgate.work import pipeline_deps

ROUTE = "support@example.test"


def new_ticket_mail(number: int, size: int) -> bytes:
    head = (
        f"From: Customer {number} <c{number}@client.test>\r\nTo: {ROUTE}\r\n"
        f"Subject: Question {number}\r\n"
        f"Message-ID: <bench-{number}-{time.time_ns()}@client.test>\r\n"
        "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n\r\n"
    )
    return (head + ("y" * 76 + "\r\n") * max(1, (size - len(head)) // 78)).encode()


def bare_parse_rate(mails: list[bytes]) -> float:
    parser = BytesParser(policy=email.policy.default)
    started = time.perf_counter()
    for raw in mails:
        message = parser.parsebytes(raw)
        _ = [str(value) for value in message.values()], message.get_content()
    return len(mails) / (time.perf_counter() - started)


async def pipeline_rate(url: str, mails: list[bytes]) -> float:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        numbered = list(enumerate(mails))
        for start in range(0, len(mails), 500):
            chunk = numbered[start : start + 500]
            arrivals = [Arrival("smtp", f"c{n}@client.test", (ROUTE,), raw) for n, raw in chunk]
            await insert_entries(engine, arrivals)
        settings = Settings(routes=[Route(address=ROUTE)])
        runtime = RuntimeConfig(LoadedConfig(settings, None))
        worker = PipelineWorker(engine, pipeline_deps(runtime), new_node_id())
        started = time.perf_counter()
        while await worker.process_pending():
            pass
        seconds = time.perf_counter() - started
        async with engine.connect() as connection:
            tickets = await connection.scalar(select(func.count(Ticket.id)))
            acks = await connection.scalar(select(func.count(OutboxItem.id)))
        if tickets != len(mails) or acks != len(mails):
            raise SystemExit(f"expected {len(mails)} tickets and acks, got {tickets} and {acks}")
        return len(mails) / seconds
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--database", help="an empty database URL (default: fresh SQLite)")
    args = parser.parse_args()
    mails = [new_ticket_mail(number, args.size) for number in range(args.messages)]
    with tempfile.TemporaryDirectory(prefix="mailgate-bench-") as tmp:
        url = args.database or f"sqlite+aiosqlite:///{tmp}/bench.db"
        bare = bare_parse_rate(mails)
        rate = asyncio.run(pipeline_rate(url, mails))
    print(f"stdlib parse only   {bare:8.0f} messages/s")
    print(f"mailgate pipeline   {rate:8.0f} messages/s  (tickets with their acknowledgements)")
    print(f"ratio {rate / bare:.2f}; {args.messages} x {args.size} B on {url.split(':')[0]}")


if __name__ == "__main__":
    main()
