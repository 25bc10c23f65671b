"""CSV exports: the API's tickets.csv, the inbox's *Export CSV* and each report's table."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from mailgate.db.models import Ticket
from mailgate.db.session import sessions
from mailgate.web.export import BATCH, TICKET_COLUMNS
from tests.support import MailgateProcess, api_get, wait_until
from tests.test_pipeline import mail, send
from tests.web import WebClient, give_password, with_agents

TOKEN = "test-token"
PASSWORD = "correct horse battery"


@pytest.fixture
async def daemon(setup, engine):
    setup.sections["api"] = {"tokens": [TOKEN]}
    with_agents(setup)
    process = MailgateProcess(setup)
    await process.start()
    for agent in ("alice", "root"):
        await give_password(engine, f"{agent}@example.test", PASSWORD)
    yield process
    assert await process.stop() == 0


@pytest.fixture
async def agent(daemon):
    """agent("alice") -> a WebClient signed in as alice@example.test."""
    clients = []

    async def sign_in(name: str) -> WebClient:
        client = WebClient(daemon.setup.web_port)
        clients.append(client)
        await client.sign_in(f"{name}@example.test", PASSWORD)
        return client

    yield sign_in
    for client in clients:
        await client.close()


async def mailed(daemon, *subjects: tuple[str, str, str]) -> None:
    """Mail (subject, sender, route) triples and wait until each is a ticket."""
    for subject, sender, route in subjects:
        raw = mail(subject, sender=sender, to=route)
        await asyncio.to_thread(send, daemon.setup.smtp_port, raw, [route])

    async def listed():
        page = await api_get(daemon.setup, "/api/v1/tickets", limit=500)
        return len(page["tickets"]) == len(subjects)

    await wait_until(listed, f"{len(subjects)} tickets")


async def get_csv(daemon, path: str, token: str | None = TOKEN, **params):
    """The status, headers and raw body of a GET with a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{daemon.setup.web_port}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers, params=params) as response,
    ):
        return response.status, dict(response.headers), await response.read()


def rows_of(body: bytes) -> list[dict]:
    assert not body.startswith(b"\xef\xbb\xbf")  # no BOM: the header row comes first
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


SUBJECTS = (
    ('=HYPERLINK("http://evil.test","click")', "Mallory <m@client.test>", "support@example.test"),
    ('Café, «quotes» and "commas"', "Dédé Ünal <dede@client.test>", "support@example.test"),
    ("Invoice overdue", "Carol <carol@client.test>", "billing@example.test"),
    ("-1+1", '"@someone" <plus@client.test>', "support@example.test"),
)


async def test_api_csv_has_the_list_tickets_and_safe_cells(daemon):
    await mailed(daemon, *SUBJECTS)
    status, headers, body = await get_csv(daemon, "/api/v1/tickets.csv")
    assert status == 200, body
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"].startswith('attachment; filename="mailgate-tickets-')
    assert body.split(b"\r\n", 1)[0].decode() == ",".join(TICKET_COLUMNS)
    rows = rows_of(body)
    listed = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
    assert [row["code"] for row in rows] == [ticket["code"] for ticket in listed]
    for row, ticket in zip(rows, listed, strict=True):
        assert row["status"] == ticket["status"] and row["queue"] == ticket["queue"]
        assert row["priority"] == ticket["priority"]
        assert row["customer_email"] == ticket["customer"]["email"]
        assert row["tags"] == " ".join(ticket["tags"])
        assert row["created_at"] == ticket["created_at"]
        assert row["updated_at"] == ticket["updated_at"]
        assert datetime.fromisoformat(row["created_at"]).tzinfo is not None
        assert row["messages"] == "1" and row["assignee"] == (ticket["assignee"] or "")
    subjects = {row["subject"] for row in rows}
    assert subjects == {
        '\'=HYPERLINK("http://evil.test","click")',
        'Café, «quotes» and "commas"',
        "Invoice overdue",
        "'-1+1",
    }
    assert "'@someone" in {row["customer_name"] for row in rows}
    assert "Dédé Ünal" in {row["customer_name"] for row in rows}


async def test_api_csv_takes_the_list_filters_and_their_errors(daemon):
    await mailed(daemon, *SUBJECTS)
    for params in ({"queue": "billing"}, {"priority": "high"}, {"tag": "billing"}):
        _, _, body = await get_csv(daemon, "/api/v1/tickets.csv", **params)
        assert [row["subject"] for row in rows_of(body)] == ["Invoice overdue"], params
    _, _, body = await get_csv(daemon, "/api/v1/tickets.csv", customer="DEDE@client.test")
    assert [row["customer_email"] for row in rows_of(body)] == ["dede@client.test"]
    _, _, body = await get_csv(daemon, "/api/v1/tickets.csv", spam="true")
    assert rows_of(body) == []
    for params, expected in (
        ({"status": "bogus"}, 422),
        ({"priority": "asap"}, 422),
        ({"tag": "two words"}, 422),
        ({"spam": "maybe"}, 400),
    ):
        status, headers, body = await get_csv(daemon, "/api/v1/tickets.csv", **params)
        assert status == expected, params
        assert headers["Content-Type"].startswith("application/json")
    status, _, _ = await get_csv(daemon, "/api/v1/tickets.csv", token=None)
    assert status == 401


async def many_tickets(engine, count: int) -> list[tuple[datetime, int, str]]:
    """``count`` tickets written straight to the database, many sharing an update
    time (so the keyset continues across ties); (updated_at, id, code) of each."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with sessions(engine).begin() as session:
        tickets = [
            Ticket(
                code=f"TCK-20260101-{number:04X}",
                subject=f"Bulk {number}",
                customer_email=f"bulk{number}@client.test",
                queue="support",
                status="New",
                route_address="support@example.test",
                created_at=start,
                updated_at=start + timedelta(minutes=number // 7),
            )
            for number in range(count)
        ]
        session.add_all(tickets)
        await session.flush()
        return [(t.updated_at, t.id, t.code) for t in tickets]


async def test_exports_of_any_size_come_in_order_without_gaps(daemon, engine, agent):
    made = await many_tickets(engine, 2 * BATCH + 37)
    _, _, body = await get_csv(daemon, "/api/v1/tickets.csv")
    newest_first = [code for _, _, code in sorted(made, key=lambda t: t[1], reverse=True)]
    assert [row["code"] for row in rows_of(body)] == newest_first
    root = await agent("root")
    async with root.http.get(f"{root.base}/tickets.csv?sort=updated&order=asc") as answer:
        assert answer.status == 200 and answer.content_type == "text/csv"
        body = await answer.read()
    oldest_first = [code for _, _, code in sorted(made)]
    assert [row["code"] for row in rows_of(body)] == oldest_first


async def test_inbox_export_link_keeps_the_filters_and_the_agent_scope(daemon, agent):
    await mailed(daemon, *SUBJECTS)
    alice = await agent("alice")  # works the support queue only
    status, page, _ = await alice.get("/tickets?priority=normal&sort=created&order=asc")
    assert status == 200
    link = "/tickets.csv?priority=normal&amp;sort=created&amp;order=asc"
    assert f'href="{link}"' in page and "Export CSV" in page
    async with alice.http.get(alice.base + link.replace("&amp;", "&")) as answer:
        rows = rows_of(await answer.read())
    assert [row["subject"] for row in rows] == [
        '\'=HYPERLINK("http://evil.test","click")',
        'Café, «quotes» and "commas"',
        "'-1+1",
    ]
    async with alice.http.get(alice.base + "/tickets.csv") as answer:
        assert "Invoice overdue" not in {row["subject"] for row in rows_of(await answer.read())}
    stranger = WebClient(daemon.setup.web_port)
    try:
        status, _, response = await stranger.get("/tickets.csv")
        assert status == 303 and response.headers["Location"].startswith("/login")
    finally:
        await stranger.close()


async def test_each_report_exports_its_table(daemon, agent):
    await mailed(daemon, *SUBJECTS)
    root = await agent("root")
    status, page, _ = await root.get("/reports?from=2026-01-01&to=2026-01-31")
    assert status == 200
    query = "from=2026-01-01&amp;to=2026-01-31"
    for name in (
        "open",
        "waiting",
        "solved-per-day",
        "first-response-by-queue",
        "resolution-by-agent",
        "good-ratings-by-queue",
        "satisfaction-comments",
    ):
        assert f'href="/reports/{name}.csv?{query}"' in page, name

    async def table(name: str, query: str = "from=2026-01-01&to=2026-01-31") -> list[dict]:
        async with root.http.get(f"{root.base}/reports/{name}.csv?{query}") as answer:
            assert answer.status == 200, name
            return rows_of(await answer.read())

    assert await table("open") == [
        {"status": "New", "queue": "billing", "tickets": "1"},
        {"status": "New", "queue": "support", "tickets": "3"},
    ]
    days = await table("solved-per-day")
    assert [row["day"] for row in days][:2] == ["2026-01-01", "2026-01-02"] and len(days) == 31
    assert {row["solved"] for row in days} == {"0"}
    assert await table("first-response-by-agent") == []
    for bad, expected in (("/reports/nothing.csv", 404), ("/reports/open.csv?from=soon", 400)):
        status, _, _ = await root.get(bad)
        assert status == expected, bad
