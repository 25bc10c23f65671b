"""The agent pages over plain HTTP: pages with totals, agents by name, confirmations,
error pages and report values, on both databases (the browser side is in
test_web_layout.py)."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from mailgate.db.models import OutboxItem, Ticket
from mailgate.db.session import sessions
from tests.test_pipeline import mail
from tests.test_web_agent import daemon, deliver, signed_in  # noqa: F401 (fixtures)
from tests.web import WebClient, codes_on

PAGER = re.compile(r'href="(/tickets\?[^"]*)" rel="(first|prev|next)"')


def pager(page: str) -> dict[str, str]:
    """The inbox's page links by their rel, ready to GET."""
    return {rel: html.unescape(href) for href, rel in PAGER.findall(page)}


def position(page: str) -> str:
    """The "from-to of total" of an inbox page (its dash as a hyphen)."""
    shown = page.split('<nav class="pager"')[1].split("</span>")[0].rsplit(">", 1)[1]
    return shown.replace("\N{EN DASH}", "-")


async def test_inbox_pages_forward_back_and_first_keeping_filters(daemon, engine, signed_in):  # noqa: F811
    codes = await deliver(
        daemon,
        engine,
        *[(mail(f"Question {n}"), "support@example.test") for n in range(5)],
        (mail("Invoice"), "billing@example.test"),
    )
    newest_first = codes[4::-1]
    alice = await signed_in("alice")
    status, page, _ = await alice.get("/tickets", params={"limit": "2", "queue": "support"})
    assert status == 200 and codes_on(page) == newest_first[:2]
    assert position(page) == "1-2 of 5" and "5 tickets</span>" in page
    assert set(pager(page)) == {"next"}  # no Newer, no First on the first page
    _, page, _ = await alice.get(pager(page)["next"])
    assert codes_on(page) == newest_first[2:4] and position(page) == "3-4 of 5"
    links = pager(page)
    assert set(links) == {"first", "prev", "next"}
    assert all("queue=support" in link and "limit=2" in link for link in links.values())
    _, last, _ = await alice.get(links["next"])
    assert codes_on(last) == newest_first[4:] and position(last) == "5-5 of 5"
    assert "next" not in pager(last)
    _, page, _ = await alice.get(pager(last)["prev"])
    assert codes_on(page) == newest_first[2:4] and position(page) == "3-4 of 5"
    _, page, _ = await alice.get(pager(page)["prev"])
    assert codes_on(page) == newest_first[:2] and "prev" not in pager(page)
    _, page, _ = await alice.get(pager(last)["first"])
    assert codes_on(page) == newest_first[:2]
    status, _, _ = await alice.get("/tickets", params={"before": "bogus"})
    assert status == 400


async def test_agents_by_name_and_a_bare_customer_once(daemon, engine, signed_in):  # noqa: F811
    raw = mail("No name here", sender="dewi@client.test")
    [code] = await deliver(daemon, engine, (raw, "support@example.test"))
    root = await signed_in("root")
    page = f"/tickets/{code}"
    form = {"assignee": "alice@example.test", "status": "Open"}
    status, _, _ = await root.post(f"{page}/update", form, csrf_from=page)
    assert status == 303
    _, inbox, _ = await root.get("/tickets")
    row = inbox.split("<tbody>")[1].split("</tr>")[0]
    shown = re.sub(r"<[^>]+>", " ", row)  # the text a reader sees, not the links
    assert shown.count("dewi@client.test") == 1
    assert "<td>Alice</td>" in row and "alice@example.test" not in row
    _, ticket, _ = await root.get(page)
    assert "Root assigned the ticket to Alice" in ticket
    assert "<dt>Assignee</dt><dd>Alice</dd>" in ticket
    _, board, _ = await root.get("/board")
    assert "Alice ·" in board and "alice@example.test" not in board


async def test_merge_asks_first_and_names_the_merged_code_once(daemon, engine, signed_in):  # noqa: F811
    first, second = await deliver(
        daemon,
        engine,
        (mail("Laptop broken"), "support@example.test"),
        (mail("Laptop still broken"), "support@example.test"),
    )
    alice, page = await signed_in("alice"), f"/tickets/{first}"
    status, body, _ = await alice.post(f"{page}/merge", {"target": second}, csrf_from=page)
    assert status == 200 and f"<h1>Merge {first} into {second}?</h1>" in body
    assert "Laptop broken" in body and "Laptop still broken" in body
    assert f'name="target" value="{second}"' in body and 'name="confirmed" value="1"' in body
    async with sessions(engine)() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == first))
        assert ticket.merged_into_id is None  # only asked
    status, body, _ = await alice.post(f"{page}/merge", {"target": first}, csrf_from=page)
    assert status == 422 and "cannot be merged into itself" in body
    status, body, _ = await alice.post(
        f"{page}/merge", {"target": "TCK-20200101-ZZZZ"}, csrf_from=page
    )
    assert status == 422 and "no ticket TCK-20200101-ZZZZ" in body

    form = {"target": second, "confirmed": "1"}
    status, _, response = await alice.post(f"{page}/merge", form, csrf_from=page)
    assert status == 303
    _, survivor, _ = await alice.get(response.headers["Location"])
    [line] = [p for p in survivor.split('<p class="event small">')[1:] if "merged" in p]
    line = line.split("</p>")[0]
    assert line.count(first) == 2  # once as the text of its link, once in the href
    assert f'merged <a href="/tickets/{first}">{first}</a> into this ticket' in line


async def test_a_board_move_that_mails_the_customer_asks_first(daemon, engine, signed_in):  # noqa: F811
    first, second = await deliver(
        daemon,
        engine,
        (mail("Wifi down"), "support@example.test"),
        (mail("Wifi slow"), "support@example.test"),
    )
    alice = await signed_in("alice")
    status, _, response = await alice.post(
        f"/tickets/{second}/update", {"status": "Pending", "next": "board"}, "/board"
    )
    assert status == 303 and response.headers["Location"] == "/board"  # no mail: no question
    move = {"status": "Solved", "next": "board"}
    status, body, _ = await alice.post(f"/tickets/{first}/update", move, "/board")
    assert status == 200 and f"Move {first} to Solved?" in body
    assert "carol@client.test will get a mail" in body
    async with sessions(engine)() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == first))
        solved_mail = await session.scalar(
            select(OutboxItem).where(OutboxItem.ticket_id == ticket.id, OutboxItem.kind == "solved")
        )
    assert ticket.status == "New" and solved_mail is None
    status, _, response = await alice.post(
        f"/tickets/{first}/update", {**move, "confirmed": "1"}, "/board"
    )
    assert status == 303 and response.headers["Location"] == "/board"
    async with sessions(engine)() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == first))
        kinds = set(
            await session.scalars(select(OutboxItem.kind).where(OutboxItem.ticket_id == ticket.id))
        )
    assert ticket.status == "Solved" and "solved" in kinds


async def test_error_pages_are_styled_with_a_way_back(daemon, engine, signed_in):  # noqa: F811
    alice = await signed_in("alice")
    for path, reason in (
        ("/tickets/TCK-20200101-ZZZZ", "No ticket TCK-20200101-ZZZZ here."),
        ("/no/such/page", "There is no such page."),
    ):
        status, body, response = await alice.get(path)
        assert status == 404 and response.content_type == "text/html", path
        assert "<h1>Not found</h1>" in body and reason in body
        assert 'href="/tickets">Back to the inbox' in body and 'name="q"' in body
        assert 'class="skip"' in body and 'aria-label="Main"' in body  # the menu
    status, body, response = await alice.get("/admin/outbox")
    assert status == 403 and response.content_type == "text/html"
    assert "<h1>Not allowed</h1>" in body and "This page is for admins." in body
    status, body, _ = await alice.get("/reports", params={"from": "2026-02-30"})
    assert status == 400 and "The report period cannot be used" in body
    assert 'href="/reports">Start again' in body
    status, body, response = await alice.get("/api/v1/nothing")
    assert status in (401, 404) and response.content_type == "application/json"
    stranger = WebClient(daemon.setup.web_port)
    try:
        status, body, _ = await stranger.get("/no/such/page")
        assert status == 404 and "If you followed a link from one of our mails" in body
    finally:
        await stranger.close()


async def test_solved_per_day_columns_print_their_values(daemon, engine, signed_in):  # noqa: F811
    [code] = await deliver(daemon, engine, (mail("Done soon"), "support@example.test"))
    alice, page = await signed_in("alice"), f"/tickets/{code}"
    status, _, _ = await alice.post(f"{page}/update", {"status": "Solved"}, csrf_from=page)
    assert status == 303
    _, report, _ = await alice.get("/reports", params={"days": "7"})
    solved = report.split("Tickets solved per day</title>")[1].split("</svg>")[0]
    values = re.findall(r'<text class="value"[^>]*>([^<]*)</text>', solved)
    assert values == ["0"] * 6 + ["1"]
