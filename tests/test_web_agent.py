"""The agent inbox, ticket page and actions over plain HTTP, against a running daemon.

The browser flows (sign in, search, reply, note, board) are in test_web_browser.py.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy import select

from mailgate.db.models import Attachment, AuditEvent, Message, Ticket, TicketTag
from mailgate.db.session import sessions
from tests.support import MailgateProcess, wait_until
from tests.test_pipeline import mail, send, sent_to, settled
from tests.web import WebClient, codes_on, give_password, with_agents

PASSWORD = "correct horse battery"


@pytest.fixture
async def daemon(setup, smarthost, engine):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    with_agents(setup)
    process = MailgateProcess(setup)
    await process.start()
    for agent in ("alice", "budi", "root"):
        await give_password(engine, f"{agent}@example.test", PASSWORD)
    yield process
    assert await process.stop() == 0


@pytest.fixture
async def signed_in(daemon):
    """sign_in("alice") -> a WebClient signed in as alice@example.test."""
    clients = []

    async def sign_in(name: str) -> WebClient:
        client = WebClient(daemon.setup.web_port)
        clients.append(client)
        await client.sign_in(f"{name}@example.test", PASSWORD)
        return client

    yield sign_in
    for client in clients:
        await client.close()


async def deliver(daemon, engine, *mails: tuple[bytes, str]) -> list[str]:
    """Send (raw, recipient) pairs through SMTP; the codes of the tickets, in order."""
    for raw, recipient in mails:
        await asyncio.to_thread(send, daemon.setup.smtp_port, raw, [recipient])
    await settled(engine, len(mails))
    async with sessions(engine)() as session:
        return list(await session.scalars(select(Ticket.code).order_by(Ticket.id)))


async def test_agent_pages_send_a_stranger_to_sign_in(daemon):
    client = WebClient(daemon.setup.web_port)
    try:
        for path in ("/", "/tickets?q=x", "/tickets/TCK-20260101-AAAA", "/board", "/reports"):
            status, _, response = await client.get(path)
            assert status == 303, path
            assert response.headers["Location"].startswith("/login?next=/"), path
        status, _, _ = await client.post("/tickets/TCK-20260101-AAAA/reply", {"text": "hi"})
        assert status == 303  # a valid form, but nobody signed in: to the login page
    finally:
        await client.close()


async def test_agents_see_their_queues_and_admins_all(daemon, engine, signed_in):
    support, billing = await deliver(
        daemon,
        engine,
        (mail("Printer jammed"), "support@example.test"),
        (mail("Invoice twice"), "billing@example.test"),
    )
    alice, root = await signed_in("alice"), await signed_in("root")
    _, page, _ = await alice.get("/tickets")
    assert codes_on(page) == [support]
    status, _, _ = await alice.get(f"/tickets/{billing}")
    assert status == 404
    status, _, _ = await alice.post(
        f"/tickets/{billing}/note", {"text": "peek"}, csrf_from="/tickets"
    )
    assert status == 404
    _, page, _ = await root.get("/tickets")
    assert codes_on(page) == [billing, support]
    status, page, _ = await root.get(f"/tickets/{billing}")
    assert status == 200 and "Invoice twice" in page


async def test_search_filters_sorting_and_pages(daemon, engine, signed_in):
    printer, invoice, refund = await deliver(
        daemon,
        engine,
        (mail("Printer jammed", body="The paper tray is stuck."), "support@example.test"),
        (mail("Invoice twice", body="Charged twice for März."), "billing@example.test"),
        (mail("Refund please", body="Money back for the printers"), "billing@example.test"),
    )
    root = await signed_in("root")

    async def listed(**params) -> list[str]:
        status, page, _ = await root.get("/tickets", params=params)
        assert status == 200, page[:300]
        return codes_on(page)

    assert await listed(q="printer") == [refund, printer]  # subject and body, word prefix
    assert await listed(q="paper TRAY") == [printer]
    assert await listed(q="MÄRZ") == [invoice]  # any case, any script
    assert await listed(q=invoice) == [invoice]  # a ticket code
    assert await listed(q="nothing-like-this") == []
    assert await listed(queue="billing") == [refund, invoice]
    assert await listed(priority="high") == [refund, invoice]  # the billing route's priority
    assert await listed(tag="billing", order="asc") == [invoice, refund]
    assert await listed(assignee="none", status="unsolved") == [refund, invoice, printer]
    assert await listed(status="Solved") == []
    assert await listed(sort="priority") == [refund, invoice, printer]
    first = await listed(limit="2")
    assert first == [refund, invoice]
    _, page, _ = await root.get("/tickets", params={"limit": "2"})
    next_link = page.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    _, page, _ = await root.get(next_link.replace("&amp;", "&"))
    assert codes_on(page) == [printer] and 'rel="next"' not in page
    status, _, _ = await root.get("/tickets", params={"cursor": "bogus"})
    assert status == 400


async def test_changes_merge_split_and_refusals(daemon, engine, signed_in):
    first, second = await deliver(
        daemon,
        engine,
        (mail("Laptop broken"), "support@example.test"),
        (mail("Laptop still broken"), "support@example.test"),
    )
    alice = await signed_in("alice")
    page = f"/tickets/{first}"
    form = {"status": "Pending", "priority": "urgent", "assignee": "alice@example.test"}
    status, _, response = await alice.post(
        f"{page}/update", {**form, "add_tags": "hardware, loan"}, csrf_from=page
    )
    assert status == 303 and response.headers["Location"] == f"{page}?done=updated"
    status, body, _ = await alice.post(f"{page}/update", {"remove_tag": "loan"}, csrf_from=page)
    async with sessions(engine)() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == first))
        assert (ticket.status, ticket.priority, ticket.assignee) == tuple(form.values())
        actions = set(await session.scalars(select(AuditEvent.action)))
    assert {"status", "priority", "assignee", "tag", "untag"} <= actions
    _, body, _ = await alice.get(page)
    assert "changed the status from New to Pending" in body and ">hardware \u00d7<" in body

    status, body, _ = await alice.post(f"{page}/reply", {"text": "  ", "kind": "reply"}, page)
    assert status == 422 and "Not done:" in body
    status, body, _ = await alice.post(
        f"{page}/merge", {"target": "TCK-20200101-ZZZZ"}, csrf_from=page
    )
    assert status == 422 and "TCK-20200101-ZZZZ" in body

    merging = {"target": second, "confirmed": "1"}
    status, _, response = await alice.post(f"{page}/merge", merging, csrf_from=page)
    assert status == 303 and response.headers["Location"] == f"/tickets/{second}?merged={first}"
    status, _, response = await alice.get(page)
    assert status == 303 and response.headers["Location"].startswith(f"/tickets/{second}")
    async with sessions(engine)() as session:
        moved = (
            await session.scalars(select(Message).where(Message.subject == "Laptop broken"))
        ).one()
    status, _, response = await alice.post(
        f"/tickets/{second}/split", {"message": str(moved.id)}, csrf_from=f"/tickets/{second}"
    )
    assert status == 303 and response.headers["Location"].endswith("?done=split")


async def test_attachment_and_eml_downloads(daemon, engine, signed_in):
    raw = (
        b"From: Carol <carol@client.test>\r\nTo: support@example.test\r\n"
        b"Subject: Logs attached\r\nMessage-ID: <logs@client.test>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nSee the page.\r\n--b\r\n"
        b"Content-Type: text/html\r\n"
        b'Content-Disposition: attachment; filename="r\xc3\xa9sum\xc3\xa9 \\"x\\".html"\r\n\r\n'
        b"<script>alert(1)</script>\r\n--b--\r\n"
    )
    [code] = await deliver(daemon, engine, (raw, "support@example.test"))
    alice = await signed_in("alice")
    _, page, _ = await alice.get(f"/tickets/{code}")
    link = page.split("/attachments/")[1].split('"')[0]
    status, body, response = await alice.get(f"/tickets/{code}/attachments/{link}")
    assert status == 200 and "<script>alert(1)</script>" in body
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    # The pipeline made the name safe; the header carries it exactly, plus an ASCII one.
    assert disposition.endswith("filename*=UTF-8''r%C3%A9sum%C3%A9%20_x_.html")
    assert 'filename="r_sum_ _x_.html"' in disposition
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    eml = page.split('href="')[1:]
    eml = next(h.split('"')[0] for h in eml if h.split('"')[0].endswith(".eml"))
    status, body, response = await alice.get(eml)
    assert status == 200 and response.headers["Content-Type"] == "message/rfc822"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert body.encode() == raw
    assert email.message_from_bytes(body.encode(), policy=email.policy.default)["Subject"]
    bob = WebClient(daemon.setup.web_port)
    try:
        status, _, _ = await bob.get(eml)
        assert status == 303  # not signed in
    finally:
        await bob.close()


async def test_an_agent_attachment_reaches_the_customer_under_a_safe_name(
    daemon, engine, smarthost, signed_in
):
    [code] = await deliver(daemon, engine, (mail("Printer on fire"), "support@example.test"))
    alice, page = await signed_in("alice"), f"/tickets/{code}"
    form = aiohttp.FormData(quote_fields=False)  # the name as a browser sends it
    form.add_field("text", "The report is attached.")
    form.add_field(
        "files",
        b"<p>report</p>",
        filename="../../<svg onload=alert(1)>.html",
        content_type="text/html; name=evil.exe",
    )
    status, _, _ = await alice.post(f"{page}/reply", form, csrf_from=page)
    assert status == 303

    async def replies():
        sent = sent_to(smarthost, "carol@client.test")
        return [m.message for m in sent if "The report is attached." in m.raw.decode()]

    [reply] = await wait_until(replies, "the reply with its attachment")
    [attached] = reply.iter_attachments()
    assert attached.get_filename() == "_svg onload=alert(1)_.html"
    assert attached.get_content() == "<p>report</p>"
    assert attached.get_content_type() == "text/html" and "evil" not in str(attached)
    async with sessions(engine)() as session:
        stored = set(await session.scalars(select(Attachment.filename)))
    assert stored == {"_svg onload=alert(1)_.html"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_html_mail_is_sanitised_and_remote_content_only_on_request(
    daemon, engine, signed_in, corpus
):
    [code] = await deliver(daemon, engine, (corpus("xss.eml"), "support@example.test"))
    alice = await signed_in("alice")
    status, page, response = await alice.get(f"/tickets/{code}")
    thread = page.split('class="thread"')[1]
    assert status == 200 and "Hello <b>support</b>" in thread
    for evil in ("<script", "onerror", "onload", "javascript:", "<iframe", "<svg", "evil.example"):
        assert evil not in thread.lower(), evil
    assert "img-src 'self' data:;" in response.headers["Content-Security-Policy"]
    message_id = thread.split("?remote=")[1].split("#")[0]
    status, page, response = await alice.get(f"/tickets/{code}?remote={message_id}")
    thread = page.split('class="thread"')[1]
    assert '<img src="https://evil.example/pixel.gif"' in thread
    assert "<script" not in thread and "onerror" not in thread and "javascript:" not in thread
    assert "img-src 'self' data: https: http:" in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def column_count(board: str, status: str) -> int:
    """The count a board page shows in the header of the column ``status``."""
    header = board.split(f'data-status="{status}"')[1].split("</h2>")[0]
    return int(header.rsplit('class="count">', 1)[1].split("<")[0])


async def test_board_columns_and_moving_a_card_without_javascript(daemon, engine, signed_in):
    first, second = await deliver(
        daemon,
        engine,
        (mail("Wifi down"), "support@example.test"),
        (mail("Wifi slow"), "support@example.test"),
    )
    alice = await signed_in("alice")
    status, board, _ = await alice.get("/board")
    assert status == 200 and '<script src="/static/board.js" defer>' in board
    assert column_count(board, "New") == 2 and column_count(board, "Solved") == 0
    assert board.count('class="board-card"') == 2
    moved = {"status": "Solved", "next": "board", "confirmed": "1"}
    status, _, response = await alice.post(f"/tickets/{first}/update", moved, csrf_from="/board")
    assert status == 303 and response.headers["Location"] == "/board"
    _, board, _ = await alice.get("/board")
    assert column_count(board, "New") == 1 and column_count(board, "Solved") == 1
    solved = board.split('data-status="Solved"')[1].split("</section>")[0]
    assert first in solved and second not in solved
    status, script, response = await alice.get("/static/board.js")
    assert status == 200 and "form.submit()" in script


async def test_reports_count_open_waiting_solved_and_median_times(daemon, engine, signed_in):
    first, _, billing = await deliver(
        daemon,
        engine,
        (mail("Screen flickers"), "support@example.test"),
        (mail("Keyboard sticky"), "support@example.test"),
        (mail("Wrong VAT"), "billing@example.test"),
    )
    root = await signed_in("root")
    page = f"/tickets/{first}"
    status, _, _ = await root.post(f"{page}/reply", {"text": "Try a new cable."}, csrf_from=page)
    assert status == 303
    _, found, _ = await root.get("/tickets", params={"q": "cable"})
    assert codes_on(found) == [first]  # a reply made on the web is searchable at once
    status, _, _ = await root.post(
        f"{page}/update", {"status": "Solved", "assignee": "alice@example.test"}, csrf_from=page
    )
    assert status == 303
    await root.post(f"/tickets/{billing}/update", {"status": "Pending"}, f"/tickets/{billing}")
    status, report, _ = await root.get("/reports", params={"days": "7"})
    assert status == 200 and report.count("<svg") == 8
    assert "New: 1</title>" in report and "Pending: 1</title>" in report  # open by status
    assert "support: 1</title>" in report and "billing: 1</title>" in report  # by queue
    assert '<p class="big">1</p>' in report  # waiting on the customer
    today = datetime.now(UTC).date().isoformat()
    assert f"{today}: 1</title>" in report  # solved today
    # Root answered and solved it: the medians credit root, not the assignee.
    assert "support (1): " in report and "Root (1): " in report  # agents by name
    assert "Alice (1): " not in report and "root@example.test (1)" not in report
    alice = await signed_in("alice")
    _, mine, _ = await alice.get("/reports")
    assert "billing" not in mine and '<p class="big">0</p>' in mine
    status, page, _ = await alice.get("/reports", params={"from": "garbage"})
    assert status == 400 and "The report period cannot be used" in page


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_forged_agent_mail_is_flagged_on_the_ticket_page(daemon, engine, signed_in):
    forged = mail("Refund them all", sender="Alice <alice@example.test>")
    [code] = await deliver(daemon, engine, (forged, "support@example.test"))
    root = await signed_in("root")
    _, page, _ = await root.get(f"/tickets/{code}")
    assert 'class="small flagged" role="note">Flagged: From: names agent' in page


async def test_tags_are_capped_in_number_and_length(daemon, engine, signed_in):
    [code] = await deliver(daemon, engine, (mail("Many labels"), "support@example.test"))
    alice = await signed_in("alice")
    page = f"/tickets/{code}"
    forty_nine = " ".join(f"t{n:02}" for n in range(49))
    status, _, _ = await alice.post(f"{page}/update", {"add_tags": forty_nine}, csrf_from=page)
    assert status == 303
    status, body, _ = await alice.post(f"{page}/update", {"add_tags": "one two"}, page)
    assert status == 422 and "at most 50 tags" in body
    status, body, _ = await alice.post(f"{page}/update", {"add_tags": "x" * 65}, page)
    assert status == 422 and "up to 64 characters" in body
    status, _, _ = await alice.post(f"{page}/update", {"add_tags": "fifty"}, csrf_from=page)
    assert status == 303
    async with sessions(engine)() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
        count = len(
            list(await session.scalars(select(TicketTag).where(TicketTag.ticket_id == ticket.id)))
        )
    assert count == 50
