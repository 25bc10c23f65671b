"""Local time: ticket codes dated by the team's day, times on pages, mail and reports
in the team's zone (or an agent's own), the API in UTC with its offset."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import update

from mailgate.config import ConfigError, parse_config
from mailgate.db.migrate import upgrade
from mailgate.db.models import Ticket
from mailgate.db.session import sessions
from mailgate.localtime import format_local, local_day, zone_named
from mailgate.pipeline.codes import unused_codes
from tests.support import api_get, daemon_running
from tests.test_portal import acknowledged
from tests.web import WebClient, give_password, with_agents

PASSWORD = "correct horse battery"
EVENING = datetime(2026, 7, 24, 20, 0, tzinfo=UTC)  # the next morning in Jakarta
JAKARTA = zone_named("Asia/Jakarta")


def test_a_time_reads_in_its_zone_with_the_abbreviation():
    assert format_local(EVENING, JAKARTA) == "2026-07-25 03:00 WIB"
    assert format_local(EVENING, zone_named("Europe/Berlin")) == "2026-07-24 22:00 CEST"
    assert format_local(EVENING.replace(tzinfo=None), zone_named("UTC")) == "2026-07-24 20:00 UTC"


def test_an_unknown_zone_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"tickets\.timezone: .*'Asia/Jakrta'"):
        parse_config('[tickets]\ntimezone = "Asia/Jakrta"\n', "x.toml")
    agent = '[[agents]]\nemail = "a@example.test"\ntimezone = "Mars/Olympus"\n'
    with pytest.raises(ConfigError, match=r"x.toml:3: agents\[0\]\.timezone"):
        parse_config(agent, "x.toml")
    assert parse_config("", "x.toml").tickets.timezone == "UTC"


async def test_codes_carry_the_team_day(engine):
    await upgrade(engine)
    async with sessions(engine)() as session:
        codes = await unused_codes(session, "TCK", local_day(EVENING, JAKARTA), 3)
    assert len(set(codes)) == 3 and all(code.startswith("TCK-20260725-") for code in codes)


@pytest.fixture
async def daemon(setup, smarthost, engine):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.sections["tickets"] = {"timezone": "Asia/Jakarta"}
    with_agents(setup)
    setup.agents[2]["timezone"] = "Europe/Berlin"  # root, an admin
    async with daemon_running(setup) as process:
        for agent in ("alice", "root"):
            await give_password(engine, f"{agent}@example.test", PASSWORD)
        yield process


async def signed_in(daemon, name: str) -> WebClient:
    client = WebClient(daemon.setup.web_port)
    await client.sign_in(f"{name}@example.test", PASSWORD)
    return client


async def created_at(engine, code: str, moment: datetime) -> None:
    async with sessions(engine).begin() as session:
        await session.execute(update(Ticket).where(Ticket.code == code).values(created_at=moment))


async def test_times_show_in_the_team_zone_or_the_agents_own(daemon, smarthost, engine):
    code, link = await acknowledged(daemon, smarthost)
    ticket = await api_get(daemon.setup, f"/api/v1/tickets/{code}")
    opened = datetime.fromisoformat(ticket["created_at"])
    assert code.split("-")[1] == f"{local_day(opened, JAKARTA):%Y%m%d}"  # the team's day
    await created_at(engine, code, EVENING)
    alice, root = await signed_in(daemon, "alice"), await signed_in(daemon, "root")
    try:
        _, page, _ = await alice.get(f"/tickets/{code}")
        assert "2026-07-25 03:00 WIB" in page and " UTC" not in page
        _, page, _ = await root.get(f"/tickets/{code}")
        assert "2026-07-24 22:00 CEST" in page and "WIB" not in page
        _, portal, _ = await alice.get(link)  # the customer's page: the team's zone
        assert "2026-07-25 03:00 WIB" in portal
        ticket = await api_get(daemon.setup, f"/api/v1/tickets/{code}")
        assert ticket["created_at"] == "2026-07-24T20:00:00+00:00"
        before = len(smarthost.messages)
        page = f"/tickets/{code}"
        status, _, _ = await alice.post(f"{page}/update", {"status": "Solved"}, csrf_from=page)
        assert status == 303
        solved = (await smarthost.wait_for(before + 1))[-1].message.get_content()
        assert "2026-07-25 03:00 WIB, as solved" in solved
    finally:
        await alice.close()
        await root.close()


async def test_reports_count_a_day_from_the_teams_midnight(daemon, smarthost, engine):
    code, _ = await acknowledged(daemon, smarthost)
    async with sessions(engine).begin() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.code == code)
            .values(status="Solved", created_at=EVENING, solved_at=EVENING)
        )
    root = await signed_in(daemon, "root")  # the team's days, whatever root's own zone
    try:
        for day, count in ((date(2026, 7, 25), 1), (date(2026, 7, 24), 0)):
            params = {"from": day.isoformat(), "to": day.isoformat()}
            status, report, _ = await root.get("/reports", params=params)
            assert status == 200 and f"{day.isoformat()}: {count}</title>" in report
    finally:
        await root.close()
