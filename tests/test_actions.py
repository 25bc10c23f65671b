"""Ticket actions (mailgate.actions) against a real database, SQLite and PostgreSQL.

Each action runs in a transaction of the test's own, as the web and the pipeline
call it; the outgoing mail it queues is read back from the outbox and parsed.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from mailgate.actions import (
    UNSET,
    ActionContext,
    ActionError,
    NewAttachment,
    add_note,
    agent_reply,
    merge_tickets,
    split_message,
    update_ticket,
)
from mailgate.config import LoadedConfig, parse_config
from mailgate.db.migrate import upgrade
from mailgate.db.models import (
    Attachment,
    AuditEvent,
    Message,
    OutboxItem,
    Participant,
    ThreadRef,
    Ticket,
    TicketTag,
)
from mailgate.db.session import sessions
from mailgate.outbox.compose import Composer
from mailgate.outbox.templates import MailTemplates
from mailgate.runtime import RuntimeConfig
from mailgate.signing import Signer

CONFIG = """
[tickets]
notify_ticket_rate_limit = "{per_ticket}"

[[routes]]
address = "support@example.test"
name = "Support"
queue = "support"
agents = ["alice@example.test", "bob@example.test", "chen@example.test"]

[[agents]]
email = "alice@example.test"
name = "Alice"

[[agents]]
email = "bob@example.test"
name = "Bob"

[[agents]]
email = "chen@example.test"
name = "Chen"
"""
ALICE, BOB, CHEN = "alice@example.test", "bob@example.test", "chen@example.test"
CUSTOMER, CC = "carol@client.test", "dave@client.test"


def context(per_ticket: str = "10/10m") -> ActionContext:
    settings = parse_config(CONFIG.format(per_ticket=per_ticket), "test")
    runtime = RuntimeConfig(LoadedConfig(settings, None))
    signer = Signer(b"k" * 32)
    return ActionContext(runtime, Composer(MailTemplates(), signer, "http://mailgate.test"))


@pytest.fixture
async def db(engine):
    await upgrade(engine)
    return sessions(engine)


@pytest.fixture
def ctx() -> ActionContext:
    return context()


async def new_ticket(db, code="TCK-20261122-AAAA", assignee=ALICE, messages=1) -> Ticket:
    """A ticket from Carol with Dave in CC, as the pipeline would have made it."""
    now = datetime.now(UTC)
    async with db.begin() as session:
        ticket = Ticket(
            code=code,
            subject="Printer on fire",
            customer_name="Carol",
            customer_email=CUSTOMER,
            queue="support",
            status="New",
            priority="normal",
            assignee=assignee,
            locale="en",
            route_address="support@example.test",
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        await session.flush()
        session.add(Participant(ticket_id=ticket.id, email=CUSTOMER, name="Carol", role="customer"))
        session.add(Participant(ticket_id=ticket.id, email=CC, name="Dave", role="cc"))
        session.add(TicketTag(ticket_id=ticket.id, tag="hardware"))
        for n in range(messages):
            message_id = f"<{code.lower()}-{n}@client.test>"
            session.add(
                Message(
                    ticket_id=ticket.id,
                    kind="customer",
                    message_id=message_id,
                    from_name="Carol",
                    from_email=CUSTOMER,
                    subject=f"message {n}",
                    text=f"customer text {n}",
                    created_at=now,
                )
            )
            session.add(ThreadRef(message_id=message_id, ticket_id=ticket.id))
    return ticket


async def outbox(db, kind: str | None = None) -> list[tuple[OutboxItem, email.message.Message]]:
    async with db() as session:
        query = select(OutboxItem).order_by(OutboxItem.id)
        items = await session.scalars(query.where(OutboxItem.kind == kind) if kind else query)
        return [(i, email.message_from_bytes(i.raw, policy=email.policy.default)) for i in items]


async def audits(db, ticket: Ticket, action: str | None = None) -> list[AuditEvent]:
    async with db() as session:
        query = select(AuditEvent).where(AuditEvent.ticket_id == ticket.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return list(await session.scalars(query.order_by(AuditEvent.id)))


async def reload(db, ticket: Ticket) -> Ticket:
    async with db() as session:
        return await session.get(Ticket, ticket.id)


async def test_agent_reply_relays_to_customer_and_cc_from_the_route(db, ctx):
    ticket = await new_ticket(db, messages=2)
    pdf = NewAttachment("invoice.pdf", "application/pdf", b"%PDF-1.4 fake")
    async with db.begin() as session:
        ticket = await session.get(Ticket, ticket.id)
        message = await agent_reply(session, ctx, ticket, ALICE, "Try turning it off.", [pdf])
    [(item, mail)] = await outbox(db)
    assert item.kind == "agent_reply" and item.recipients == [CUSTOMER, CC]
    assert item.mail_from == "support@example.test"
    assert mail["From"].addresses[0].addr_spec == "support@example.test"
    assert mail["From"].addresses[0].display_name == "Alice via Support"
    assert [a.addr_spec for a in mail["To"].addresses] == [CUSTOMER]
    assert [a.addr_spec for a in mail["Cc"].addresses] == [CC]
    assert ticket.code in mail["Subject"]
    assert mail["In-Reply-To"] == "<tck-20261122-aaaa-1@client.test>"
    assert mail["References"].split() == [
        "<tck-20261122-aaaa-0@client.test>",
        "<tck-20261122-aaaa-1@client.test>",
    ]
    assert "Auto-Submitted" not in mail
    headers = "\n".join(f"{name}: {value}" for name, value in mail.items())
    assert ALICE not in headers.lower()
    assert "Try turning it off." in mail.get_body(("plain",)).get_content()
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == "invoice.pdf" and part.get_content() == b"%PDF-1.4 fake"
    fresh = await reload(db, ticket)
    assert fresh.first_response_at is not None and fresh.status == "Open"
    async with db() as session:
        stored = await session.get(Message, message.id)
        assert (stored.kind, stored.from_email, stored.to_addrs) == ("agent", ALICE, [CUSTOMER])
        assert stored.message_id == mail["Message-ID"] and stored.cc_addrs == [CC]
        refs = await session.scalars(
            select(ThreadRef.ticket_id).where(ThreadRef.message_id == stored.message_id)
        )
        assert list(refs) == [ticket.id]
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 1
    assert [e.actor for e in await audits(db, ticket, "reply")] == [ALICE]


async def test_first_response_time_is_kept_and_source_id_threads(db, ctx):
    ticket = await new_ticket(db)
    async with db.begin() as session:
        ticket = await session.get(Ticket, ticket.id)
        await agent_reply(session, ctx, ticket, ALICE, "First.")
    first = (await reload(db, ticket)).first_response_at
    async with db.begin() as session:
        ticket = await session.get(Ticket, ticket.id)
        message = await agent_reply(
            session, ctx, ticket, BOB, "Second.", source_message_id="<mua-1@example.test>"
        )
        assert message.message_id == "<mua-1@example.test>"
    assert (await reload(db, ticket)).first_response_at == first
    relays = await outbox(db, "agent_reply")
    references = relays[1][1]["References"].split()
    assert references[-1] == relays[1][1]["In-Reply-To"] == "<tck-20261122-aaaa-0@client.test>"
    assert relays[0][1]["Message-ID"] in references
    async with db() as session:
        found = await session.scalar(
            select(ThreadRef.ticket_id).where(ThreadRef.message_id == "<mua-1@example.test>")
        )
        assert found == ticket.id


async def test_reply_and_note_refuse_unknown_agent_and_empty_text(db, ctx):
    ticket = await new_ticket(db)
    async with db.begin() as session:
        ticket = await session.get(Ticket, ticket.id)
        for action in (agent_reply, add_note):
            with pytest.raises(ActionError) as error:
                await action(session, ctx, ticket, "mallory@evil.test", "hi")
            assert error.value.field == "agent"
            with pytest.raises(ActionError) as error:
                await action(session, ctx, ticket, ALICE, "  \n")
            assert error.value.field == "text"
    assert await outbox(db) == []


async def test_note_notifies_the_other_agents_never_the_customer(db, ctx):
    ticket = await new_ticket(db, assignee=BOB)
    async with db.begin() as session:
        ticket = await session.get(Ticket, ticket.id)
        note = await add_note(session, ctx, ticket, ALICE, "Customer is a VIP.")
    assert note.kind == "note"
    sent = await outbox(db)
    assert sorted(item.recipients[0] for item, _ in sent) == [BOB, CHEN]
    for item, mail in sent:
        assert item.kind == "note_notification"
        assert "Customer is a VIP." in mail.get_content()
        assert mail["Reply-To"].startswith(f"support+{ticket.code.lower()}.note.")
        assert CUSTOMER not in item.recipients and CC not in item.recipients
    fresh = await reload(db, ticket)
    assert fresh.first_response_at is None and fresh.status == "New"


async def test_update_checks_every_value_before_changing_anything(db, ctx):
    ticket = await new_ticket(db)
    bad = [
        {"status": "Sovled"},
        {"priority": "asap"},
        {"assignee": "nobody@example.test"},
        {"add_tags": ["two words"]},
        {"remove_tags": ["missing"]},
    ]
    for values in bad:
        async with db.begin() as session:
            ticket = await session.get(Ticket, ticket.id)
            with pytest.raises(ActionError) as error:
                await update_ticket(session, ctx, ticket, ALICE, **{"status": "Solved", **values})
            assert error.value.message
    fresh = await reload(db, ticket)
    assert (fresh.status, fresh.solved_at, fresh.priority) == ("New", None, "normal")
    assert await audits(db, ticket) == [] and await outbox(db) == []


async def test_update_applies_changes_with_audit_events_and_mail(db, ctx):
    ticket = await new_ticket(db)
    async with db.begin() as session:
        ticket = await session.get(Ticket, ticket.id)
        changes = await update_ticket(
            session,
            ctx,
            ticket,
            ALICE,
            status="solved",
            priority="HIGH",
            assignee="Bob",
            add_tags=["vip"],
            remove_tags=["hardware"],
        )
    assert changes == [
        "status: New → Solved",
        "priority: normal → high",
        f"assignee: {ALICE} → {BOB}",
        "tag +vip",
        "tag -hardware",
    ]
    fresh = await reload(db, ticket)
    assert (fresh.status, fresh.priority, fresh.assignee) == ("Solved", "high", BOB)
    assert fresh.solved_at is not None
    assert [e.action for e in await audits(db, ticket)] == [
        "status", "priority", "assignee", "tag", "untag"
    ]  # fmt: skip
    [(solved_item, solved)] = await outbox(db, "solved")
    assert solved_item.recipients == [CUSTOMER]
    assert "reply reopens" in solved.get_content() and ticket.code in solved["Subject"]
    [(told_item, told)] = await outbox(db, "agent_notification")
    assert told_item.recipients == [BOB] and "Assigned to you" in told["Subject"]
    assert "customer text 0" in told.get_content()
    async with db() as session:
        tags = await session.scalars(select(TicketTag.tag).where(TicketTag.ticket_id == ticket.id))
        assert list(tags) == ["vip"]


async def test_update_same_values_nothing_and_reopen_clears_solved(db, ctx):
    ticket = await new_ticket(db)
    async with db.begin() as session:
        ticket = await session.get(Ticket, ticket.id)
        await update_ticket(session, ctx, ticket, ALICE, status="Solved")
        assert await update_ticket(session, ctx, ticket, ALICE, status="SOLVED") == []
        assert await update_ticket(session, ctx, ticket, ALICE, assignee=UNSET) == []
        assert await update_ticket(session, ctx, ticket, ALICE, status="Open", assignee=None) == [
            "status: Solved → Open",
            f"assignee: {ALICE} → nobody",
        ]
    fresh = await reload(db, ticket)
    assert fresh.solved_at is None and fresh.assignee is None
    assert len(await outbox(db, "solved")) == 1
    assert await outbox(db, "agent_notification") == []  # self-assignment and unassign: no mail


async def test_notifications_are_rate_limited_per_ticket(db):
    ctx = context(per_ticket="1/1h")
    ticket = await new_ticket(db, assignee=None)
    async with db.begin() as session:
        ticket = await session.get(Ticket, ticket.id)
        await add_note(session, ctx, ticket, ALICE, "one")
        await add_note(session, ctx, ticket, ALICE, "two")
    assert sorted(item.recipients[0] for item, _ in await outbox(db)) == [BOB, CHEN]
    skipped = await audits(db, ticket, "notify_skipped")
    assert sorted(e.data["agent"] for e in skipped) == [BOB, CHEN]
    assert "1/1h" in skipped[0].data["reason"]


async def test_merge_moves_thread_and_people_and_closes_the_source(db, ctx):
    source = await new_ticket(db, "TCK-20261122-AAAA")
    target = await new_ticket(db, "TCK-20261122-BBBB", messages=2)
    async with db.begin() as session:
        source = await session.get(Ticket, source.id)
        target = await session.get(Ticket, target.id)
        with pytest.raises(ActionError):
            await merge_tickets(session, ctx, source, source, ALICE)
        await merge_tickets(session, ctx, source, target, ALICE)
    async with db() as session:
        source = await session.get(Ticket, source.id)
        # Closed, not Unresolved (the first closed status): a merged ticket was not
        # left unresolved.
        assert source.merged_into_id == target.id and source.status == "Closed"
        count = select(func.count()).select_from(Message)
        assert await session.scalar(count.where(Message.ticket_id == target.id)) == 3
        refs = await session.scalars(select(ThreadRef.ticket_id).distinct())
        assert list(refs) == [target.id]
        people = await session.scalars(
            select(Participant.email).where(Participant.ticket_id == target.id)
        )
        assert sorted(people) == [CUSTOMER, CC]
    assert [e.data["ticket"] for e in await audits(db, source, "merged_into")] == [target.code]
    assert [e.data["ticket"] for e in await audits(db, target, "merged_from")] == [source.code]
    async with db.begin() as session:
        source = await session.get(Ticket, source.id)
        with pytest.raises(ActionError) as error:
            await merge_tickets(session, ctx, source, target, ALICE)
        assert error.value.field == "source"


async def test_split_moves_one_message_into_a_new_ticket(db, ctx):
    ticket = await new_ticket(db, messages=2)
    async with db.begin() as session:
        [first, second] = await session.scalars(
            select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
        )
        new = await split_message(session, ctx, second, ALICE)
    assert new.code != ticket.code and new.queue == "support" and new.status == "New"
    assert new.linked_from_id == ticket.id and new.customer_email == CUSTOMER
    async with db() as session:
        moved = await session.get(Message, second.id)
        assert moved.ticket_id == new.id
        ref = await session.scalar(
            select(ThreadRef.ticket_id).where(ThreadRef.message_id == second.message_id)
        )
        assert ref == new.id
    assert [e.data["ticket"] for e in await audits(db, ticket, "split")] == [new.code]
    assert [e.data["ticket"] for e in await audits(db, new, "split_from")] == [ticket.code]
    async with db.begin() as session:
        only = await session.get(Message, first.id)
        with pytest.raises(ActionError):
            await split_message(session, ctx, only, ALICE)
