"""An agent at work in Chromium, against a daemon fed through its SMTP port.

These flows also take the README's screenshots: into docs/screenshots/ when
``MAILGATE_SCREENSHOTS=1`` (to refresh them), else into the test's own directory.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from mailgate.db.models import OutboxItem
from mailgate.db.session import sessions
from tests.support import MailgateProcess, wait_until
from tests.test_pipeline import mail, send, settled
from tests.web import give_password, with_agents

PASSWORD = "correct horse battery"
README_SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
CUSTOMERS = [
    ("Carol Customer <carol@client.test>", "Printer on fire", "The toner smells of smoke."),
    ("Dewi Lestari <dewi@client.test>", "Cannot log in", "My password reset mail never came."),
    ("Erik Berg <erik@client.test>", "Invoice 2026-113 twice", "You charged me twice."),
    ("Fatima Noor <fatima@client.test>", "Feature idea: dark mode", "Please add a dark mode."),
    ("Gus Ortega <gus@client.test>", "Laptop battery swollen", "Is this covered?"),
]


@pytest.fixture
async def daemon(setup, smarthost, engine):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    with_agents(setup)
    setup.routes[0]["agents"] = ["alice@example.test", "root@example.test"]
    process = MailgateProcess(setup)
    await process.start()
    await give_password(engine, "alice@example.test", PASSWORD)
    yield process
    assert await process.stop() == 0


async def fill_inbox(daemon, engine) -> None:
    for sender, subject, body in CUSTOMERS:
        to = "billing@example.test" if "Invoice" in subject else "support@example.test"
        raw = mail(subject, body=body, sender=sender, to=to)
        address = sender.split("<")[1].rstrip(">")
        await asyncio.to_thread(send, daemon.setup.smtp_port, raw, [to], address)
    await settled(engine, len(CUSTOMERS))


async def mail_to(engine, address: str) -> list[OutboxItem]:
    async with sessions(engine)() as session:
        items = await session.scalars(select(OutboxItem).order_by(OutboxItem.id))
        return [item for item in items if address in item.recipients]


async def sign_in(page, base: str) -> None:
    await page.goto(base + "/tickets")
    await expect(page).to_have_url(f"{base}/login?next=/tickets")
    await page.get_by_label("Email").first.fill("alice@example.test")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}/tickets")


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where the screenshots go: the README's only when asked to refresh them."""
    if os.environ.get("MAILGATE_SCREENSHOTS") != "1":
        return tmp_path
    README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return README_SCREENSHOTS


async def test_agent_signs_in_searches_replies_notes_and_moves_cards(
    daemon, engine, smarthost, page, screenshots
):
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    await fill_inbox(daemon, engine)
    await sign_in(page, base)
    await expect(page.locator("table.tickets tbody tr")).to_have_count(4)  # not billing's
    await page.screenshot(path=screenshots / "inbox.png", full_page=True)

    await page.get_by_label("Search").fill("toner")
    await page.get_by_label("Search").press("Enter")
    await expect(page.locator("table.tickets tbody tr")).to_have_count(1)
    await page.get_by_role("link", name="Printer on fire").click()
    await expect(page.locator("h1")).to_contain_text("Printer on fire")
    code = (await page.locator("h1 .code").inner_text()).strip()

    await page.locator("form.compose:not(.note) textarea").fill("A technician is on the way.")
    await page.get_by_role("button", name="Send reply").click()
    await expect(page.get_by_role("status")).to_have_text("Reply sent to the customer.")

    async def reply_arrived():
        return [m for m in smarthost.messages if "technician is on the way" in m.raw.decode()]

    [reply] = await wait_until(reply_arrived, "the reply at the smarthost")
    assert reply.rcpt_tos == ("carol@client.test",)
    assert reply.message["From"].addresses[0].addr_spec == "support@example.test"
    assert code in reply.message["Subject"]
    before = len(await mail_to(engine, "carol@client.test"))

    await page.locator("form.note textarea").fill("Booked the technician for Tuesday.")
    await page.get_by_role("button", name="Add note").click()
    await expect(page.get_by_role("status")).to_have_text("Internal note added.")
    assert len(await mail_to(engine, "carol@client.test")) == before  # the note: nothing
    await expect(page.locator(".msg-note")).to_contain_text("Booked the technician")
    await page.screenshot(path=screenshots / "ticket.png", full_page=True)

    await page.goto(base + "/board")
    card = page.locator(f'.board-card[data-code="{code}"]')
    await card.locator("select").select_option("Solved")
    await card.get_by_role("button", name="Move").click()
    await expect(page.locator("h1")).to_have_text(f"Move {code} to Solved?")
    await page.get_by_role("button", name="Move and mail carol@client.test").click()
    await expect(page).to_have_url(base + "/board")
    solved = page.locator('.column[data-status="Solved"]')
    await expect(solved.locator(f'[data-code="{code}"]')).to_be_visible()
    other = page.locator('.column[data-status="New"] .board-card').first
    other_code = await other.get_attribute("data-code")
    await other.drag_to(page.locator('.column[data-status="Pending"]'))  # board.js
    pending = page.locator('.column[data-status="Pending"]')
    await expect(pending.locator(f'[data-code="{other_code}"] select')).to_have_value("Pending")
    await page.reload()
    await expect(pending.locator(f'[data-code="{other_code}"]')).to_be_visible()
    await page.screenshot(path=screenshots / "board.png", full_page=True)

    await page.goto(base + "/reports")
    await expect(page.locator("svg.chart").first).to_be_visible()
    await page.screenshot(path=screenshots / "reports.png", full_page=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_hostile_html_mail_runs_no_script(daemon, engine, corpus, page):
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    await asyncio.to_thread(send, daemon.setup.smtp_port, corpus("xss.eml"))
    await settled(engine, 1)
    dialogs, errors = [], []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    page.on("pageerror", lambda error: errors.append(str(error)))
    await sign_in(page, base)
    await page.get_by_role("link", name="Pretty mail").click()
    await expect(page.locator(".html-body")).to_contain_text("Hello support")
    await page.get_by_role("link", name="Show remote content").click()
    await expect(page.locator(".html-body img[src^='https://evil.example/']")).to_have_count(1)
    for link in await page.locator(".html-body a").all():
        href = await link.get_attribute("href")
        assert href is None or href.startswith("https://"), href
    await page.get_by_text("click me").click()  # its javascript: is gone
    # Only the page's own scripts (keyboard shortcuts); nothing the mail brought.
    hostile = "script:not([src^='/static/']), iframe, svg, form[action^='https://evil']"
    assert await page.locator(hostile).count() == 0
    assert dialogs == [] and errors == []
