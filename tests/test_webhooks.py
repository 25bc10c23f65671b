"""Webhooks: ticket events as signed JSON POSTs to a real aiohttp receiver on loopback.

Through a running daemon: a new ticket by mail, an agent's reply (from the web and by
mail, with a command), a solve, the customer's rating and reply each arrive once,
signed, in the API's shapes; a receiver that answers 500 or is down gets the event
later with the same delivery id; the admin page lists deliveries and sends a failed
one again. The worker on its own: a
rolled-back change sends nothing, a delivery gives up after its attempts, and one
whose body cannot be built fails alone while the others arrive.
"""

from __future__ import annotations

import html
import logging
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mailgate.config import config_from_text
from mailgate.db.migrate import upgrade
from mailgate.db.models import AuditEvent, Ticket, WebhookDelivery
from mailgate.db.session import sessions
from mailgate.runtime import RuntimeConfig
from mailgate.webhooks.queue import queue_event
from mailgate.webhooks.worker import WebhookWorker
from tests.receiver import Receiver
from tests.support import MailgateProcess, api_get, daemon_running, toml_value, wait_until
from tests.test_agents import ALICE, CAROL, Desk
from tests.test_api_write import conforms
from tests.test_pipeline import mail
from tests.test_satisfaction import rate, solved_mail_links
from tests.test_web_agent import PASSWORD, deliver
from tests.web import WebClient, give_password, with_agents

SECRET = "a shared secret"
OTHER_SECRET = "the solved-only secret"
EVERY_EVENT = ["ticket.created", "ticket.updated", "message.created", "ticket.solved"]
EVERY_EVENT += ["satisfaction.rated"]


@pytest.fixture
async def receiver():
    made = Receiver()
    await made.start()
    yield made
    await made.stop()


def hook(name: str, url: str, events: list[str], **extra) -> dict:
    return {"name": name, "url": url, "secret": SECRET, "events": events, **extra}


async def start_daemon(setup, engine, smarthost) -> MailgateProcess:
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    with_agents(setup)
    process = MailgateProcess(setup)
    await process.start()
    for agent in ("alice", "root"):
        await give_password(engine, f"{agent}@example.test", PASSWORD)
    return process


async def signed_in(daemon, name: str | None) -> WebClient:
    client = WebClient(daemon.setup.web_port)
    if name:
        await client.sign_in(f"{name}@example.test", PASSWORD)
    return client


async def deliveries(engine) -> list[WebhookDelivery]:
    async with sessions(engine)() as session:
        return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def api_ticket(detail: dict) -> dict:
    """The ticket as ``GET /api/v1/tickets`` lists it: the detail without its thread."""
    return {key: value for key, value in detail.items() if key != "messages"}


async def test_ticket_events_arrive_signed_in_the_api_shape(
    setup, engine, smarthost, receiver, tmp_path
):
    secret_file = tmp_path / "solved.secret"
    secret_file.write_text(OTHER_SECRET + "\n")
    solved_only = hook("solved-only", receiver.url, ["ticket.solved"], secret="")
    setup.webhooks = [
        hook("crm", receiver.url, EVERY_EVENT),
        solved_only | {"secret_file": str(secret_file)},
    ]
    daemon = await start_daemon(setup, engine, smarthost)
    alice, customer = await signed_in(daemon, "alice"), await signed_in(daemon, None)
    try:
        [code] = await deliver(daemon, engine, (mail("Screen flickers"), "support@example.test"))
        [created] = await receiver.events(1)
        page = f"/tickets/{code}"
        status, _, _ = await alice.post(f"{page}/reply", {"text": "Try a new cable."}, page)
        assert status == 303
        replied = (await receiver.events(2))[1]
        status, _, _ = await alice.post(f"{page}/update", {"status": "Solved"}, page)
        assert status == 303
        solved = (await receiver.events(4))[2:]
        links = await solved_mail_links(smarthost, code)
        status, _, _ = await rate(customer, links["Good"], "good", "Fast and friendly")
        assert status == 303
        rated = (await receiver.events(5))[4]
        shown = api_ticket(await api_get(daemon.setup, f"/api/v1/tickets/{code}"))
    finally:
        await alice.close()
        await customer.close()
        assert await daemon.stop() == 0

    # Exactly these five, each once: the rating came last, after the others were done.
    got = receiver.received
    assert len(got) == 5 and not receiver.refused
    assert len({r.delivery for r in got}) == 5
    for received in got:
        assert received.content_type == "application/json"
        assert received.user_agent.startswith("mailgate-webhooks/")
        assert received.payload["event"] == received.event
        assert received.payload["delivery"] == received.delivery
        assert str(uuid.UUID(received.delivery)) == received.delivery
        conforms(received.payload["ticket"], "Ticket")
        assert received.payload["ticket"]["code"] == code

    assert created.event == "ticket.created" and created.signed_with(SECRET)
    assert created.payload["message"]["text"].startswith("Hello, my printer is on fire.")
    conforms(created.payload["message"], "Message")
    assert replied.event == "message.created" and replied.signed_with(SECRET)
    assert replied.payload["message"]["kind"] == "agent"
    assert replied.payload["message"]["text"] == "Try a new cable."
    conforms(replied.payload["message"], "Message")
    # The solve goes to both webhooks, each signed with its own secret.
    by_secret = {r.signed_with(SECRET): r for r in solved}
    assert set(by_secret) == {True, False} and by_secret[False].signed_with(OTHER_SECRET)
    assert {r.event for r in solved} == {"ticket.solved"}
    assert by_secret[True].payload["ticket"]["status"] == "Solved"
    assert rated.event == "satisfaction.rated" and rated.signed_with(SECRET)
    assert rated.payload["rating"]["score"] == "good"
    assert rated.payload["rating"]["comment"] == "Fast and friendly"
    assert not rated.signed_with(OTHER_SECRET)
    assert rated.payload["ticket"] == shown  # as the API shows it (nothing changed since)
    states = {d.state for d in await deliveries(engine)}
    assert states == {"delivered"}


async def test_a_refusing_or_absent_receiver_gets_the_event_later(
    setup, engine, smarthost, receiver
):
    quick = {"retry_base_seconds": 0.5, "retry_cap_seconds": 2.0, "max_attempts": 8}
    strict_receiver = Receiver()
    await strict_receiver.start()
    setup.webhooks = [
        hook("crm", receiver.url, ["ticket.created"], **quick),
        hook("strict", strict_receiver.url, ["ticket.created"], max_attempts=1),
    ]
    daemon = await start_daemon(setup, engine, smarthost)
    root = await signed_in(daemon, "root")
    try:
        # 500, then 200: the same delivery, byte for byte, again.
        receiver.answers = [500]
        strict_receiver.answers = [503, 503]  # both tickets' events
        [first] = await deliver(daemon, engine, (mail("First"), "support@example.test"))
        [again] = await receiver.events(1)
        [refused] = receiver.refused
        assert refused.delivery == again.delivery and refused.body == again.body
        assert again.signed_with(SECRET) and again.payload["ticket"]["code"] == first

        # Down, then up: delivered once it is back.
        await receiver.stop()
        await deliver(daemon, engine, (mail("Second"), "support@example.test"))

        async def tried_while_down():
            rows = [d for d in await deliveries(engine) if d.webhook == "crm"]
            return len(rows) == 2 and rows[1].attempts >= 1 and rows[1].state == "queued"

        await wait_until(tried_while_down, "an attempt at the absent receiver")
        [down] = [d for d in await deliveries(engine) if d.webhook == "crm"][1:]
        assert down.last_status is None and "Connect" in down.last_error
        await receiver.start()
        [_, later] = await receiver.events(2)
        assert later.delivery == down.delivery_id and later.payload["ticket"]["subject"] == "Second"

        # One attempt only: failed, listed for the admin, sent again on request.
        async def strict_failed():
            rows = [d for d in await deliveries(engine) if d.webhook == "strict"]
            failed = [d for d in rows if d.state == "failed"]
            return failed if len(failed) == 2 else None

        failed = (await wait_until(strict_failed, "the strict webhook's failures"))[0]
        status, listing, _ = await root.get("/admin/webhooks")
        assert status == 200
        row = listing.split(f'id="delivery-{failed.id}"')[1].split("</tr>")[0]
        assert "ticket.created" in row and f'href="/tickets/{first}"' in row
        assert "failed" in row and "HTTP 503" in row and "Retry now" in row
        status, _, _ = await root.post(f"/admin/webhooks/{failed.id}/retry", {}, csrf_from=None)
        assert status == 403  # no CSRF token: refused, nothing queued
        status, _, response = await root.post(
            f"/admin/webhooks/{failed.id}/retry", {}, csrf_from="/admin/webhooks"
        )
        assert status == 303
        strict = await strict_receiver.events(1)
        assert [r.delivery for r in strict] == [failed.delivery_id]
        assert strict_receiver.refused[0].delivery == failed.delivery_id

        async def retried():
            rows = await deliveries(engine)
            return next(d for d in rows if d.id == failed.id).state == "delivered"

        await wait_until(retried, "the retried delivery recorded")
        _, listing, _ = await root.get(response.headers["Location"])
        row = listing.split(f'id="delivery-{failed.id}"')[1].split("</tr>")[0]
        assert "delivered" in row and "Retry now" not in row
    finally:
        await root.close()
        assert await daemon.stop() == 0
        await strict_receiver.stop()
    assert len(receiver.received) == 2 and len(strict_receiver.received) == 1


async def test_the_webhooks_page_is_for_admins(setup, engine, smarthost, receiver):
    setup.webhooks = [hook("crm", receiver.url, ["ticket.created"])]
    daemon = await start_daemon(setup, engine, smarthost)
    stranger, alice = await signed_in(daemon, None), await signed_in(daemon, "alice")
    try:
        status, _, response = await stranger.get("/admin/webhooks")
        assert status == 303 and response.headers["Location"].startswith("/login")
        assert (await alice.get("/admin/webhooks"))[0] == 403
        status, _, _ = await alice.post("/admin/webhooks/1/retry", {}, csrf_from="/tickets")
        assert status == 403
    finally:
        await stranger.close()
        await alice.close()
        assert await daemon.stop() == 0


async def test_agent_and_customer_mail_send_their_events(setup, engine, smarthost, receiver):
    setup.webhooks = [hook("crm", receiver.url, EVERY_EVENT)]
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.routes[0]["agents"] = [ALICE]
    setup.agents = [{"email": ALICE, "name": "Alice"}]
    async with daemon_running(setup) as daemon:
        desk = await Desk(daemon, smarthost, engine).open()
        await receiver.events(1)
        await desk.agent_mail("#status pending\n\nHello Carol, please switch it off.")
        mailed = (await receiver.events(3))[1:]
        reply = mail(f"Re: [{desk.code}] Printer on fire", body="It is off now.", sender=CAROL)
        await desk.deliver(reply, sender=CAROL)
        answered = (await receiver.events(4))[3]
    assert len(receiver.received) == 4 and receiver.received[0].event == "ticket.created"
    # The agent's mail: its reply and its command, in one transaction, two events.
    by_event = {r.event: r.payload for r in mailed}
    assert set(by_event) == {"message.created", "ticket.updated"}
    assert by_event["message.created"]["message"]["kind"] == "agent"
    assert by_event["message.created"]["message"]["from"] == ALICE
    assert by_event["ticket.updated"]["ticket"]["code"] == desk.code
    assert answered.event == "message.created" and answered.signed_with(SECRET)
    assert answered.payload["message"]["kind"] == "customer"
    assert answered.payload["message"]["text"].startswith("It is off now.")
    assert answered.payload["ticket"]["status"] == "Open"  # the customer's reply reopened it


def runtime_for(*hooks: dict, sla: tuple[dict, ...] = ()) -> RuntimeConfig:
    lines = []
    for table, items in (("webhooks", hooks), ("sla", sla)):
        for item in items:
            lines.append(f"[[{table}]]")
            lines += [f"{key} = {toml_value(value)}" for key, value in item.items()]
    return RuntimeConfig(config_from_text("\n".join(lines) + "\n", None))


async def new_ticket(engine) -> int:
    now = datetime.now(UTC)
    async with sessions(engine).begin() as session:
        ticket = Ticket(
            code=f"TCK-20261202-{uuid.uuid4().hex[:4].upper()}",
            subject="Printer on fire",
            customer_email="carol@client.test",
            queue="support",
            status="New",
            route_address="support@example.test",
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        await session.flush()
        return ticket.id


async def queue(engine, runtime: RuntimeConfig, ticket_id: int, event: str, **extra) -> int:
    async with sessions(engine).begin() as session:
        ticket = await session.get(Ticket, ticket_id)
        return queue_event(session, runtime.settings.webhooks, event, ticket, **extra)


async def test_a_rolled_back_change_sends_nothing(engine, receiver):
    await upgrade(engine)
    runtime = runtime_for(hook("crm", receiver.url, ["ticket.created", "ticket.solved"]))
    ticket_id = await new_ticket(engine)
    assert await queue(engine, runtime, ticket_id, "ticket.created") == 1
    assert await queue(engine, runtime, ticket_id, "ticket.updated") == 0  # not wanted
    with pytest.raises(RuntimeError):
        async with sessions(engine).begin() as session:
            ticket = await session.get(Ticket, ticket_id)
            ticket.status = "Solved"
            queue_event(session, runtime.settings.webhooks, "ticket.solved", ticket)
            await session.flush()
            raise RuntimeError("the change fails after queueing its event")
    sla = {"sla": {"target": "first_response", "due_at": "2026-12-02T12:00:00+00:00"}}
    with pytest.raises(ValueError, match="unknown webhook event"):
        await queue(engine, runtime, ticket_id, "ticket.exploded")
    worker = WebhookWorker(engine, runtime, "test-node")
    assert await worker.deliver_due() == 1
    # The barrier: a committed event after the rolled-back one.
    runtime = runtime_for(hook("crm", receiver.url, ["sla.breached"]))
    worker = WebhookWorker(engine, runtime, "test-node")
    assert await queue(engine, runtime, ticket_id, "sla.breached", data=sla) == 1
    assert await worker.deliver_due() == 1
    assert await worker.deliver_due() == 0
    got = await receiver.events(2)
    assert [r.event for r in got] == ["ticket.created", "sla.breached"]
    assert got[1].payload["sla"] == sla["sla"] and got[1].payload["ticket"]["status"] == "New"
    assert all(r.signed_with(SECRET) for r in got)


async def test_a_delivery_gives_up_after_its_attempts(engine, receiver):
    await upgrade(engine)
    quick = {"retry_base_seconds": 0.01, "retry_cap_seconds": 0.02, "max_attempts": 3}
    runtime = runtime_for(hook("crm", receiver.url, ["ticket.created"], **quick))
    ticket_id = await new_ticket(engine)
    await queue(engine, runtime, ticket_id, "ticket.created")
    receiver.answers = [500, 502, 500, 200]
    worker = WebhookWorker(engine, runtime, "test-node")

    async def settled():
        await worker.deliver_due()
        [delivery] = await deliveries(engine)
        return delivery if delivery.state == "failed" else None

    failed = await wait_until(settled, "the delivery to fail", interval=0.02)
    assert failed.attempts == 3 and failed.last_status == 500
    assert failed.last_error == "HTTP 500 Internal Server Error: try later"
    assert len(receiver.refused) == 3 and not receiver.received
    assert len({r.delivery for r in receiver.refused}) == 1
    assert len({r.body for r in receiver.refused}) == 1
    assert await worker.deliver_due() == 0  # failed stays failed


async def test_a_delivery_whose_body_cannot_be_built_fails_alone(
    setup, engine, smarthost, receiver, caplog
):
    """A status change stored without its details (as an import from another helpdesk
    leaves it) breaks the ticket's SLA, so its events' bodies: those fail at once
    with the reason, logged once and shown to the admin; the other ticket's events
    in the same batch, and later ones, arrive."""
    await upgrade(engine)
    policy = {"name": "standard", "first_response": "4h"}
    events = ["ticket.created", "ticket.updated"]
    runtime = runtime_for(hook("crm", receiver.url, events), sla=(policy,))
    broken, sound = await new_ticket(engine), await new_ticket(engine)
    async with sessions(engine).begin() as session:
        at = datetime.now(UTC)
        session.add(AuditEvent(ticket_id=broken, at=at, actor="import", action="status", data=None))
    for ticket_id, event in ((broken, "ticket.created"), (sound, "ticket.created")):
        assert await queue(engine, runtime, ticket_id, event) == 1
    assert await queue(engine, runtime, sound, "ticket.updated") == 1
    worker = WebhookWorker(engine, runtime, "test-node")
    with caplog.at_level(logging.INFO, logger="mailgate.webhooks.worker"):
        assert await worker.deliver_due() == 3
        assert await worker.deliver_due() == 0  # the failed one is not tried again
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    reason = "the body cannot be built: AttributeError: 'NoneType' object has no attribute 'get'"
    assert logged == [f"webhook delivery 1 failed after 1 attempt(s): {reason}"]
    # The barrier: an event queued after the broken one arrives too.
    assert await queue(engine, runtime, sound, "ticket.updated") == 1
    assert await worker.deliver_due() == 1
    got = await receiver.events(3)
    assert len(got) == 3 and not receiver.refused
    assert [r.event for r in got] == ["ticket.created", "ticket.updated", "ticket.updated"]
    async with sessions(engine)() as session:
        sound_code = (await session.get(Ticket, sound)).code
    assert [r.payload["ticket"]["code"] for r in got] == [sound_code] * 3
    failed, *delivered = await deliveries(engine)
    assert (failed.ticket_id, failed.state, failed.attempts) == (broken, "failed", 1)
    assert failed.last_status is None and failed.body is None
    assert failed.last_error == reason
    assert [(d.ticket_id, d.state) for d in delivered] == [(sound, "delivered")] * 3

    daemon = await start_daemon(setup, engine, smarthost)  # on the same database
    root = await signed_in(daemon, "root")
    try:
        status, listing, _ = await root.get("/admin/webhooks")
    finally:
        await root.close()
        assert await daemon.stop() == 0
    assert status == 200
    row = listing.split(f'id="delivery-{failed.id}"')[1].split("</tr>")[0]
    assert "failed" in row and "Retry now" in row
    assert reason in html.unescape(row)
