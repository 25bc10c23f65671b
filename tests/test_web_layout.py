"""Every agent page in Chromium on a phone (390 px) and checked by axe-core; the
keyboard shortcuts, the header menu, the skip link, pages and confirmations.

axe-core comes with the ``axe-playwright-python`` test dependency (its axe.min.js,
MPL-2.0); the tests inject it into each page and want no violation at all.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import axe_playwright_python
import pytest
from playwright.async_api import expect

from tests.support import MailgateProcess
from tests.test_pipeline import mail, send, settled
from tests.test_web_browser import PASSWORD, screenshots  # noqa: F401 (a fixture)
from tests.web import give_password, with_agents

AXE = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1280, "height": 860}
CUSTOMERS = [
    ("Carol Customer <carol@client.test>", "Printer on fire"),
    ("dewi@client.test", "Cannot log in"),  # no display name
    ("Erik Berg <erik@client.test>", "A subject long enough to wrap on a phone screen twice"),
    ("Fatima Noor <fatima@client.test>", "Feature idea: dark mode"),
    ("Gus Ortega <gus@client.test>", "Laptop battery swollen"),
]


@pytest.fixture
async def daemon(setup, engine):
    """Alice and Root work the support queue; Root is an admin. No smarthost: the
    acknowledgements are captured, so the admin outbox has pages to show."""
    with_agents(setup)
    setup.routes[0]["agents"] = ["alice@example.test", "root@example.test"]
    process = MailgateProcess(setup)
    await process.start()
    for agent in ("alice", "root"):
        await give_password(engine, f"{agent}@example.test", PASSWORD)
    for sender, subject in CUSTOMERS:
        address = sender.split("<")[-1].rstrip(">")
        raw = mail(subject, body=f"About: {subject}.", sender=sender)
        await asyncio.to_thread(send, process.setup.smtp_port, raw, sender=address)
    await settled(engine, len(CUSTOMERS))
    yield process
    assert await process.stop() == 0


def span(first: int, last: int, total: int = 5) -> str:
    """What the inbox's pager says, "3 to 4 of 5" with an en dash."""
    return f"{first}\N{EN DASH}{last} of {total}"


def base_of(daemon) -> str:
    return f"http://127.0.0.1:{daemon.setup.web_port}"


async def sign_in(page, base: str, who: str = "root") -> None:
    await page.goto(base + "/login")
    await page.get_by_label("Email").first.fill(f"{who}@example.test")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(base + "/tickets")


async def fits_and_passes_axe(page, what: str) -> None:
    """No horizontal scrolling at the page's width, and no axe-core violation."""
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{what}: {width} px wide"
    await page.evaluate(AXE)
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    found = [
        (v["id"], v["help"], [n["html"][:120] for n in v["nodes"][:3]])
        for v in result["violations"]
    ]
    assert found == [], what


async def ticket_code(page, subject: str) -> str:
    row = page.locator("table.tickets tbody tr", has_text=subject)
    return (await row.locator("td.code").inner_text()).strip()


async def agent_pages(page, base: str) -> list[str]:
    """The paths of every agent page (and the error pages an agent may meet)."""
    code = await ticket_code(page, "Printer on fire")
    await page.goto(base + "/admin/outbox")
    item = await page.locator("#outbox a").first.get_attribute("href")
    return [
        "/tickets",
        "/tickets?limit=2",
        f"/tickets/{code}",
        "/board",
        "/reports",
        "/status",
        "/admin/quarantine",
        "/admin/outbox",
        item,
        "/tickets/TCK-20200101-ZZZZ",
        "/no/such/page",
        "/reports?from=2026-13-45",
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_agent_page_fits_a_phone_and_passes_axe(daemon, browser, screenshots):  # noqa: F811
    base = base_of(daemon)
    for viewport in (PHONE, WIDE):
        context = await browser.new_context(viewport=viewport)
        page = await context.new_page()
        await page.goto(base + "/login")
        await fits_and_passes_axe(page, "/login")
        await sign_in(page, base)
        for path in await agent_pages(page, base):
            await page.goto(base + path)
            await fits_and_passes_axe(page, f"{path} at {viewport['width']} px")
        await context.close()

    context = await browser.new_context(viewport=PHONE)
    page = await context.new_page()
    await sign_in(page, base)
    await page.get_by_role("link", name="Printer on fire").click()
    await page.screenshot(path=screenshots / "ticket-phone.png", full_page=True)
    # The header is one "Menu" button on a phone; it opens without any script.
    menu = page.locator("header.top nav")
    await expect(menu).to_be_hidden()
    await page.get_by_text("Menu").click()
    await expect(menu.get_by_role("link", name="Board")).to_be_visible()
    await fits_and_passes_axe(page, "the open menu")
    await menu.get_by_role("link", name="Board").click()
    await expect(page).to_have_url(base + "/board")
    await context.close()

    context = await browser.new_context(viewport=WIDE)
    page = await context.new_page()
    await sign_in(page, base, "alice")
    await expect(page.get_by_text("Menu")).to_be_hidden()  # wide: the links show
    await expect(page.locator("header.top nav").get_by_role("link", name="Board")).to_be_visible()
    await page.goto(base + "/admin/outbox")
    await expect(page.locator("h1")).to_have_text("Not allowed")
    await expect(page.locator("main")).to_contain_text("This page is for admins.")
    await expect(page.get_by_role("link", name="Back to the inbox")).to_be_visible()
    await fits_and_passes_axe(page, "403")
    await context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_keyboard_shortcuts_skip_link_and_help(daemon, page):
    base = base_of(daemon)
    await sign_in(page, base)
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()

    search = page.get_by_label("Search", exact=True)
    await page.keyboard.press("/")
    await expect(search).to_be_focused()
    await page.keyboard.type("jk/o")  # typing in a field is typing
    await expect(search).to_have_value("jk/o")
    await search.fill("")
    await page.locator("h1").click()  # out of the field

    rows = page.locator("table.tickets tbody tr")
    await page.keyboard.press("j")
    await expect(rows.nth(0).locator("a").first).to_be_focused()
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    await page.keyboard.press("k")
    await expect(rows.nth(1).locator("a").first).to_be_focused()
    subject = (await rows.nth(1).locator("td").nth(1).locator("a").inner_text()).strip()
    await page.keyboard.press("o")
    await expect(page.locator("h1")).to_contain_text(subject)

    reply = page.locator("form[action$='/reply'] textarea")
    await page.keyboard.press("r")
    await expect(reply).to_be_focused()
    await page.keyboard.type("?ojr")
    await expect(reply).to_have_value("?ojr")
    await expect(page.locator("#keys-help")).to_be_hidden()
    await page.locator("h1").click()
    await page.keyboard.press("?")
    await expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    await fits_and_passes_axe(page, "the help overlay")
    await page.keyboard.press("Escape")
    await expect(page.locator("#keys-help")).to_be_hidden()

    await page.go_back()
    await page.keyboard.press("j")
    await page.keyboard.press("Enter")  # Enter opens the chosen row as well
    await expect(page.locator("form[action$='/reply']")).to_be_visible()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_pages_names_and_a_confirmed_merge_in_the_browser(daemon, page):
    base = base_of(daemon)
    await sign_in(page, base)
    pager = page.locator("nav.pager")
    await page.goto(base + "/tickets?limit=2&queue=support")
    await expect(pager).to_contain_text(span(1, 2))
    await expect(pager.get_by_role("link", name="First")).to_have_count(0)
    await pager.get_by_role("link", name="Older").click()
    await expect(pager).to_contain_text(span(3, 4))
    await pager.get_by_role("link", name="Older").click()
    await expect(pager).to_contain_text(span(5, 5))
    await expect(pager.get_by_role("link", name="Older")).to_have_count(0)
    await pager.get_by_role("link", name="Newer").click()
    await expect(pager).to_contain_text(span(3, 4))
    await pager.get_by_role("link", name="First").click()
    await expect(pager).to_contain_text(span(1, 2))
    assert "queue=support" in page.url and "limit=2" in page.url

    await page.goto(base + "/tickets")
    bare = page.locator("table.tickets tbody tr", has_text="Cannot log in")
    assert (await bare.inner_text()).count("dewi@client.test") == 1
    source = await ticket_code(page, "Cannot log in")
    target = await ticket_code(page, "Printer on fire")
    await bare.get_by_role("link", name="Cannot log in").click()
    await page.get_by_label("Assignee").select_option(label="Alice")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".event", has_text="assigned")).to_contain_text(
        "Root assigned the ticket to Alice"
    )

    await page.get_by_label("Merge into ticket").fill(target)
    await page.get_by_role("button", name="Merge", exact=True).click()
    await expect(page.locator("h1")).to_have_text(f"Merge {source} into {target}?")
    await page.get_by_role("button", name=f"Merge {source} into {target}").click()
    await expect(page).to_have_url(f"{base}/tickets/{target}?merged={source}")
    line = page.locator(".event", has_text="merged")
    await expect(line).to_contain_text(f"Root merged {source} into this ticket")
    assert (await line.inner_text()).count(source) == 1
    await line.get_by_role("link", name=source).click()
    await expect(page).to_have_url(re.compile(f"/tickets/{target}"))  # the merged one leads on
