"""The SLA report on /reports, on both databases: tickets with a known history in a
past week, support counted in Jakarta office hours with a holiday, billing around the
clock; the shares, counts and credits a team lead reads. Also the README's
screenshots of a ticket's SLA panel and of the SLA report."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from tests.sla_tickets import Story, section, store, text_of
from tests.support import MailgateProcess
from tests.test_web_browser import screenshots  # noqa: F401 - the fixture
from tests.web import WebClient, give_password, with_agents

PASSWORD = "correct horse battery"
JAKARTA = ZoneInfo("Asia/Jakarta")
ALICE, BUDI, ROOT = "alice@example.test", "budi@example.test", "root@example.test"
CAROL = "carol@client.test"
OFFICE = {
    "name": "jakarta-office",
    "timezone": "Asia/Jakarta",
    "hours": {day: "08:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-08-17"],  # Independence Day, a Monday
}
POLICY = {"name": "Standard", "first_response": "4h", "next_response": "2h", "resolution": "16h"}


def wib(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JAKARTA).astimezone(UTC)


# The week of 10 to 16 August 2026 (Jakarta days), and a ticket after it.
WEEK = [
    # Friday 16:00: one office hour, then the holiday; answered Tuesday 10:30 (3.5
    # office hours) and solved by root at 15:00 (8 hours): both in time.
    Story("TCK-20260814-AAAA", wib("2026-08-14 16:00"), status="Solved", assignee=ALICE,
          messages=[(wib("2026-08-18 10:30"), "agent", ALICE)],
          changes=[(wib("2026-08-18 15:00"), "Solved", ROOT)]),
    # Answered after five office hours (late), the follow-up in 1.5 hours (in time),
    # solved after 18 office hours (late).
    Story("TCK-20260810-BBBB", wib("2026-08-10 09:00"), status="Solved", assignee=ALICE,
          messages=[(wib("2026-08-10 14:00"), "agent", ALICE),
                    (wib("2026-08-11 09:00"), "customer", CAROL),
                    (wib("2026-08-11 10:30"), "agent", ALICE)],
          changes=[(wib("2026-08-12 09:00"), "Solved", ALICE)]),
    # Billing, around the clock: answered in two hours, the follow-up never; open.
    Story("TCK-20260811-CCCC", datetime(2026, 8, 11, 10, tzinfo=UTC), queue="billing",
          status="Open", assignee=BUDI,
          messages=[(datetime(2026, 8, 11, 12, tzinfo=UTC), "agent", BUDI),
                    (datetime(2026, 8, 11, 13, tzinfo=UTC), "customer", CAROL)],
          changes=[(datetime(2026, 8, 11, 12, tzinfo=UTC), "Open", BUDI)]),
    # Nobody answered.
    Story("TCK-20260812-DDDD", wib("2026-08-12 09:00")),
    # Answered in half an hour, then waiting on the customer: resolution paused.
    Story("TCK-20260813-EEEE", wib("2026-08-13 09:00"), status="Pending", assignee=ALICE,
          messages=[(wib("2026-08-13 09:30"), "agent", ALICE)],
          changes=[(wib("2026-08-13 10:00"), "Pending", ALICE)]),
    # Created after the week: not counted.
    Story("TCK-20260820-FFFF", wib("2026-08-20 09:00")),
]  # fmt: skip
PERIOD = {"from": "2026-08-10", "to": "2026-08-16"}


@pytest.fixture
async def daemon(setup, engine):
    with_agents(setup)
    setup.sections["tickets"] = {"timezone": "Asia/Jakarta"}
    setup.calendars = [OFFICE]
    setup.routes[0]["calendar"] = "jakarta-office"
    setup.sla = [POLICY]
    process = MailgateProcess(setup)
    await process.start()
    for agent in (ALICE, ROOT):
        await give_password(engine, agent, PASSWORD)
    yield process
    assert await process.stop() == 0


async def signed_in(daemon, email: str) -> WebClient:
    client = WebClient(daemon.setup.web_port)
    await client.sign_in(email, PASSWORD)
    return client


def bars(page: str, title: str) -> list[str]:
    """The bars of the chart ``title``: "label: value" as their tooltips say."""
    chart = page.split(f"<title>{title}</title>", 1)[1].split("</svg>", 1)[0]
    return re.findall(r"<rect[^>]*><title>([^<]*)</title>", chart)


def table(page: str, heading: str) -> list[str]:
    card = page.split(f"<h2>{heading}</h2>", 1)[1].split("</section>", 1)[0]
    return [text_of(row) for row in re.findall(r"<tr>.*?</tr>", card, re.S)]


async def test_the_report_shows_the_share_within_each_target(daemon, engine):
    await store(engine, *WEEK)
    root = await signed_in(daemon, ROOT)
    try:
        status, page, _ = await root.get("/reports", params=PERIOD)
    finally:
        await root.close()
    assert status == 200
    report = section(page, "reports sla-report")
    assert text_of(report).count("within:") == 3
    assert "60% within: 3 of 5 tickets" in text_of(report)  # first response
    assert "50% within: 1 of 2 tickets" in text_of(report)  # next response
    assert "25% within: 1 of 4 tickets; 1 still running" in text_of(report)  # resolution
    title = "First response within target"
    assert bars(page, f"{title} by queue") == ["billing: 100% (1/1)", "support: 50% (2/4)"]
    assert bars(page, f"{title} by agent (who answered first)") == [
        "(unassigned): 0% (0/1)",
        "Alice: 67% (2/3)",
        "Budi: 100% (1/1)",
    ]
    title = "Next response within target"
    assert bars(page, f"{title} by queue") == ["billing: 0% (0/1)", "support: 100% (1/1)"]
    assert bars(page, f"{title} by agent (who answered first)") == [
        "Alice: 100% (1/1)",
        "Budi: 0% (0/1)",
    ]
    title = "Resolution within target"
    assert bars(page, f"{title} by queue") == ["billing: 0% (0/1)", "support: 33% (1/3)"]
    assert bars(page, f"{title} by agent (who solved it)") == [
        "(unassigned): 0% (0/1)",
        "Alice: 0% (0/1)",
        "Budi: 0% (0/1)",
        "Root: 100% (1/1)",
    ]
    assert table(page, "Within target by queue") == [
        "Queue First response Next response Resolution",
        "billing 1 of 1 (100%) 0 of 1 (0%) 0 of 1 (0%)",
        "support 2 of 4 (50%) 1 of 1 (100%) 1 of 3 (33%)",
    ]
    assert table(page, "Within target by agent") == [
        "Agent First response Next response Resolution",
        "(unassigned) 0 of 1 (0%) — 0 of 1 (0%)",
        "Alice 2 of 3 (67%) 1 of 1 (100%) 0 of 1 (0%)",
        "Budi 1 of 1 (100%) 0 of 1 (0%) 0 of 1 (0%)",
        "Root — — 1 of 1 (100%)",
    ]
    assert "Service levels: tickets created in the period" in page

    alice = await signed_in(daemon, ALICE)  # support only: billing is not hers
    try:
        _, mine, _ = await alice.get("/reports", params=PERIOD)
    finally:
        await alice.close()
    assert table(mine, "Within target by queue") == [
        "Queue First response Next response Resolution",
        "support 2 of 4 (50%) 1 of 1 (100%) 1 of 3 (33%)",
    ]


async def test_screenshots_of_the_sla_panel_and_report(daemon, engine, page, screenshots):  # noqa: F811
    now = datetime.now(UTC).replace(microsecond=0)
    current = Story(
        "TCK-20261201-GGGG", now - timedelta(hours=3), status="Open", assignee=ALICE,
        messages=[(now - timedelta(hours=2), "agent", ALICE),
                  (now - timedelta(minutes=30), "customer", CAROL)],
        changes=[(now - timedelta(hours=2), "Open", ALICE)],
    )  # fmt: skip
    await store(engine, *WEEK, current)
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    await page.goto(base + "/login")
    await page.get_by_label("Email").first.fill(ROOT)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.goto(f"{base}/tickets/{current.code}")
    panel = page.get_by_role("region", name="Service level")
    await expect(panel).to_contain_text("SLA: Standard")
    await expect(panel.locator("tr.sla-met td")).to_contain_text("Met")
    await page.locator("aside.sidebar").screenshot(path=screenshots / "sla-panel.png")
    await page.goto(f"{base}/reports?from={PERIOD['from']}&to={PERIOD['to']}#sla")
    report = page.locator(".sla-report")
    await expect(report).to_contain_text("60% within: 3 of 5 tickets")
    await report.screenshot(path=screenshots / "sla-report.png")
