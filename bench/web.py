"""Web benchmark: the agent inbox, searches and a ticket page at 100,000 tickets,
on SQLite or PostgreSQL.

Seeds 100,000 tickets with 300,000 messages (texts drawn from a 20,000-word
vocabulary by Zipf's law, the helpdesk words searched for at ranks 100 to 130) in
one bulk transaction, and keeps them for the next run: the SQLite file under
``var/bench/``, or the PostgreSQL database of ``--db`` (created if missing; it must
be empty or hold the seeded data). Then starts ``mailgate serve`` on it, signs in as
an admin (who sees every ticket) and times requests one after another over
aiohttp's client: p50 and p95 of the inbox search and the API's ``q=`` for a common
word (in about 6% of the messages), a rare word (in about 100) and a word in none,
of the inbox's first page and a ticket page, and, as the baseline of the same run,
``/healthz`` (aiohttp plus one database round trip). Last come the query plans of
both searches, and whether they use the full-text index.

Targets: p95 search (inbox and API, each word) <= 150 ms, list <= 50 ms, ticket
page <= 30 ms.

    .venv/bin/python bench/web.py [--db postgresql+asyncpg://postgres@127.0.0.1/mailgate_bench]
        [--tickets 100000] [--per-ticket 3] [--requests 100]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
from sqlalchemy import Select, func, select, table
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.smtp_ingest import running
from mailgate.config import load_config
from mailgate.web.api import DEFAULT_LIMIT, listed_tickets
from mailgate.web.auth import AgentSession
from mailgate.web.listing import Filters, ticket_query
from tests.support import free_port
from tests.web import CSRF_INPUT

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "benchmark passphrase"
TOKEN = "bench-token"
COMMON = [
    "printer",
    "toner",
    "invoice",
    "refund",
    "password",
    "login",
    "laptop",
    "battery",
    "screen",
    "keyboard",
    "wifi",
    "router",
    "delivery",
    "parcel",
    "order",
    "payment",
    "card",
    "account",
    "upgrade",
    "licence",
    "backup",
    "server",
    "email",
    "calendar",
    "meeting",
    "phone",
    "cable",
    "monitor",
    "mouse",
    "driver",
    "update",
    "crash",
    "error",
    "slow",
]


STATUSES = ["New", "Open", "Pending", "Escalated", "Solved", "Closed"]
QUEUES = ["support", "billing", "sales"]
TICKET_COLUMNS = (
    "id", "code", "subject", "customer_name", "customer_email", "queue", "status",
    "priority", "assignee", "locale", "route_address", "created_at", "updated_at",
)  # fmt: skip
MESSAGE_COLUMNS = (
    "id", "ticket_id", "kind", "message_id", "content_sha256", "from_name", "from_email",
    "to_addrs", "cc_addrs", "subject", "text", "quoted_text", "agent_authenticated",
    "created_at",
)  # fmt: skip
TARGETS = {"search": 150.0, "inbox list": 50.0, "ticket page": 30.0}  # p95, ms


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    """Made-up words with the helpdesk words at ranks 100 to 130 (topical, not filler)."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    made_up = ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size)]
    return made_up[:100] + COMMON + made_up[100:]


def config(directory: Path, url: str, web_port: int) -> Path:
    path = directory / "mailgate.toml"
    path.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[smtp]\nlisten = []\n[web]\nlisten = "127.0.0.1:{web_port}"\n'
        f'secret_key = "bench"\nlogin_rate_limit = "1000/1m"\n'
        f'[api]\ntokens = ["{TOKEN}"]\n'
        f'[[routes]]\naddress = "support@example.test"\nqueue = "support"\n'
        f'[[agents]]\nemail = "root@example.test"\nadmin = true\n'
    )
    return path


def zipf_weights(size: int) -> list[float]:
    """Cumulative weights: the word of rank r is drawn in proportion to 1/r, as in text."""
    total, cumulative = 0.0, []
    for rank in range(1, size + 1):
        total += 1 / rank
        cumulative.append(total)
    return cumulative


def sentence(rng: random.Random, words: list[str], weights: list[float], count: int) -> str:
    return " ".join(rng.choices(words, cum_weights=weights, k=count))


def rows(tickets: int, per_ticket: int) -> tuple[list, list, list]:
    """Tickets spread over the last year, ``per_ticket`` messages each, some tags."""
    rng = random.Random(7)
    words = vocabulary(rng)
    weights = zipf_weights(len(words))
    start = time.time() - 365 * 86400
    ticket_rows, message_rows, tag_rows = [], [], []
    for number in range(1, tickets + 1):
        stamp = datetime.fromtimestamp(start + number * (365 * 86400 / tickets), UTC)
        ticket_rows.append((
            number, f"TCK-20260101-{number:06d}", sentence(rng, words, weights, 5),
            f"Customer {number}", f"c{number}@client.test", rng.choice(QUEUES),
            rng.choice(STATUSES), rng.choice(["low", "normal", "high", "urgent"]), None, "en",
            "support@example.test", stamp, stamp,
        ))  # fmt: skip
        for _ in range(per_ticket):
            message_id = len(message_rows) + 1
            message_rows.append((
                message_id, number, "customer", f"<m{message_id}@client.test>", "",
                f"Customer {number}", f"c{number}@client.test", "[]", "[]",
                sentence(rng, words, weights, 5), sentence(rng, words, weights, 60), "",
                False, stamp,
            ))  # fmt: skip
        if number % 4 == 0:
            tag_rows.append((number, rng.choice(["vip", "hardware", "refund"])))
    return ticket_rows, message_rows, tag_rows


def seed_sqlite(database: Path, tickets: int, per_ticket: int) -> None:
    """Rows as the pipeline writes them, straight into SQLite, in one transaction
    (the FTS triggers index the messages as they go in)."""
    ticket_rows, message_rows, tag_rows = rows(tickets, per_ticket)
    stamped = [(*row[:-2], *(_sqlite_time(moment) for moment in row[-2:])) for row in ticket_rows]
    messages = [(*row[:-1], _sqlite_time(row[-1])) for row in message_rows]
    db = sqlite3.connect(database)
    with db:
        db.executemany(_insert("tickets", TICKET_COLUMNS), stamped)
        db.executemany(_insert("messages", MESSAGE_COLUMNS), messages)
        db.executemany("INSERT INTO ticket_tags (ticket_id, tag) VALUES (?,?)", tag_rows)
    db.execute("ANALYZE")
    db.close()


def _sqlite_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})"


async def seed_postgres(dsn: str, tickets: int, per_ticket: int) -> None:
    """The same rows by COPY in one transaction; the GIN index is built once after
    the load rather than entry by entry, as for any bulk load into PostgreSQL."""
    ticket_rows, message_rows, tag_rows = rows(tickets, per_ticket)
    db = await asyncpg.connect(dsn)
    try:
        async with db.transaction():
            index = await db.fetchval(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_search_vector'"
            )
            await db.execute("DROP INDEX ix_messages_search_vector")
            await db.copy_records_to_table("tickets", records=ticket_rows, columns=TICKET_COLUMNS)
            await db.copy_records_to_table(
                "messages", records=message_rows, columns=MESSAGE_COLUMNS
            )
            await db.copy_records_to_table(
                "ticket_tags", records=tag_rows, columns=("ticket_id", "tag")
            )
            await db.execute("SET LOCAL maintenance_work_mem = '256MB'")
            await db.execute(index)
            for table in ("tickets", "messages"):
                await db.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        await db.execute("ANALYZE")
    finally:
        await db.close()


async def seeded(url: str) -> tuple[int, int]:
    """How many tickets and messages the database holds."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            tickets = await connection.scalar(select(func.count()).select_from(table("tickets")))
            messages = await connection.scalar(select(func.count()).select_from(table("messages")))
    finally:
        await engine.dispose()
    return tickets, messages


async def create_database(url: str) -> None:
    """The PostgreSQL database of ``url``, created if it does not exist yet."""
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    db = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        if not await db.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database):
            await db.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await db.close()


async def measure(base: str, paths: list[str], session: aiohttp.ClientSession) -> list[float]:
    timings = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for path in paths:
        began = time.perf_counter()
        async with session.get(base + path, allow_redirects=False, headers=headers) as response:
            await response.read()
            assert response.status == 200, (path, response.status)
        timings.append((time.perf_counter() - began) * 1000)
    return timings


async def sign_in(base: str, session: aiohttp.ClientSession) -> None:
    async with session.get(base + "/login") as response:
        token = CSRF_INPUT.search(await response.text()).group(1)
    form = {"email": "root@example.test", "password": PASSWORD, "csrf": token}
    async with session.post(base + "/login", data=form, allow_redirects=False) as response:
        assert response.status == 303, response.status


def search_words(count: int) -> dict[str, list[str]]:
    """``count`` words of each kind: helpdesk words (in about 6% of the messages
    each), words of ranks 10,000 to 20,000 (in about 100) long enough to be the
    prefix of hardly another, and words in none (no made-up word has a "q", nor any
    helpdesk word a "qx")."""
    rng = random.Random(11)
    rare = [word for word in vocabulary(random.Random(7))[10_000:] if len(word) == 8]
    return {
        "common word": [rng.choice(COMMON) for _ in range(count)],
        "rare word": [rng.choice(rare) for _ in range(count)],
        "no match": [f"qx{rng.randrange(10**6)}" for _ in range(count)],
    }


async def run_requests(base: str, tickets: int, count: int) -> dict[str, list[float]]:
    rng = random.Random(13)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        await sign_in(base, session)
        await measure(base, ["/tickets"] * 5, session)  # warm up
        cases = {"healthz (baseline)": ["/healthz"] * count}
        for kind, words in search_words(count).items():
            cases[f"search, {kind}"] = [f"/tickets?q={word}" for word in words]
            cases[f"api q=, {kind}"] = [f"/api/v1/tickets?q={word}" for word in words]
        cases["inbox list"] = ["/tickets"] * count
        cases["ticket page"] = [
            f"/tickets/TCK-20260101-{rng.randint(1, tickets):06d}" for _ in range(count)
        ]
        return {name: await measure(base, paths, session) for name, paths in cases.items()}


def p95(timings: list[float]) -> float:
    return statistics.quantiles(timings, n=20)[18]


def report(results: dict[str, list[float]], database: str) -> None:
    """The targets' lines first, then every case."""
    for target, limit in TARGETS.items():
        cases = {name: p95(t) for name, t in results.items() if _target_of(name) == target}
        worst = max(cases, key=cases.__getitem__)
        verdict = "met" if cases[worst] <= limit else "NOT met"
        print(
            f"target {database}: p95 {target} <= {limit:.0f} ms: {verdict} "
            f"(worst {cases[worst]:.1f} ms, {worst})"
        )
    print(f"{'request':<24} {'p50 ms':>8} {'p95 ms':>8}")
    for name, timings in results.items():
        print(f"{name:<24} {statistics.median(timings):8.1f} {p95(timings):8.1f}")


def _target_of(name: str) -> str:
    return "search" if name.startswith(("search", "api q=")) else name


async def explain(url: str, config_path: Path, word: str) -> None:
    """The plans of the inbox's page and total and of the API's page for ``word``,
    built by the code that serves them, and whether they use the full-text index."""
    settings = load_config(str(config_path)).settings
    admin = AgentSession("root@example.test", "Root", True, frozenset(), ZoneInfo("UTC"))
    filters = Filters.from_query({"q": word})
    now = datetime.now(UTC)
    engine = create_async_engine(url)
    dialect = engine.dialect

    def inbox() -> Select:
        return ticket_query(filters, admin, settings.tickets, dialect, now)

    queries = {
        "inbox page": inbox().limit(filters.page_size),
        "inbox total": select(func.count()).select_from(inbox().order_by(None).subquery()),
        "api page": listed_tickets({"q": word}, settings, now, dialect).limit(DEFAULT_LIMIT + 1),
    }
    postgres = dialect.name == "postgresql"
    index = "ix_messages_search_vector" if postgres else "messages_fts VIRTUAL TABLE INDEX"
    try:
        async with engine.connect() as connection:
            for name, query in queries.items():
                sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
                if postgres:
                    result = await connection.exec_driver_sql(f"EXPLAIN {sql}")
                    lines = [row[0] for row in result]
                else:
                    result = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
                    lines = [row[-1] for row in result]
                used = "uses" if any(index in line for line in lines) else "does NOT use"
                print(f"plan of the {name} for {word!r}: {used} {index.split()[0]}")
                print("\n".join(f"    {line}" for line in lines))
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL (default: a SQLite file under var/bench/)")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--per-ticket", type=int, default=3, help="messages per ticket")
    parser.add_argument("--requests", type=int, default=100, help="requests per case")
    args = parser.parse_args()
    messages = args.tickets * args.per_ticket
    url = args.db
    if url is None:
        (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
        path = ROOT / "var" / "bench" / f"web-{args.tickets}x{args.per_ticket}.db"
        url = f"sqlite+aiosqlite:///{path}"
    postgres = make_url(url).get_backend_name() == "postgresql"
    database = "PostgreSQL" if postgres else "SQLite"
    if postgres:
        asyncio.run(create_database(url))
    with tempfile.TemporaryDirectory(prefix="mailgate-bench-web-") as tmp:
        directory, port = Path(tmp), free_port()
        path = config(directory, url, port)
        mailgate = [sys.executable, "-m", "mailgate", "--config", str(path)]
        subprocess.run([*mailgate, "db", "upgrade"], check=True, capture_output=True)
        subprocess.run(
            [*mailgate, "agent", "passwd", "root@example.test"],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        found = asyncio.run(seeded(url))
        if found == (0, 0):
            began = time.time()
            if postgres:
                dsn = make_url(url).set(drivername="postgresql")
                asyncio.run(seed_postgres(dsn.render_as_string(hide_password=False),
                                          args.tickets, args.per_ticket))  # fmt: skip
            else:
                seed_sqlite(Path(make_url(url).database), args.tickets, args.per_ticket)
            took = time.time() - began
            print(f"seeded {args.tickets} tickets, {messages} messages in {took:.0f}s")
        elif found != (args.tickets, messages):
            sys.exit(f"{url} holds {found[0]} tickets and {found[1]} messages; use an empty one")
        else:
            print(f"reusing {args.tickets} tickets, {messages} messages in {url}")
        with running([*mailgate, "serve"], port, cwd=directory):
            base = f"http://127.0.0.1:{port}"
            results = asyncio.run(run_requests(base, args.tickets, args.requests))
        report(results, database)
        words = search_words(1)
        for word in (words["common word"][0], words["rare word"][0]):
            asyncio.run(explain(url, path, word))


if __name__ == "__main__":
    main()
