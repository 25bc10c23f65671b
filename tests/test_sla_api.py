"""The ``sla`` object of the API's tickets, through a running daemon, on both databases:
due times from creation, a missed first response, a reply that meets it, a pause."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from mailgate.config import ConfigError, parse_config
from mailgate.db.models import AuditEvent, Message, Ticket
from mailgate.db.session import sessions
from tests.support import api_get, daemon_running
from tests.test_api_write import call, conforms
from tests.test_pipeline import mail, send

POLICY = {
    "name": "standard",
    "queues": ["support"],
    "first_response": "4h",
    "next_response": "2h",
    "resolution": "2d",
    "warn_before": "1h",
    "escalate_to": "Escalated",
}


@pytest.fixture
async def daemon(setup, smarthost):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice"}]
    setup.sla = [POLICY]
    async with daemon_running(setup) as process:
        yield process


async def opened(daemon, smarthost, to: str) -> dict:
    before = len(smarthost.messages)
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Printer on fire", to=to), [to])
    await smarthost.wait_for(before + 1)
    tickets = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
    return tickets[0]


async def backdate(engine, code: str, hours: float) -> None:
    """As if everything that happened to the ticket happened ``hours`` earlier."""
    shift = timedelta(hours=hours)
    async with sessions(engine).begin() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
        ticket.created_at -= shift
        for message in await session.scalars(select(Message).where(Message.ticket_id == ticket.id)):
            message.created_at -= shift
        for event in await session.scalars(
            select(AuditEvent).where(AuditEvent.ticket_id == ticket.id)
        ):
            event.at -= shift


def at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


async def test_due_times_breaches_and_a_pause(daemon, smarthost, engine):
    ticket = await opened(daemon, smarthost, "support@example.test")
    conforms(ticket, "Ticket")
    sla, created = ticket["sla"], at(ticket["created_at"])
    assert sla["policy"] == "standard" and sla["breached"] == []
    assert at(sla["first_response_due_at"]) == created + timedelta(hours=4)
    assert at(sla["resolution_due_at"]) == created + timedelta(days=2)
    assert sla["next_response_due_at"] is None

    code = ticket["code"]
    await backdate(engine, code, 5)
    late = await api_get(daemon.setup, f"/api/v1/tickets/{code}")
    assert late["sla"]["breached"] == ["first_response"]
    assert at(late["sla"]["first_response_due_at"]) == created - timedelta(hours=1)

    reply = {"kind": "agent", "text": "Unplug it.", "agent": "alice@example.test"}
    status, _ = await call(daemon, "POST", f"/api/v1/tickets/{code}/messages", reply)
    assert status == 201
    status, pending = await call(daemon, "PATCH", f"/api/v1/tickets/{code}", {"status": "Pending"})
    assert status == 200, pending
    conforms(pending, "Ticket")
    sla = pending["sla"]
    assert sla["first_response_due_at"] is None and sla["breached"] == ["first_response"]
    # Pending for ten hours: the clock ran five hours, 43 are left from now. A clock
    # that had kept running would be due at created + 33h.
    await backdate(engine, code, 10)
    paused = (await api_get(daemon.setup, f"/api/v1/tickets/{code}"))["sla"]
    assert at(paused["resolution_due_at"]) >= created + timedelta(hours=43)
    assert paused["breached"] == ["first_response"]


async def test_a_ticket_no_policy_matches_has_no_sla(daemon, smarthost):
    ticket = await opened(daemon, smarthost, "billing@example.test")
    assert ticket["queue"] == "billing" and ticket["sla"] is None
    conforms(ticket, "Ticket")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"escalate_to": "Urgnt"}, r"sla\[0\]\.escalate_to: no status named 'Urgnt'"),
        ({"queues": ["suport"]}, r"sla\[0\]\.queues: no route has the queue 'suport'"),
        ({"resolution": "2 days"}, r"sla\[0\]\.resolution: .*not a duration"),
        ({"priorities": ["asap"]}, r"sla\[0\]\.priorities\[0\]"),
    ],
)
def test_a_bad_policy_is_a_config_error(change, message):
    lines = [f"{key} = {value!r}".replace("'", '"') for key, value in {**POLICY, **change}.items()]
    text = '[[routes]]\naddress = "support@example.test"\n\n[[sla]]\n' + "\n".join(lines)
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "t.toml")
