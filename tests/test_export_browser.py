"""*Export CSV* in Chromium: the inbox's, under a filter, and a report's, each read
back from the download and compared with what the page shows."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from playwright.async_api import expect

from tests.browser import browser, chromium, page  # noqa: F401
from tests.support import api_get
from tests.test_api_write import call
from tests.test_export import SUBJECTS, daemon, mailed, rows_of  # noqa: F401
from tests.test_web_browser import sign_in


async def download(tab, link) -> tuple[str, bytes]:
    """Click ``link`` on ``tab`` and wait for its download: the suggested name and
    the bytes."""
    async with tab.expect_download() as started:
        await link.click()
    got = await started.value
    assert await got.failure() is None
    saved = Path(await got.path())
    return got.suggested_filename, await asyncio.to_thread(saved.read_bytes)


async def test_the_inbox_exports_the_tickets_its_filter_shows(daemon, page):  # noqa: F811
    await mailed(daemon, *SUBJECTS)
    listed = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
    by_subject = {ticket["subject"]: ticket["code"] for ticket in listed}
    for subject in ('=HYPERLINK("http://evil.test","click")', "Invoice overdue", "-1+1"):
        change = {"priority": "high"}
        status, body = await call(daemon, "PATCH", f"/api/v1/tickets/{by_subject[subject]}", change)
        assert status == 200, body
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    await sign_in(page, base)  # alice: the support queue only, so not the invoice
    await page.locator('select[name="priority"]').select_option("high")
    await page.locator('select[name="sort"]').select_option("created")
    await page.locator('select[name="order"]').select_option("asc")
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/tickets\?.*priority=high.*sort=created&order=asc"))
    rows = page.locator("table.tickets tr[data-row]")
    await expect(rows).to_have_count(2)
    shown = [
        [(await cell.inner_text()).strip() for cell in await row.locator("td").all()]
        for row in await rows.all()
    ]

    name, body = await download(page, page.get_by_role("link", name="Export CSV"))
    assert name.startswith("mailgate-tickets-") and name.endswith(".csv")
    exported = rows_of(body)
    # code, subject, customer, queue, status, priority, as the table shows them
    assert [row[:1] + row[3:6] for row in shown] == [
        [r["code"], r["queue"], r["status"], r["priority"]] for r in exported
    ]
    assert [row[1] for row in shown] == ['=HYPERLINK("http://evil.test","click")', "-1+1"]
    # The same tickets, the cells a spreadsheet would run as formulas made text.
    assert [r["subject"] for r in exported] == ['\'=HYPERLINK("http://evil.test","click")', "'-1+1"]
    assert [r["customer_email"] for r in exported] == ["m@client.test", "plus@client.test"]
    assert [row[2].splitlines()[-1] for row in shown] == [r["customer_email"] for r in exported]
    assert [r["code"] for r in exported] == [by_subject[s] for s in (SUBJECTS[0][0], "-1+1")]


async def test_a_report_exports_the_figures_it_shows(daemon, page):  # noqa: F811
    await mailed(daemon, *SUBJECTS)
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    await sign_in(page, base)
    await page.goto(f"{base}/reports")
    by_queue = page.locator(
        "section.card", has=page.get_by_role("heading", name="Open tickets by queue")
    )
    queues = [q.strip() for q in await by_queue.locator("thead th").all_inner_texts()][1:]
    shown = {}
    for row in await by_queue.locator("tbody tr").all():
        status, *counts = [c.strip() for c in await row.locator("td").all_inner_texts()]
        shown |= {(status, q): n for q, n in zip(queues, counts, strict=True) if n != "0"}
    assert shown == {("New", "support"): "3"}  # alice's queue only

    by_status = page.locator(
        "section.card", has=page.get_by_role("heading", name="Open tickets by status")
    )
    name, body = await download(page, by_status.get_by_role("link", name="Export CSV"))
    assert name.endswith(".csv")
    exported = rows_of(body)
    assert list(exported[0]) == ["status", "queue", "tickets"]
    assert {(r["status"], r["queue"]): r["tickets"] for r in exported} == shown
    assert len(exported) == len(shown)
