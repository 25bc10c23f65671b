"""Mail that reaches the pipeline together is applied together, in one transaction:
what customers and agents see must be exactly what they would see had each mail come
alone. Each test journals its mails, then runs one pipeline pass over all of them.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import func, select, update

from mailgate.config import Agent, LoadedConfig, Route, Settings
from mailgate.db.migrate import upgrade
from mailgate.db.models import (
    Attachment,
    AuditEvent,
    Blob,
    JournalEntry,
    Message,
    Node,
    OutboxItem,
    Ticket,
)
from mailgate.db.nodes import NodeHeartbeat, new_node_id
from mailgate.pipeline.journal import Arrival, insert_entries
from mailgate.pipeline.worker import PipelineWorker
from mailgate.runtime import RuntimeConfig
from mailgate.work import pipeline_deps
from tests.test_pipeline import mail

SUPPORT = "support@example.test"


async def one_pass(engine, mails: list[bytes | tuple[bytes, str]], **route) -> list[str]:
    """Journal ``mails`` (to support@, or (raw, recipient)) and run one pipeline pass;
    the entries' outcomes."""
    await upgrade(engine)
    routes = [Route(address=SUPPORT, **route)]
    agents = [Agent(email=email) for email in route.get("agents", [])]
    runtime = RuntimeConfig(LoadedConfig(Settings(routes=routes, agents=agents), None))
    worker = PipelineWorker(engine, pipeline_deps(runtime), new_node_id(), batch_size=100)
    addressed = [item if isinstance(item, tuple) else (item, SUPPORT) for item in mails]
    arrivals = [Arrival("smtp", "carol@client.test", (to,), raw) for raw, to in addressed]
    ids = await insert_entries(engine, arrivals)
    assert await worker.process_pending() == len(mails)
    async with engine.connect() as connection:
        query = select(JournalEntry.state).where(JournalEntry.id.in_(ids))
        return list(await connection.scalars(query.order_by(JournalEntry.id)))


async def rows(engine, query) -> list:
    async with engine.connect() as connection:
        return list((await connection.execute(query)).all())


async def test_a_reply_in_the_same_batch_joins_the_ticket_its_first_mail_opened(engine):
    first_id = make_msgid(domain="client.test")
    first = mail("Printer on fire", message_id=first_id)
    reply = mail(
        "Re: Printer on fire", body="Now the desk too.", extra=f"In-Reply-To: {first_id}\r\n"
    )
    assert await one_pass(engine, [first, reply]) == ["done", "done"]
    [(_, messages)] = await rows(
        engine,
        select(Ticket.code, func.count(Message.id))
        .join(Message, Message.ticket_id == Ticket.id)
        .group_by(Ticket.code),
    )
    assert messages == 2
    acks = await rows(engine, select(OutboxItem.id).where(OutboxItem.kind == "acknowledgement"))
    assert len(acks) == 1, "a reply gets no acknowledgement of its own"


async def test_a_duplicate_in_the_same_batch_is_stored_once(engine):
    raw = mail("Printer on fire")
    assert await one_pass(engine, [raw, raw]) == ["done", "duplicate"]
    assert len(await rows(engine, select(Message.id))) == 1


async def test_the_acknowledgement_limit_counts_the_batch_itself(engine):
    """Five new mails from one sender at once: three acknowledgements (3 per 10 min)."""
    mails = [mail(f"Question {n}") for n in range(5)]
    assert await one_pass(engine, mails) == ["done"] * 5
    assert len(await rows(engine, select(Ticket.id))) == 5
    acks = await rows(engine, select(OutboxItem.id).where(OutboxItem.kind == "acknowledgement"))
    skipped = await rows(engine, select(AuditEvent.data).where(AuditEvent.action == "ack_skipped"))
    assert (len(acks), len(skipped)) == (3, 2)
    assert "acknowledgement rate limit" in skipped[0].data["reason"]


async def test_round_robin_takes_turns_within_a_batch(engine):
    agents = ["alice@example.test", "bob@example.test"]
    mails = [mail(f"Question {n}", sender=f"c{n}@client.test") for n in range(4)]
    await one_pass(engine, mails, assign="round_robin", agents=agents)
    assigned = await rows(engine, select(Ticket.assignee).order_by(Ticket.id))
    assert [row.assignee for row in assigned] == agents * 2
    notified = await rows(
        engine, select(OutboxItem.recipients).where(OutboxItem.kind != "acknowledgement")
    )
    assert sorted(row.recipients[0] for row in notified) == sorted(agents * 2)


async def test_mail_without_a_route_is_quarantined_and_the_rest_goes_on(engine):
    lost = (mail("Lost", to="nobody@example.test"), "nobody@example.test")
    mails = [mail("Question 1"), lost, mail("Question 2")]
    assert await one_pass(engine, mails) == ["done", "quarantined", "done"]
    [(error,)] = await rows(
        engine, select(JournalEntry.error).where(JournalEntry.state == "quarantined")
    )
    assert "no route for nobody@example.test" in error
    assert len(await rows(engine, select(Ticket.id))) == 2


def with_attachment(subject: str, filename: str, content: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = "Carol Customer <carol@client.test>"
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="client.test")
    message.set_content(f"{subject}: see the attachment.")
    message.add_attachment(content, maintype="application", subtype="pdf", filename=filename)
    return message.as_bytes()


async def test_attachments_in_a_batch_stay_with_their_own_mail(engine):
    """Mails with and without attachments at once: each file is on the message it came
    with, and a file sent twice is one blob."""
    mails = [
        with_attachment("Invoice 1", "invoice-1.pdf", b"%PDF one"),
        mail("No files here"),
        with_attachment("Invoice 2", "invoice-2.pdf", b"%PDF two"),
        with_attachment("Invoice 1 again", "copy.pdf", b"%PDF one"),
    ]
    assert await one_pass(engine, mails) == ["done"] * 4
    found = await rows(
        engine,
        select(Message.subject, Attachment.filename, Blob.data)
        .join(Attachment, Attachment.message_id == Message.id)
        .join(Blob, Blob.sha256 == Attachment.sha256)
        .order_by(Message.id),
    )
    assert [tuple(row) for row in found] == [
        ("Invoice 1", "invoice-1.pdf", b"%PDF one"),
        ("Invoice 2", "invoice-2.pdf", b"%PDF two"),
        ("Invoice 1 again", "copy.pdf", b"%PDF one"),
    ]
    assert len(await rows(engine, select(Blob.sha256))) == 2


async def test_claims_of_a_silent_or_gone_node_or_this_one_are_taken_in_order(engine):
    """Entries another node claimed and never finished are taken once its heartbeat
    is older than node_timeout_seconds, or at once when its process on this host is
    gone (a restart); this node's own leftovers at once; a live node's never, however
    old its claim."""
    await upgrade(engine)
    raws = [mail(f"Question {n}") for n in range(5)]
    ids = await insert_entries(
        engine, [Arrival("smtp", "carol@client.test", (SUPPORT,), r) for r in raws]
    )
    silent, gone, live, this = (NodeHeartbeat(engine, "pipeline", 5.0) for _ in range(4))
    for node in (silent, gone, live):
        await node.join()
    now = datetime.now(UTC)
    hour_ago = now - timedelta(hours=1)
    async with engine.begin() as connection:
        await connection.execute(
            update(Node).where(Node.id == silent.id).values(beat_at=now - timedelta(seconds=6))
        )
        # A process of this host that has exited: its heartbeat is fresh but stale.
        await connection.execute(update(Node).where(Node.id == gone.id).values(pid=exited_pid()))
        for entry_id, node in zip(ids, (silent, live, this, gone), strict=False):
            await connection.execute(
                update(JournalEntry)
                .where(JournalEntry.id == entry_id)
                .values(state="processing", claimed_by=node.id, claimed_at=hour_ago)
            )
    await this.join()  # starting on this host, it retires the rows of processes gone
    routes = [Route(address=SUPPORT)]
    runtime = RuntimeConfig(
        LoadedConfig(Settings(routes=routes, cluster={"node_timeout_seconds": 5}), None)
    )
    worker = PipelineWorker(engine, pipeline_deps(runtime), this.id)
    assert await worker.process_pending() == 4
    states = await rows(engine, select(JournalEntry.state).order_by(JournalEntry.id))
    assert [row.state for row in states] == ["done", "processing", "done", "done", "done"]
    subjects = await rows(engine, select(Ticket.subject).order_by(Ticket.id))
    assert [row.subject for row in subjects] == [f"Question {n}" for n in (0, 2, 3, 4)]


def exited_pid() -> int:
    """The pid of a process that has run and exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


async def test_a_node_that_lost_its_claims_writes_nothing(engine):
    """A node silent too long has had its entries taken over; when it wakes up and
    finishes its batch, the batch rolls back: the other node makes the tickets."""
    await upgrade(engine)
    raws = [mail(f"Question {n}") for n in range(3)]
    ids = await insert_entries(
        engine, [Arrival("smtp", "carol@client.test", (SUPPORT,), r) for r in raws]
    )
    async with engine.begin() as connection:  # the last one was taken over meanwhile
        for entry_id, node in zip(ids, ("slow-node", "slow-node", "other-node"), strict=True):
            await connection.execute(
                update(JournalEntry)
                .where(JournalEntry.id == entry_id)
                .values(state="processing", claimed_by=node, claimed_at=datetime.now(UTC))
            )
    runtime = RuntimeConfig(LoadedConfig(Settings(routes=[Route(address=SUPPORT)]), None))
    slow = PipelineWorker(engine, pipeline_deps(runtime), "slow-node")
    outcomes = await slow.process(ids)
    assert [outcome.split(" ")[0] for outcome in outcomes] == ["done", "done", "taken-over"]
    found = await rows(
        engine, select(JournalEntry.state, JournalEntry.claimed_by).order_by(JournalEntry.id)
    )
    assert [tuple(row) for row in found] == [
        ("done", None),
        ("done", None),
        ("processing", "other-node"),
    ]
    subjects = await rows(engine, select(Ticket.subject).order_by(Ticket.id))
    assert [row.subject for row in subjects] == ["Question 0", "Question 1"]
