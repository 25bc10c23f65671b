"""Mail from machines, end to end: no acknowledgement, no agent notice, no loop.

A real daemon on SQLite and PostgreSQL, mail in through SMTP with the envelope sender
its Return-Path says (a non-null one: the case that used to be answered), a real
smarthost sink counting everything mailgate sends. Absence is proven with a barrier:
a customer's mail sent after the machines' mail, whose acknowledgement and agent
notice do arrive; by then the pipeline has taken every earlier entry, and the outbox
holds nothing else.
"""

from __future__ import annotations

import asyncio
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import AuditEvent, OutboxItem, Ticket
from tests.support import wait_until
from tests.test_pipeline import daemon, mail, send, sent_to, set_status, settled, ticket, tickets

__all__ = ["daemon"]  # the daemon fixture, with alice as the support queue's agent

pytestmark = pytest.mark.usefixtures("smarthost")
SAMPLES = Path(__file__).parent / "data" / "automatic"

MACHINES = [
    "exim_classic_nonnull_sender",
    "exchange_undeliverable_text",
    "precedence_auto_reply",
    "mailman2_moderation",
    "mailman3_moderation",
    "id_di_luar_kantor",
    "antivirus_delivery_failure",
    "gateway_mail_could_not_be_delivered",
    "de_exchange_unzustellbar",
]
# People whose mail only looks like the above: each is acknowledged.
LOOKALIKES = ["customer_delivery_failed_sentence", "customer_forwards_bounce_inline"]


def sample(name: str) -> tuple[bytes, str]:
    """A sample's bytes and its envelope sender (its Return-Path)."""
    raw = (SAMPLES / f"{name}.eml").read_bytes()
    return raw, BytesHeaderParser().parsebytes(raw)["Return-Path"].strip().strip("<>")


def customer_of(name: str) -> str:
    return sample(name)[1]


def sender_of(name: str) -> str:
    """The From address, which a ticket is opened for."""
    raw = (SAMPLES / f"{name}.eml").read_bytes()
    return parseaddr(BytesHeaderParser().parsebytes(raw)["From"])[1].lower()


async def outbox(engine) -> list[OutboxItem]:
    async with AsyncSession(engine) as session:
        return list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


async def received_all(smarthost, wanted: list[str]) -> None:
    """Wait until each address in ``wanted`` got a message (the barrier)."""

    async def arrived():
        return all(sent_to(smarthost, address) for address in wanted)

    await wait_until(arrived, f"mail to {', '.join(wanted)}")


async def test_machines_draw_no_mail_and_lookalike_customers_are_acknowledged(
    daemon, smarthost, engine
):
    port = daemon.setup.smtp_port
    for name in MACHINES + LOOKALIKES:  # the lookalikes come last: they are the barrier
        raw, envelope = sample(name)
        await asyncio.to_thread(send, port, raw, sender=envelope)
    await settled(engine, len(MACHINES) + len(LOOKALIKES))
    customers = [customer_of(name) for name in LOOKALIKES]
    await received_all(smarthost, [*customers, "alice@example.test"])

    queued = await outbox(engine)
    kinds = sorted(item.kind for item in queued)
    assert kinds == ["acknowledgement"] * 2 + ["agent_notification"] * 2
    await smarthost.wait_for(len(queued))
    assert len(smarthost.messages) == 4  # nothing to any machine, no notice of them
    assert {to for m in smarthost.messages for to in m.rcpt_tos} == {
        *customers,
        "alice@example.test",
    }
    lookalike_senders = {sender_of(name) for name in LOOKALIKES}
    listed = await tickets(daemon, limit=50)
    assert len(listed) == len(MACHINES) + len(LOOKALIKES)  # each stored and shown
    for summary in listed:
        [message] = (await ticket(daemon, summary["code"]))["messages"]
        automatic = summary["customer"]["email"] not in lookalike_senders
        assert bool(message["auto_reason"]) == automatic, message


async def test_no_reply_sender_gets_a_ticket_and_a_notice_but_no_acknowledgement(
    daemon, smarthost, engine
):
    raw, envelope = sample("customer_noreply_shop_system")
    await asyncio.to_thread(send, daemon.setup.smtp_port, raw, sender=envelope)
    await received_all(smarthost, ["alice@example.test"])  # the barrier: the agent's notice
    await settled(engine, 1)
    assert [item.kind for item in await outbox(engine)] == ["agent_notification"]
    [listed] = await tickets(daemon)
    assert listed["customer"]["email"] == "noreply@shop.partner.example"
    async with AsyncSession(engine) as session:
        skipped = await session.scalars(
            select(AuditEvent.data).where(AuditEvent.action == "ack_skipped")
        )
        assert [data["reason"] for data in skipped] == [
            "noreply@shop.partner.example takes no replies"
        ]


async def test_auto_reply_to_a_solved_ticket_is_stored_without_reopening_or_answer(
    daemon, smarthost, engine
):
    port = daemon.setup.smtp_port
    await asyncio.to_thread(send, port, mail("Printer on fire"))
    await smarthost.wait_for(2)  # acknowledgement and notice
    [ack] = sent_to(smarthost, "carol@client.test")
    [listed] = await tickets(daemon)
    code = listed["code"]
    await set_status(engine, code, "Solved")
    reply = mail(
        f"Automatic reply: [{code}] Printer on fire",
        body="I am out of the office until Monday.",
        extra=f"In-Reply-To: {ack.message['Message-ID']}\r\nPrecedence: auto_reply\r\n",
    )
    await asyncio.to_thread(send, port, reply)
    barrier = mail("Another question", sender="Dora <dora@client.test>")
    await asyncio.to_thread(send, port, barrier, sender="dora@client.test")
    await received_all(smarthost, ["dora@client.test"])
    await settled(engine, 3)
    shown = await ticket(daemon, code)
    assert shown["status"] == "Solved"
    assert [bool(m["auto_reason"]) for m in shown["messages"]] == [False, True]
    assert len(await outbox(engine)) == 4  # the two tickets' acknowledgements and notices
    await smarthost.wait_for(4)
    assert len(sent_to(smarthost, "carol@client.test")) == 1
    assert len(sent_to(smarthost, "alice@example.test")) == 2
    async with AsyncSession(engine) as session:
        solved = await session.scalar(select(Ticket.status).where(Ticket.code == code))
    assert solved == "Solved"
