"""The SLA timer through the running daemon, with the clock moved forward by the test
(``MAILGATE_CLOCK_FILE``), on both databases: a warning to the assignee, a breach that
escalates and tells the queue's agents and the admins, the ticket overdue in the inbox,
the API and on its board card and missed in the report, a pending ticket left alone,
and timers racing on one database (the daemon's and two more) sending each notice
once."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mailgate.actions import ActionContext
from mailgate.clock import CLOCK_FILE_VARIABLE, Clock
from mailgate.config import Sla, load_config
from mailgate.db.models import AuditEvent, Ticket
from mailgate.db.session import create_engine, sessions
from mailgate.runtime import RuntimeConfig
from mailgate.sla.due import Due, Targets
from mailgate.sla.notices import notices_due
from mailgate.sla.tickets import TicketSla
from mailgate.sla.timer import SlaTimer
from mailgate.work import pipeline_deps
from tests.receiver import Receiver
from tests.sla_tickets import section, text_of
from tests.support import api_call, api_get, daemon_running, wait_until
from tests.test_api_write import call
from tests.test_pipeline import mail, send
from tests.test_web_agent import PASSWORD, deliver
from tests.web import WebClient, codes_on, give_password, with_agents

POLICY = {
    "name": "standard",
    "queues": ["support"],
    "first_response": "4h",
    "warn_before": "1h",
    "escalate_to": "Escalated",
}
HOUR = 3600


@pytest.fixture
def clock_file(tmp_path, monkeypatch):
    """The file the daemon (started after this) reads its SLA clock's offset from."""
    path = tmp_path / "clock-offset"
    monkeypatch.setenv(CLOCK_FILE_VARIABLE, str(path))
    return path


@pytest.fixture
async def receiver():
    """A webhook receiver for the breach events (and new tickets, the barrier)."""
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def daemon(setup, smarthost, engine, clock_file, receiver):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.sections["tickets"] = {"sla_check_seconds": 0.2}
    with_agents(setup)  # alice works support, root is an admin
    setup.routes[0]["agents"].append("dewi@example.test")
    setup.agents.append({"email": "dewi@example.test", "name": "Dewi"})
    setup.sla = [POLICY]
    hook = {"name": "crm", "url": receiver.url, "secret": "s3cret"}
    setup.webhooks = [hook | {"events": ["ticket.created", "sla.breached"]}]
    async with daemon_running(setup) as process:
        await give_password(engine, "alice@example.test", PASSWORD)
        yield process


@pytest.fixture
async def more_timers(daemon, database_url, clock_file):
    """Two more timers on the daemon's database, as two other nodes would run them."""
    runtime = RuntimeConfig(load_config(str(daemon.setup.config_path)), None, Clock(clock_file))
    actions = ActionContext(runtime, pipeline_deps(runtime).composer)
    engines = [create_engine(database_url) for _ in range(2)]
    yield [SlaTimer(engine, actions) for engine in engines]
    for engine in engines:
        await engine.dispose()


def notices(smarthost, code: str, words: str) -> list[tuple[str, ...]]:
    """The recipients of each mail about ``code`` whose subject has ``words``."""
    return [m.rcpt_tos for m in smarthost.messages if f"[{code}] {words}" in _subject(m)]


async def race(timers, clock_file, hours: float) -> None:
    """Move the clock to ``hours`` ahead and have the extra timers look at once."""
    clock_file.write_text(str(hours * HOUR))
    await asyncio.gather(*(timer.check_once() for timer in timers))


async def test_warned_breached_escalated_overdue_once(
    daemon, smarthost, engine, more_timers, clock_file, receiver
):
    codes = await deliver(
        daemon,
        engine,
        (mail("Printer on fire"), "support@example.test"),
        (mail("Paper jam"), "support@example.test"),
    )
    late, waiting = codes
    for code, change in (
        (late, {"assignee": "alice@example.test"}),
        (waiting, {"status": "Pending"}),
    ):
        status, body = await call(daemon, "PATCH", f"/api/v1/tickets/{code}", change)
        assert status == 200, body

    await race(more_timers, clock_file, 3.25)
    warned = await wait_until(
        lambda: _found(notices(smarthost, late, "First response due")), "warning"
    )
    assert warned == [("alice@example.test",)]

    await race(more_timers, clock_file, 4.25)

    async def three_breach_mails():
        found = notices(smarthost, late, "SLA missed, first response")
        return found if len(found) >= 3 else None

    breached = await wait_until(three_breach_mails, "breach mail")
    assert sorted(rcpt for (rcpt,) in breached) == [
        "alice@example.test",
        "dewi@example.test",
        "root@example.test",
    ]
    ticket = await api_get(daemon.setup, f"/api/v1/tickets/{late}")
    assert ticket["status"] == "Escalated"
    assert ticket["sla"]["breached"] == ["first_response"]
    async with sessions(engine)() as session:
        events = await session.scalars(
            select(AuditEvent)
            .join(Ticket, Ticket.id == AuditEvent.ticket_id)
            .where(Ticket.code == late, AuditEvent.action == "sla_breach")
        )
        assert [event.data["target"] for event in events] == ["first_response"]

    overdue = await wait_until(lambda: _overdue_codes(daemon), "the overdue list")
    assert overdue == [late]
    status, body = await api_call(daemon.setup, "/api/v1/tickets", sla="late")
    assert status == 422 and "sla" in body["error"]["message"]
    inbox = WebClient(daemon.setup.web_port)
    try:
        await inbox.sign_in("alice@example.test", PASSWORD)
        _, page, _ = await inbox.get("/tickets?sla=overdue&sort=due&order=asc")
        assert codes_on(page) == [late]
        _, page, _ = await inbox.get(f"/tickets/{late}")
        assert "first_response target of SLA standard was missed" in page
        # Two days on, the board's card and the report read the same clock. Overdue
        # is shown to the hour beyond a day: "2d" whatever the test's own pace.
        await race(more_timers, clock_file, 52.25)
        status, page, _ = await inbox.get("/board")
        assert status == 200
        cards = board_cards(page)
        assert sla_line(cards[late]) == ("First response: overdue 2d", True)
        assert sla_line(cards[waiting])[1] is False
        status, page, _ = await inbox.get("/reports")
        assert status == 200
        report = text_of(section(page, "reports sla-report"))
        # Missed: the late one; the pending one's target is still running (paused).
        assert report.startswith(
            "First response within target by queue 0% within: 0 of 1 tickets; 1 still running "
        )
        rows = re.findall(r"<tr>.*?</tr>", section(page, "small sla-table"), re.S)
        assert [text_of(row) for row in rows] == ["Queue First response", "support 0 of 1 (0%)"]
    finally:
        await inbox.close()

    # Alice answers: the ticket is no longer overdue.
    reply = {"kind": "agent", "text": "On our way.", "agent": "alice@example.test"}
    status, body = await call(daemon, "POST", f"/api/v1/tickets/{late}/messages", reply)
    assert status == 201, body
    await wait_until(lambda: _none_overdue(daemon), "an empty overdue list")

    # Barrier: the timers look once more, then a new ticket's mail comes through;
    # nothing more about the two tickets came meanwhile.
    await asyncio.gather(*(timer.check_once() for timer in more_timers))
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Barrier"), ["support@example.test"])
    await wait_until(
        lambda: _found([m for m in smarthost.messages if "Barrier" in _subject(m)]), "barrier"
    )
    assert len(notices(smarthost, late, "First response due")) == 1
    assert len(notices(smarthost, late, "SLA missed")) == 3
    assert notices(smarthost, waiting, "First response due") == []
    assert notices(smarthost, waiting, "SLA missed") == []
    # The webhook: one breach event, after both tickets' and before the barrier's.
    events = await receiver.events(4)
    assert [(e.event, e.payload["ticket"]["code"]) for e in events][2:] == [
        ("sla.breached", late),
        ("ticket.created", events[3].payload["ticket"]["code"]),
    ]
    assert events[3].payload["ticket"]["subject"] == "Barrier"
    assert events[2].payload["sla"] == {
        "target": "first_response",
        "due_at": events[2].payload["sla"]["due_at"],
        "policy": "standard",
    }
    assert all(event.signed_with("s3cret") for event in events)


def board_cards(page: str) -> dict[str, str]:
    """The board's cards, by ticket code: each card's HTML."""
    found = re.findall(
        r'<article class="board-card"[^>]*data-code="([^"]+)">(.*?)</article>', page, re.S
    )
    return dict(found)


def sla_line(card: str) -> tuple[str, bool] | None:
    """A card's SLA line, as web/sla_view.py writes it, and whether it is overdue."""
    found = re.search(r'<p class="small sla-due( overdue)?">([^<]*)</p>', card)
    return (found[2], bool(found[1])) if found else None


async def _found(items: list):
    return items or None


def _subject(message) -> str:
    return str(message.message["Subject"])


async def _overdue_codes(daemon) -> list[str] | None:
    listed = await api_get(daemon.setup, "/api/v1/tickets", sla="overdue")
    return [ticket["code"] for ticket in listed["tickets"]] or None


async def _none_overdue(daemon) -> bool:
    return not (await api_get(daemon.setup, "/api/v1/tickets", sla="overdue"))["tickets"]


TARGETS = Targets(timedelta(hours=4), timedelta(hours=2), timedelta(days=2))


def test_which_notices_a_tickets_due_times_call_for():
    now = datetime(2026, 7, 25, 12, 0, tzinfo=UTC)
    policy = Sla(name="standard", warn_before="1h")
    due = Due(
        first_response=now - timedelta(minutes=1),  # missed
        next_response=now + timedelta(minutes=30),  # within the warning
        resolution=now + timedelta(hours=2),  # not yet
        breached=("first_response",),
    )
    notices = notices_due(policy, TicketSla("standard", due, TARGETS), now)
    assert [(n.kind, n.target, n.round) for n in notices] == [
        ("breach", "first_response", ""),
        ("warning", "next_response", (now + timedelta(minutes=30)).isoformat()),
    ]
    quiet = Sla(name="quiet")  # no warn_before: breaches only
    assert [n.kind for n in notices_due(quiet, TicketSla("quiet", due, TARGETS), now)] == ["breach"]
