"""The outbox and the delivery worker against a real aiosmtpd smarthost.

Every test runs on SQLite and on PostgreSQL. The smarthost is ``tests.smarthost``:
a real SMTP server on loopback that can refuse, drop connections, or be down.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from mailgate.db.migrate import upgrade
from mailgate.db.models import DeliveryAttempt, Node, OutboxItem, Suppression
from mailgate.db.nodes import NodeHeartbeat
from mailgate.db.session import create_engine, sessions
from mailgate.outbox.compose import Outgoing
from mailgate.outbox.queue import enqueue_outgoing, suppressed
from mailgate.outbox.transport import CaptureTransport, Delivery, SendResult, SmtpTransport
from mailgate.outbox.worker import DeliveryWorker
from tests.smarthost import Smarthost
from tests.support import free_port, outgoing, wait_until
from tests.tcpproxy import TcpProxy

FROM = "support@example.test"
TO = "carol@client.test"


@pytest.fixture
async def db(engine):
    await upgrade(engine)
    return engine


def mail(n: int = 1, recipients: tuple[str, ...] = (TO,), subject: str = "Your ticket") -> Outgoing:
    text = f"Hello,\n.a line that starts with a dot\nmessage {n}: grüße, ünïcode\n"
    return outgoing("acknowledgement", FROM, recipients, f"{subject} {n}", text)


async def add(engine, count: int = 1, **kw) -> list[int]:
    """Enqueue ``count`` messages in one transaction, as the pipeline does."""
    async with sessions(engine).begin() as session:
        items = [enqueue_outgoing(session, mail(n, **kw), ticket=None) for n in range(count)]
    return [item.id for item in items]


async def items(engine) -> list[OutboxItem]:
    async with sessions(engine)() as session:
        return list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


async def attempts(engine, outbox_id: int) -> list[DeliveryAttempt]:
    query = select(DeliveryAttempt).where(DeliveryAttempt.outbox_id == outbox_id)
    async with sessions(engine)() as session:
        return list(await session.scalars(query.order_by(DeliveryAttempt.id)))


def smtp(sink) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", sink.port, timeout=5.0, local_hostname="mailgate.test")


def worker(engine, transport, node: str = "node-a", **options) -> DeliveryWorker:
    options = {"poll_seconds": 0.05, "backoff_base": 0.3, **options}
    return DeliveryWorker(engine, transport, node, **options)


@asynccontextmanager
async def running(*workers: DeliveryWorker):
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def settled(engine, state: str, count: int = 1) -> list[OutboxItem]:
    async def check():
        rows = await items(engine)
        return rows if [r.state for r in rows] == [state] * count else None

    return await wait_until(check, f"{count} item(s) {state}", seconds=15)


async def test_queued_item_is_delivered_byte_for_byte(db, smarthost):
    [item_id] = await add(db)
    assert await worker(db, smtp(smarthost)).deliver_due() == 1
    [received] = await smarthost.wait_for(1)
    [item] = await items(db)
    assert received.raw == item.raw
    assert b"\n" not in item.raw.replace(b"\r\n", b"")  # CRLF only
    assert (received.mail_from, received.rcpt_tos) == (FROM, (TO,))
    assert received.message["Message-ID"] == item.message_id
    assert (item.state, item.attempts, item.last_error, item.claimed_by) == ("sent", 1, None, None)
    assert item.sent_at is not None
    [attempt] = await attempts(db, item_id)
    assert attempt.ok and attempt.detail.startswith("250 ")


async def test_utf8_address_goes_as_smtputf8(db, smarthost):
    await add(db, recipients=("jörg@exämple.test",))
    await worker(db, smtp(smarthost)).deliver_due()
    [received] = await smarthost.wait_for(1)
    assert received.rcpt_tos == ("jörg@exämple.test",)
    assert "jörg@exämple.test".encode() in received.raw  # a raw UTF-8 header, not RFC 2047
    assert str(received.message["To"]) == "jörg@exämple.test"


async def test_a_batch_goes_over_a_few_connections_and_arrives_once(db, smarthost):
    await add(db, 50)
    assert await worker(db, smtp(smarthost), connections=3).deliver_due() == 50
    received = await smarthost.wait_for(50)
    assert smarthost.connections == 3
    assert sorted(r.message["Message-ID"] for r in received) == sorted(
        i.message_id for i in await items(db)
    )
    assert {i.state for i in await items(db)} == {"sent"}


async def test_a_dropped_connection_is_reopened_mid_batch(db, smarthost):
    smarthost.max_per_connection = 10
    await add(db, 30)
    assert await worker(db, smtp(smarthost), connections=1).deliver_due() == 30
    received = await smarthost.wait_for(30)
    assert smarthost.connections == 3
    assert len({r.message["Message-ID"] for r in received}) == len(received) == 30
    assert {(i.state, i.attempts) for i in await items(db)} == {("sent", 1)}


async def test_smarthost_down_defers_then_delivers_when_it_is_back(db, smarthost):
    await smarthost.stop()
    [item_id] = await add(db)
    delivery = worker(db, smtp(smarthost), backoff_base=1.0)
    before = datetime.now(UTC)
    assert await delivery.deliver_due() == 1
    [item] = await items(db)
    assert (item.state, item.attempts) == ("queued", 1)
    assert f"127.0.0.1:{smarthost.port}" in item.last_error
    retry_at = _utc(item.next_attempt_at)
    assert before + timedelta(seconds=0.9) <= retry_at <= datetime.now(UTC) + timedelta(seconds=1.1)
    await smarthost.start()
    async with running(delivery):
        await smarthost.wait_for(1, timeout=10)
        [item] = await settled(db, "sent")
    assert item.attempts == 2 and _utc(item.sent_at) >= retry_at
    assert [a.ok for a in await attempts(db, item_id)] == [False, True]


async def test_550_fails_at_once_and_is_not_retried(db, smarthost):
    smarthost.refuse("550 5.7.1 Relaying denied")
    [item_id] = await add(db)
    delivery = worker(db, smtp(smarthost), backoff_base=0.01)
    assert await delivery.deliver_due() == 1
    [item] = await items(db)
    assert (item.state, item.attempts) == ("failed", 1)
    assert "550 5.7.1 Relaying denied" in item.last_error
    smarthost.refuse(None)
    assert await delivery.deliver_due() == 0
    assert smarthost.messages == []
    assert [a.ok for a in await attempts(db, item_id)] == [False]


async def test_451_is_retried_until_accepted(db, smarthost):
    smarthost.refuse("451 4.3.0 Try again later")
    [item_id] = await add(db)
    delivery = worker(db, smtp(smarthost), backoff_base=0.2)
    await delivery.deliver_due()
    [item] = await items(db)
    assert (item.state, item.attempts) == ("queued", 1)
    assert "451 4.3.0 Try again later" in item.last_error
    smarthost.refuse(None)
    async with running(delivery):
        await smarthost.wait_for(1, timeout=10)
        [item] = await settled(db, "sent")
    assert item.attempts == 2 and item.last_error is None
    assert [a.ok for a in await attempts(db, item_id)] == [False, True]


async def test_recipient_refusals(db, smarthost):
    smarthost.refuse_recipient("gone@client.test", "550 5.1.1 No such user")
    smarthost.refuse_recipient("grey@client.test", "450 4.7.1 Greylisted")
    await add(db, recipients=(TO, "gone@client.test"))
    await add(db, recipients=("gone@client.test",))
    await add(db, recipients=("grey@client.test", "gone@client.test"))
    await worker(db, smtp(smarthost)).deliver_due()
    some, none, grey = await items(db)
    [received] = await smarthost.wait_for(1)
    assert received.rcpt_tos == (TO,)
    assert some.state == "sent" and "gone@client.test: 550 5.1.1" in some.last_error
    assert none.state == "failed" and "550 5.1.1 No such user" in none.last_error
    assert grey.state == "queued" and "450 4.7.1 Greylisted" in grey.last_error


async def test_capture_transport_captures(db):
    [item_id] = await add(db)
    assert await worker(db, CaptureTransport()).deliver_due() == 1
    [item] = await items(db)
    assert item.state == "captured" and item.sent_at is not None
    assert [a.ok for a in await attempts(db, item_id)] == [True]


async def test_mail_older_than_give_up_after_fails(db):
    await add(db)
    async with db.begin() as connection:
        long_ago = datetime.now(UTC) - timedelta(days=4)
        await connection.execute(update(OutboxItem).values(created_at=long_ago))
    port = free_port()  # nothing listens here
    down = SmtpTransport("127.0.0.1", port, timeout=5.0, local_hostname="mailgate.test")
    await worker(db, down).deliver_due()
    [item] = await items(db)
    assert item.state == "failed" and f"127.0.0.1:{port}" in item.last_error


async def test_two_nodes_deliver_each_item_exactly_once(db, database_url, smarthost):
    await add(db, 400)
    other_engine = create_engine(database_url)
    for node in ("node-a", "node-b"):  # both alive: neither takes the other's claims
        await NodeHeartbeat(db, "delivery", 30.0, node).join()
    try:
        node_a = worker(db, smtp(smarthost), "node-a", batch_size=40)
        node_b = worker(other_engine, smtp(smarthost), "node-b", batch_size=40)
        handled = await asyncio.gather(drain(node_a), drain(node_b))
    finally:
        await other_engine.dispose()
    received = await smarthost.wait_for(400)
    assert sum(handled) == 400 and min(handled) > 0, handled
    assert len({r.message["Message-ID"] for r in received}) == len(received) == 400
    assert {(i.state, i.attempts) for i in await items(db)} == {("sent", 1)}


async def drain(delivery: DeliveryWorker) -> int:
    total = 0
    while handled := await delivery.deliver_due():
        total += handled
    return total


async def test_wake_delivers_at_once_not_at_the_next_poll(db, smarthost):
    delivery = worker(db, smtp(smarthost), poll_seconds=60.0)
    await add(db)
    async with running(delivery):
        await smarthost.wait_for(1)  # the first pass; now it waits up to 60 s
        await add(db)
        started = asyncio.get_running_loop().time()
        delivery.wake()
        await smarthost.wait_for(2, timeout=5)
        assert asyncio.get_running_loop().time() - started < 5


async def test_a_silent_nodes_sending_claim_is_taken_over_a_live_ones_is_not(db, smarthost):
    """Claims are a node's while its heartbeat is fresh, however old the claim."""
    of_dead, of_live = await add(db, 2)
    dead, live = NodeHeartbeat(db, "delivery", 5.0), NodeHeartbeat(db, "delivery", 5.0)
    for node in (dead, live):
        await node.join()
    now = datetime.now(UTC)
    async with db.begin() as connection:
        await connection.execute(
            update(Node).where(Node.id == dead.id).values(beat_at=now - timedelta(seconds=6))
        )
        for item_id, node in ((of_dead, dead), (of_live, live)):
            claim = {
                "state": "sending",
                "claimed_by": node.id,
                "claimed_at": now - timedelta(hours=1),
            }
            await connection.execute(
                update(OutboxItem).where(OutboxItem.id == item_id).values(**claim)
            )
    assert await worker(db, smtp(smarthost), node_timeout=5.0).deliver_due() == 1
    [received] = await smarthost.wait_for(1)
    first, second = await items(db)
    assert received.message["Message-ID"] == first.message_id
    assert (first.state, second.state, second.claimed_by) == ("sent", "sending", live.id)


class BrokenTransport:
    async def send(self, items: list[Delivery]) -> AsyncIterator[list[SendResult]]:
        raise RuntimeError("transport bug")
        yield  # an async generator, as a transport is


async def test_a_failing_transport_defers_and_the_worker_keeps_running(db):
    delivery = worker(db, BrokenTransport(), backoff_base=60.0)
    [item_id] = await add(db)
    async with running(delivery) as [task]:
        await wait_until(lambda: attempts(db, item_id), "the attempt to be recorded")
        assert not task.done()
    [item] = await items(db)
    assert (item.state, item.attempts) == ("queued", 1)
    assert "transport bug" in item.last_error


async def test_enqueue_needs_a_message_id_and_joins_the_callers_transaction(db):
    async with sessions(db)() as session:
        with pytest.raises(ValueError, match="Message-ID"):
            enqueue_outgoing(session, replace(mail(), message_id=""), ticket=None)
        enqueue_outgoing(session, mail(), ticket=None)
        await session.rollback()
    assert await items(db) == []


async def test_suppressed_addresses(db):
    now = datetime.now(UTC)
    async with sessions(db).begin() as session:
        session.add(Suppression(email="bounced@client.test", until=now + timedelta(days=1)))
        session.add(Suppression(email="old@client.test", until=now - timedelta(seconds=1)))
    async with sessions(db)() as session:
        addresses = ["Bounced@Client.test", "old@client.test", TO]
        assert await suppressed(session, addresses) == {"Bounced@Client.test"}
        assert await suppressed(session, []) == set()


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite gives naive


class StallingSmarthost(Smarthost):
    """Stores every message, but after ``answered`` of them answers none until
    ``release()``: the answers to those in flight are lost, as in a crash."""

    def __init__(self, answered: int) -> None:
        super().__init__()
        self.answered: int | None = answered
        self.stalled = 0  # messages stored and waiting for their answer
        self._released = threading.Event()

    def release(self) -> None:
        self.answered = None
        self._released.set()

    async def handle_DATA(self, server, session, envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if self.answered is None or len(self.messages) <= self.answered:
            return reply
        self.stalled += 1
        await asyncio.to_thread(self._released.wait)
        return "421 4.3.0 Answer lost"


@pytest.fixture
async def stalling():
    sink = StallingSmarthost(answered=30)
    await sink.start()
    yield sink
    sink.release()
    await sink.stop()


async def test_a_crash_re_sends_at_most_the_messages_in_flight(db, stalling):
    await add(db, 100)
    crashing = asyncio.create_task(worker(db, smtp(stalling), connections=4).deliver_due())

    async def in_flight() -> bool:
        return stalling.stalled == 4

    await wait_until(in_flight, "every connection waiting for an answer")
    # The worker dies with four messages in flight: every answer before theirs was
    # written before its connection handed the next message over.
    crashing.cancel()
    await asyncio.gather(crashing, return_exceptions=True)
    stalling.release()
    # Another node takes the dead one's claims over (at once: it has no heartbeat row)
    # and delivers.
    await drain(worker(db, smtp(stalling), "node-b"))
    sent = [received.message["Message-ID"] for received in stalling.messages]
    assert set(sent) == {item.message_id for item in await items(db)}
    assert len(sent) - len(set(sent)) <= 4, f"{len(sent) - len(set(sent))} sent twice"
    assert {item.state for item in await items(db)} == {"sent"}


class Outage:
    """Takes the worker's database away on cue, from any thread: SQLite is locked by
    another connection (the worker waits a fifth of a second for it), PostgreSQL is
    reached through a proxy that refuses connections."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self._loop = asyncio.get_running_loop()
        self._lock: sqlite3.Connection | None = None
        self._proxy: TcpProxy | None = None

    async def engine(self):
        if self.url.startswith("sqlite"):
            return create_engine(self.url, lock_wait_seconds=0.2)
        self._proxy = TcpProxy("127.0.0.1", 5432)
        await self._proxy.start()
        return create_engine(self.url.replace(":5432/", f":{self._proxy.port}/"))

    def begin(self) -> None:
        if self._proxy is None:
            path = self.url.split("///", 1)[1]
            self._lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._lock.execute("BEGIN EXCLUSIVE")
            return
        refused = threading.Event()
        self._loop.call_soon_threadsafe(lambda: (self._proxy.refuse(), refused.set()))
        refused.wait()

    def end(self) -> None:
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
        if self._proxy is not None:
            self._proxy.restore()

    async def close(self) -> None:
        if self._proxy is not None:
            await self._proxy.stop()


class OutageSmarthost(Smarthost):
    """Begins ``outage`` once it has stored ``after`` messages, before answering;
    ``stored_when_begun``: how many it held once the outage was in place (taking
    SQLite's lock may wait for a write in flight, while other connections go on)."""

    def __init__(self, outage: Outage, after: int) -> None:
        super().__init__()
        self.outage, self.after = outage, after
        self.stored_when_begun: int | None = None

    async def handle_DATA(self, server, session, envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.messages) == self.after:
            await asyncio.to_thread(self.outage.begin)
            self.stored_when_begun = len(self.messages)
        return reply


async def test_a_database_outage_mid_batch_sends_nothing_twice(db, database_url):
    await add(db, 40)
    outage = Outage(database_url)
    engine = await outage.engine()
    sink = OutageSmarthost(outage, after=10)
    await sink.start()
    try:
        delivery = worker(engine, smtp(sink), connections=4)
        with pytest.raises(Exception):  # noqa: B017 (whatever the driver raises)
            await delivery.deliver_due()
        # Each connection stopped at its first answer that could not be written: the
        # one that began the outage at once, each other one after at most one more.
        begun = sink.stored_when_begun
        assert begun is not None and 10 <= begun <= len(sink.messages) <= begun + 3
        outage.end()
        await drain(delivery)
    finally:
        await sink.stop()
        await engine.dispose()
        await outage.close()
    sent = sorted(received.message["Message-ID"] for received in sink.messages)
    assert sent == sorted(item.message_id for item in await items(db))
    assert {(item.state, item.attempts) for item in await items(db)} == {("sent", 1)}
    for item in await items(db):
        assert [attempt.ok for attempt in await attempts(db, item.id)] == [True]
