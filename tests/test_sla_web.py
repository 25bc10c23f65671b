"""What agents see of the SLA on the ticket page and the board, on both databases.

Tickets are stored with a known history a given time before now; the daemon computes
their targets when the page is asked for. Times left and overdue are shown to the
nearest minute, so the few seconds between storing and asking do not show.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailgate.localtime import format_local
from tests.sla_tickets import Story, section, store, text_of
from tests.support import MailgateProcess
from tests.web import WebClient, give_password, with_agents

PASSWORD = "correct horse battery"
JAKARTA = ZoneInfo("Asia/Jakarta")
POLICY = {
    "name": "Standard support",
    "queues": ["support"],
    "first_response": "4h",
    "next_response": "2h",
    "resolution": "2d",
}
ALICE = "alice@example.test"


@pytest.fixture
async def daemon(setup, engine):
    with_agents(setup)
    setup.agents[0]["timezone"] = "Asia/Jakarta"
    setup.sla = [POLICY]
    process = MailgateProcess(setup)
    await process.start()
    await give_password(engine, ALICE, PASSWORD)
    yield process
    assert await process.stop() == 0


@pytest.fixture
async def alice(daemon):
    client = WebClient(daemon.setup.web_port)
    await client.sign_in(ALICE, PASSWORD)
    yield client
    await client.close()


def wib(moment: datetime) -> str:
    return format_local(moment, JAKARTA)


def stories(now: datetime) -> dict[str, Story]:
    hours = lambda n: now - timedelta(hours=n)  # noqa: E731 - n hours ago
    return {
        "fresh": Story("TCK-20261201-AAAA", hours(1)),
        "late": Story(
            "TCK-20261201-BBBB", hours(6), status="Open",
            messages=[(hours(5), "agent", ALICE), (hours(3), "customer", "carol@client.test")],
            changes=[(hours(5), "Open", ALICE)],
        ),
        "waiting": Story(
            "TCK-20261201-CCCC", hours(10), status="Pending",
            messages=[(hours(9), "agent", ALICE)], changes=[(hours(8), "Pending", ALICE)],
        ),
        "solved": Story(
            "TCK-20261201-DDDD", hours(72), status="Solved",
            messages=[(hours(67), "agent", ALICE)], changes=[(hours(66), "Solved", ALICE)],
        ),
        "billing": Story("TCK-20261201-EEEE", hours(1), queue="billing"),
    }  # fmt: skip


def panel_rows(page: str) -> list[str]:
    panel = section(page, "card sla-panel")
    return [text_of(row) for row in re.findall(r"<tr.*?</tr>", panel, re.S)]


async def test_the_ticket_page_shows_each_target_its_due_time_and_state(daemon, alice, engine):
    now = datetime.now(UTC).replace(microsecond=0)
    found = stories(now)
    await store(engine, *found.values())
    hours = lambda n: now - timedelta(hours=n)  # noqa: E731

    _, page, _ = await alice.get(f"/tickets/{found['fresh'].code}")
    assert text_of(section(page, "card sla-panel")).startswith("SLA: Standard support")
    assert panel_rows(page) == [
        f"First response due {wib(hours(1) + timedelta(hours=4))} Running: 3h left",
        "Next response Not running: no customer message waiting",
        f"Resolution due {wib(hours(1) + timedelta(days=2))} Running: 1d 23h left",
    ]
    _, page, _ = await alice.get(f"/tickets/{found['late'].code}")
    assert panel_rows(page) == [
        f"First response Met {wib(hours(5))}",
        f"Next response due {wib(hours(1))} Breached: overdue by 1h",
        f"Resolution due {wib(hours(6) + timedelta(days=2))} Running: 1d 18h left",
    ]
    # Pending since two hours after it came in: 46 hours left once the clock runs again.
    _, page, _ = await alice.get(f"/tickets/{found['waiting'].code}")
    assert panel_rows(page) == [
        f"First response Met {wib(hours(9))}",
        "Next response Not running: no customer message waiting",
        f"Resolution due {wib(now + timedelta(hours=46))} Paused while pending: 1d 22h left",
    ]
    _, page, _ = await alice.get(f"/tickets/{found['solved'].code}")
    assert panel_rows(page) == [
        f"First response Breached: met late {wib(hours(67))}",
        "Next response Not running: the ticket is solved",
        f"Resolution Met {wib(hours(66))}",
    ]
    root = WebClient(daemon.setup.web_port)
    try:
        await give_password(engine, "root@example.test", PASSWORD)
        await root.sign_in("root@example.test", PASSWORD)
        status, page, _ = await root.get(f"/tickets/{found['billing'].code}")
    finally:
        await root.close()
    assert status == 200 and "Story TCK-20261201-EEEE" in page
    assert "sla-panel" not in page and "SLA:" not in page  # no policy for billing


async def test_board_cards_show_the_nearest_target(alice, engine):
    now = datetime.now(UTC).replace(microsecond=0)
    found = stories(now)
    await store(engine, *found.values())
    _, board, _ = await alice.get("/board")
    lines = {
        code: text_of(section(card, "small sla-due")) if "sla-due" in card else None
        for code, card in re.findall(r'data-code="([^"]+)">(.*?)</article>', board, re.S)
    }
    assert lines == {
        found["fresh"].code: "First response: 3h left",
        found["late"].code: "Next response: overdue 1h",
        found["waiting"].code: "Resolution: paused, 1d 22h left",
        found["solved"].code: None,
    }  # billing is not alice's queue
    assert 'class="small sla-due overdue">Next response: overdue 1h' in board
