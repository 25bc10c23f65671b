"""Live updates, presence and drafts as two agents see them in Chromium.

A second browser sees new mail (sent by SMTP into the running daemon) appear in its
inbox without a reload; two agents on one ticket see each other viewing and typing,
and each other's notes and status changes; a typed reply survives a status change, a
refused merge and a reload, and goes out with its status change in one step.
"""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from mailgate.db.models import Draft, OutboxItem, Ticket
from mailgate.db.session import sessions
from tests.support import MailgateProcess, wait_until
from tests.test_pipeline import mail, send, settled
from tests.web import give_password, with_agents

PASSWORD = "correct horse battery"
ALICE, ROOT = "alice@example.test", "root@example.test"
CAROL = "carol@client.test"


@pytest.fixture
async def daemon(setup, smarthost, engine):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    with_agents(setup)
    setup.routes[0]["agents"] = [ALICE, ROOT]
    process = MailgateProcess(setup)
    await process.start()
    for email in (ALICE, ROOT):
        await give_password(engine, email, PASSWORD)
    yield process
    assert await process.stop() == 0


@pytest.fixture
async def second_page(browser):
    """A second browser (a context of its own: its own cookies), for another agent."""
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def sign_in(page, base: str, email: str) -> None:
    await page.goto(base + "/login?next=/tickets")
    await page.get_by_label("Email").first.fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}/tickets")


async def new_ticket(daemon, engine, subject: str, count: int) -> str:
    """Mail ``subject`` in by SMTP; the code of its ticket once it is processed."""
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail(subject))
    await settled(engine, count)
    async with sessions(engine)() as session:
        return await session.scalar(select(Ticket.code).where(Ticket.subject == subject))


async def test_a_second_browser_sees_mail_arrive_and_who_else_is_on_a_ticket(
    daemon, engine, page, second_page
):
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    code = await new_ticket(daemon, engine, "Printer on fire", 1)
    await sign_in(page, base, ALICE)
    await sign_in(second_page, base, ROOT)
    await expect(second_page.locator("table.tickets tbody tr")).to_have_count(1)

    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Scanner eats paper"))
    arrived = second_page.locator("table.tickets tbody tr", has_text="Scanner eats paper")
    await expect(arrived).to_be_visible(timeout=2000)
    await expect(second_page).to_have_title("(1) Inbox · mailgate")

    await page.goto(f"{base}/tickets/{code}")
    await second_page.goto(f"{base}/tickets/{code}")
    await expect(page.locator("#presence")).to_have_text("Root is viewing")
    await expect(second_page.locator("#presence")).to_have_text("Alice is viewing")
    await second_page.locator("form.compose:not(.note) textarea").fill("On my way")
    await expect(page.locator("#presence")).to_have_text("Root is typing a reply")

    await page.locator("form.note textarea").fill("Root has this one.")
    await page.get_by_role("button", name="Add note").click()
    await expect(second_page.locator(".msg-note")).to_contain_text("Root has this one.")
    await expect(second_page).to_have_title(f"(1) {code} Printer on fire · mailgate")
    await page.locator("#live-update select[name=status]").select_option("Escalated")
    await page.locator("#live-update").get_by_role("button", name="Save").click()
    await expect(second_page.locator("#live-head .badge").first).to_have_text("Escalated")
    # What Root typed was never touched by the updates.
    await expect(second_page.locator("form.compose:not(.note) textarea")).to_have_value("On my way")

    # Root leaves for the board (saying yes to leaving typed text): Alice sees them
    # go, then moves the ticket on, and Root's board follows.
    second_page.on("dialog", lambda dialog: dialog.accept())
    await second_page.goto(f"{base}/board")
    await expect(page.locator("#presence li")).to_have_count(0)
    await page.locator("#live-update select[name=status]").select_option("Pending")
    await page.locator("#live-update").get_by_role("button", name="Save").click()
    pending = second_page.locator(f'.column[data-status="Pending"] [data-code="{code}"]')
    await expect(pending).to_be_visible()


async def drafts(engine, code: str) -> dict[str, str]:
    async with sessions(engine)() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
        rows = await session.scalars(select(Draft).where(Draft.ticket_id == ticket.id))
        return {row.kind: row.text for row in rows}


async def test_a_draft_survives_other_actions_and_goes_out_with_its_status(
    daemon, engine, smarthost, page
):
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    code = await new_ticket(daemon, engine, "Cannot log in", 1)
    await sign_in(page, base, ALICE)
    await page.goto(f"{base}/tickets/{code}")
    reply = page.locator("form.compose:not(.note) textarea")
    note = page.locator("form.note textarea")

    # Typed and at once a status Save: the page saves the draft before it goes.
    await reply.fill("Your reset link is on its way.")
    await page.locator("#live-update select[name=status]").select_option("Open")
    await page.locator("#live-update").get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Ticket updated.")
    await expect(reply).to_have_value("Your reset link is on its way.")

    # Leaving with unsent text asks first; once saved, the text is there after a reload.
    warnings = []

    async def answer(dialog):
        warnings.append(dialog.type)
        await dialog.accept()

    page.on("dialog", answer)
    longer = "Your reset link is on its way. Check your spam folder too."
    await reply.fill(longer)

    async def saved():
        return (await drafts(engine, code)).get("reply") == longer

    await wait_until(saved, "the draft saved as the agent types")
    await page.reload()
    assert warnings == ["beforeunload"]
    await expect(reply).to_have_value(longer)

    # A merge that is refused keeps the reply and the note.
    await note.fill("Checked the mail logs.")
    await page.get_by_label("Merge into ticket").fill("TCK-NOPE")
    await page.get_by_role("button", name="Merge").click()
    await expect(page.get_by_role("alert")).to_contain_text("there is no ticket TCK-NOPE")
    await expect(reply).to_have_value(longer)
    await expect(note).to_have_value("Checked the mail logs.")

    # Send and set Pending: one step; the reply's draft is gone, the note's stays.
    await page.locator("form.compose:not(.note) select[name=status]").select_option("Pending")
    await page.get_by_role("button", name="Send and set Pending").click()
    await expect(page.get_by_role("status")).to_have_text("Reply sent to the customer.")
    await expect(page.locator("#live-head .badge").first).to_have_text("Pending")
    await expect(reply).to_have_value("")
    assert await drafts(engine, code) == {"note": "Checked the mail logs."}

    async with sessions(engine)() as session:
        items = await session.scalars(select(OutboxItem).order_by(OutboxItem.id))
        to_carol = [item.kind for item in items if CAROL in item.recipients]
    assert to_carol == ["acknowledgement", "agent_reply"]  # all there is: queued in the same commit

    async def delivered():
        found = [m for m in smarthost.messages if CAROL in m.rcpt_tos]
        return found if len(found) == 2 else None

    messages = await wait_until(delivered, "the acknowledgement and the reply delivered")
    assert "Check your spam folder too." in messages[-1].raw.decode()
    assert warnings == ["beforeunload"]  # a send is no leaving
