"""The inbox's SLA filter in Chromium: an admin picks *Due: Overdue* and sees the
tickets whose first response is late, soonest due first. Takes the README's
screenshot of the overdue inbox (see test_web_browser.py for MAILGATE_SCREENSHOTS)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.support import MailgateProcess, api_get, wait_until
from tests.test_api_write import call
from tests.test_sla_timer import clock_file  # noqa: F401 - the fixture
from tests.test_web_browser import CUSTOMERS, PASSWORD, fill_inbox, screenshots  # noqa: F401
from tests.web import give_password, with_agents

POLICIES = [
    {"name": "urgent", "priorities": ["high", "urgent"], "first_response": "1h"},
    {"name": "standard", "first_response": "8h", "warn_before": "1h"},
]


@pytest.fixture
async def daemon(setup, smarthost, engine, clock_file):  # noqa: F811
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.sections["tickets"] = {"sla_check_seconds": 0.2}
    with_agents(setup)
    setup.sla = POLICIES
    process = MailgateProcess(setup)
    await process.start()
    await give_password(engine, "root@example.test", PASSWORD)
    yield process
    assert await process.stop() == 0


async def test_the_overdue_inbox(daemon, engine, page, screenshots, clock_file):  # noqa: F811
    await fill_inbox(daemon, engine)
    listed = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
    by_subject = {ticket["subject"]: ticket["code"] for ticket in listed}
    urgent = [by_subject["Laptop battery swollen"], by_subject["Printer on fire"]]
    for code in urgent:
        status, body = await call(
            daemon, "PATCH", f"/api/v1/tickets/{code}", {"priority": "urgent"}
        )
        assert status == 200, body
    late = {*urgent, by_subject["Invoice 2026-113 twice"]}  # billing's route is high
    clock_file.write_text(str(2 * 3600))

    async def overdue():
        found = await api_get(daemon.setup, "/api/v1/tickets", sla="overdue")
        codes = {ticket["code"] for ticket in found["tickets"]}
        return codes if codes == late else None

    await wait_until(overdue, "three overdue tickets")
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    await page.goto(base + "/login?next=/tickets")
    await page.get_by_label("Email").first.fill("root@example.test")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("table.tickets tbody tr")).to_have_count(len(CUSTOMERS))
    await page.locator("select[name=sla]").select_option("overdue")
    await page.locator("select[name=sort]").select_option("due")
    await page.locator("select[name=order]").select_option("asc")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("table.tickets tbody tr")).to_have_count(len(late))
    await page.screenshot(path=screenshots / "inbox-overdue.png", full_page=True)
