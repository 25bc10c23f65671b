"""Any sensible status set carries a ticket's whole life, and a merge closes a ticket
with the status meant for it.

A real daemon (SQLite and PostgreSQL), mail in through SMTP, a real smarthost sink,
changes through the API and the web pages, ``check-config`` as an admin runs it.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support import api_get, daemon_running
from tests.test_api_write import call
from tests.test_config import mailgate_cli
from tests.test_pipeline import mail, send, sent_to, settled, ticket, tickets
from tests.web import WebClient, give_password, with_agents

PASSWORD = "correct horse battery"
# The four statuses of a team that starts every ticket as Open.
BANGNOPI = [
    {"name": "Open", "category": "open"},
    {"name": "Pending", "category": "pending"},
    {"name": "Solved", "category": "solved"},
    {"name": "Closed", "category": "closed"},
]


@pytest.fixture
def statuses() -> list[dict]:
    return []  # the default set


@pytest.fixture
async def daemon(setup, smarthost, engine, statuses):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.statuses = statuses
    with_agents(setup)
    async with daemon_running(setup) as process:
        await give_password(engine, "root@example.test", PASSWORD)
        yield process


@pytest.fixture
async def root(daemon):
    client = WebClient(daemon.setup.web_port)
    await client.sign_in("root@example.test", PASSWORD)
    yield client
    await client.close()


async def patch(daemon, code: str, status: str) -> None:
    answer = await call(daemon, "PATCH", f"/api/v1/tickets/{code}", {"status": status})
    assert answer[0] == 200, answer


async def customer_writes(daemon, engine, subject: str, entries: int) -> None:
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail(subject, body="Any news?"))
    await settled(engine, entries)


@pytest.mark.parametrize("statuses", [BANGNOPI])
async def test_four_statuses_carry_a_ticket_from_open_to_closed(daemon, smarthost, engine, root):
    checked = await asyncio.to_thread(
        mailgate_cli,
        "--config",
        str(daemon.setup.config_path),
        "check-config",
        cwd=daemon.setup.directory,
    )
    assert checked.returncode == 0, checked.stderr
    await customer_writes(daemon, engine, "Printer on fire", 1)
    [new] = await tickets(daemon)
    code = new["code"]
    assert new["status"] == "Open"
    reply = {"kind": "agent", "text": "Unplug it, please.", "agent": "alice@example.test"}
    assert (await call(daemon, "POST", f"/api/v1/tickets/{code}/messages", reply))[0] == 201
    await patch(daemon, code, "Pending")
    await customer_writes(daemon, engine, f"Re: [{code}] Printer on fire", 2)
    assert (await ticket(daemon, code))["status"] == "Open"  # the reply reopened it
    await patch(daemon, code, "Solved")
    await smarthost.wait_for(5)  # to Carol: ack, reply, solved; to Alice: new, reply
    subjects = {m.message["Subject"] for m in sent_to(smarthost, "carol@client.test")}
    assert f"[{code}] Solved: Printer on fire" in subjects
    _, board, _ = await root.get("/board")
    assert [part.split('"')[0] for part in board.split('data-status="')[1:]] == [
        s["name"] for s in BANGNOPI
    ]
    await patch(daemon, code, "Closed")
    await customer_writes(daemon, engine, f"Re: [{code}] Printer on fire", 3)
    follow_up, closed = await tickets(daemon)
    assert closed["code"] == code and closed["status"] == "Closed"
    assert follow_up["code"] != code and follow_up["status"] == "Open"


async def test_a_merged_ticket_is_closed_not_unresolved(daemon, engine, root):
    for subject in ("Laptop broken", "Laptop still broken"):
        await asyncio.to_thread(send, daemon.setup.smtp_port, mail(subject))
    await settled(engine, 2)
    second, first = await tickets(daemon)
    page = f"/tickets/{first['code']}"
    form = {"target": second["code"], "confirmed": "1"}
    status, _, _ = await root.post(f"{page}/merge", form, csrf_from=page)
    assert status == 303
    assert (await ticket(daemon, first["code"]))["status"] == "Closed"
    unresolved = await api_get(daemon.setup, "/api/v1/tickets", status="Unresolved")
    assert unresolved["tickets"] == []
    _, report, _ = await root.get("/reports")
    assert "New: 1</title>" in report  # the survivor only: a merged ticket counts nowhere
