"""Ticket codes and the mail customers read about their tickets: old codes keep threading
after ``[tickets] code_prefix`` changes, a follow-up carries its own code only, the
"solved" mail names the status as the customer's locale does, and a template override
added to a running daemon is used after SIGHUP.

A real daemon, a real smarthost sink; SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.support import daemon_running
from tests.test_api_write import call
from tests.test_pipeline import mail, send, sent_to, set_status, settled, tickets

STATUSES = [
    {"name": "New", "category": "new"},
    {"name": "Open", "category": "open"},
    {"name": "Resolved", "category": "solved", "labels": {"id": "Terselesaikan"}},
    {"name": "Closed", "category": "closed"},
]


@pytest.fixture
async def daemon(setup, smarthost, tmp_path):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.sections["tickets"] = {"code_prefix": "OLD"}
    setup.sections["templates"] = {"directory": str(tmp_path / "overrides")}
    setup.statuses = STATUSES
    async with daemon_running(setup) as process:
        yield process


async def reload(daemon) -> None:
    """SIGHUP, and wait until both worker processes and the daemon have reloaded."""
    done = daemon.log().count("config reloaded") + 3
    daemon.signal(signal.SIGHUP)
    deadline = asyncio.get_running_loop().time() + 30
    while daemon.log().count("config reloaded") < done:
        assert asyncio.get_running_loop().time() < deadline, daemon.log()
        await asyncio.sleep(0.05)


def acks(smarthost) -> list:
    return sent_to(smarthost, "carol@client.test")


async def test_codes_of_an_earlier_prefix_keep_threading(daemon, smarthost, engine):
    port = daemon.setup.smtp_port
    await asyncio.to_thread(send, port, mail("Invoice missing"))
    await settled(engine, 1)
    [old] = await tickets(daemon)
    assert old["code"].startswith("OLD-")
    daemon.setup.sections["tickets"]["code_prefix"] = "NEW"
    daemon.setup.write()
    await reload(daemon)
    await asyncio.to_thread(send, port, mail(f"Re: [{old['code']}] Invoice missing", "Any news?"))
    await asyncio.to_thread(send, port, mail("Another question"))
    await settled(engine, 3)
    newest, oldest = await tickets(daemon)
    assert newest["code"].startswith("NEW-") and oldest["code"] == old["code"]
    assert oldest["message_count"] == 2


async def test_a_follow_up_carries_its_own_code_only(daemon, smarthost, engine):
    port = daemon.setup.smtp_port
    await asyncio.to_thread(send, port, mail("Status test"))
    await settled(engine, 1)
    [closed] = await tickets(daemon)
    await set_status(engine, closed["code"], "Closed")
    await asyncio.to_thread(send, port, mail(f"Re: [{closed['code']}] Status test", "again"))
    await settled(engine, 2)
    follow_up, _ = await tickets(daemon)
    assert follow_up["subject"] == "Re: Status test"
    await smarthost.wait_for(2)
    subjects = {m.message["Subject"] for m in acks(smarthost)}
    assert f"[{follow_up['code']}] Re: Status test" in subjects


@pytest.mark.parametrize(
    ("route", "name"),
    [("support@example.test", "Resolved"), ("billing@example.test", "Terselesaikan")],
)
async def test_the_solved_mail_names_the_status_in_the_customers_language(
    daemon, smarthost, engine, route, name
):
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Printer", to=route), [route])
    await smarthost.wait_for(1)
    [listed] = await tickets(daemon)
    path = f"/api/v1/tickets/{listed['code']}"
    assert (await call(daemon, "PATCH", path, {"status": "Resolved"}))[0] == 200
    await smarthost.wait_for(2)
    solved = acks(smarthost)[-1].message
    assert solved["Subject"] == f"[{listed['code']}] {name}: Printer"
    assert f"{name.lower()}." in solved.get_content()
    assert "Solved" not in solved["Subject"] and "Selesai" not in solved["Subject"]


async def test_sighup_picks_up_a_template_override_added_after_start(daemon, smarthost, engine):
    port = daemon.setup.smtp_port
    await asyncio.to_thread(send, port, mail("Before"))
    [before] = await smarthost.wait_for(1)
    assert before.message["Subject"].endswith("] Before")
    override = daemon.setup.directory / "overrides" / "en" / "acknowledgement.txt"
    override.parent.mkdir(parents=True)
    override.write_text("Subject: We got it: {{ ticket.subject }}\n\nThanks, {{ team_name }}.\n")
    await reload(daemon)
    await asyncio.to_thread(send, port, mail("After"))
    await smarthost.wait_for(2)
    assert acks(smarthost)[-1].message["Subject"] == "We got it: After"
