"""Web benchmark: the agent inbox, a search and a ticket page on a big SQLite database.

Seeds 100,000 tickets with 300,000 messages (the FTS triggers index them as they go
in; texts drawn from a 20,000-word vocabulary by Zipf's law, the helpdesk words
searched for at ranks 100 to 130), starts ``mailgate serve`` on it, signs in as an
admin (who sees every ticket) and times requests one after another over aiohttp's
client: p50 and p95 of the inbox's first page, a full-text search, a ticket page,
and, as the baseline of the same run, ``/healthz`` (aiohttp plus one database round
trip).

Targets: p95 list <= 50 ms, search <= 150 ms, ticket page <= 30 ms.

    .venv/bin/python bench/web.py [--tickets 100000] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.smtp_ingest import running
from tests.support import free_port
from tests.web import CSRF_INPUT

PASSWORD = "benchmark passphrase"
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
STAMP = "%Y-%m-%d %H:%M:%S.000000"


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    """Made-up words with the helpdesk words at ranks 100 to 130 (topical, not filler)."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    made_up = ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size)]
    return made_up[:100] + COMMON + made_up[100:]


def config(directory: Path, web_port: int) -> Path:
    path = directory / "mailgate.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{directory}/bench.db"\n'
        f'[smtp]\nlisten = []\n[web]\nlisten = "127.0.0.1:{web_port}"\n'
        f'secret_key = "bench"\nlogin_rate_limit = "1000/1m"\n'
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


def seed(database: Path, tickets: int, per_ticket: int) -> None:
    """Rows as the pipeline writes them, straight into SQLite, in one transaction."""
    ticket_rows, message_rows, tag_rows = rows(tickets, per_ticket)
    db = sqlite3.connect(database)
    with db:
        db.executemany(
            "INSERT INTO tickets (id, code, subject, customer_name, customer_email, queue, "
            "status, priority, assignee, locale, route_address, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            ticket_rows,
        )
        db.executemany(
            "INSERT INTO messages (id, ticket_id, kind, message_id, content_sha256, from_name, "
            "from_email, to_addrs, cc_addrs, subject, text, quoted_text, agent_authenticated, "
            "created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            message_rows,
        )
        db.executemany("INSERT INTO ticket_tags (ticket_id, tag) VALUES (?,?)", tag_rows)
    db.execute("ANALYZE")
    db.close()


def rows(tickets: int, per_ticket: int) -> tuple[list, list, list]:
    """Tickets spread over the last year, ``per_ticket`` messages each, some tags."""
    rng = random.Random(7)
    words = vocabulary(rng)
    weights = zipf_weights(len(words))
    start = time.time() - 365 * 86400
    ticket_rows, message_rows, tag_rows = [], [], []
    for number in range(1, tickets + 1):
        stamp = time.strftime(STAMP, time.gmtime(start + number * (365 * 86400 / tickets)))
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
                sentence(rng, words, weights, 5), sentence(rng, words, weights, 60), "", 0, stamp,
            ))  # fmt: skip
        if number % 4 == 0:
            tag_rows.append((number, rng.choice(["vip", "hardware", "refund"])))
    return ticket_rows, message_rows, tag_rows


async def measure(base: str, paths: list[str], session: aiohttp.ClientSession) -> list[float]:
    timings = []
    for path in paths:
        began = time.perf_counter()
        async with session.get(base + path, allow_redirects=False) as response:
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


async def run_requests(base: str, tickets: int, count: int) -> dict[str, list[float]]:
    rng = random.Random(11)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        await sign_in(base, session)
        await measure(base, ["/tickets"] * 5, session)  # warm up
        cases = {
            "healthz (baseline)": ["/healthz"] * count,
            "inbox list": ["/tickets"] * count,
            # one helpdesk word (in about 6% of the messages), or two of them
            "search": [
                "/tickets?q=" + "+".join(rng.sample(COMMON, rng.randint(1, 2)))
                for _ in range(count)
            ],
            "ticket page": [
                f"/tickets/TCK-20260101-{rng.randint(1, tickets):06d}" for _ in range(count)
            ],
        }
        return {name: await measure(base, paths, session) for name, paths in cases.items()}


def report(results: dict[str, list[float]]) -> None:
    print(f"{'request':<20} {'p50 ms':>8} {'p95 ms':>8}")
    for name, timings in results.items():
        p95 = statistics.quantiles(timings, n=20)[18]
        print(f"{name:<20} {statistics.median(timings):8.1f} {p95:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--per-ticket", type=int, default=3, help="messages per ticket")
    parser.add_argument("--requests", type=int, default=200, help="requests per case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailgate-bench-web-") as tmp:
        directory, port = Path(tmp), free_port()
        path = config(directory, port)
        mailgate = [sys.executable, "-m", "mailgate", "--config", str(path)]
        subprocess.run([*mailgate, "db", "upgrade"], check=True, capture_output=True)
        subprocess.run(
            [*mailgate, "agent", "passwd", "root@example.test"],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        began = time.time()
        seed(directory / "bench.db", args.tickets, args.per_ticket)
        messages = args.tickets * args.per_ticket
        print(f"seeded {args.tickets} tickets, {messages} messages in {time.time() - began:.0f}s")
        with running([*mailgate, "serve"], port, cwd=directory):
            base = f"http://127.0.0.1:{port}"
            results = asyncio.run(run_requests(base, args.tickets, args.requests))
        report(results)
        print(json.dumps({k: round(statistics.median(v), 1) for k, v in results.items()}))


if __name__ == "__main__":
    main()
