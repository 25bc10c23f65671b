"""Postfix in front of mailgate's LMTP listener, as an admin deploys it.

Postfix relays example.test to ``lmtp:inet:127.0.0.1:<our port>``. While mailgate is
down Postfix keeps the mail deferred; once it is back and the queue is flushed, each
message is in the journal exactly once. A recipient we do not serve is refused at
RCPT, so Postfix bounces it to the sender and nothing is stored.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Message
from tests.postfix import MailSink, run, running_postfix, traversable
from tests.support import MailgateProcess, daemon_running, journal_entries
from tests.test_pipeline import settled

pytestmark = pytest.mark.postfix

SENDER = "customer@client.test"


def message(number: int, token: str, to: str) -> bytes:
    return (
        f"From: Customer <{SENDER}>\r\n"
        f"To: {to}\r\n"
        f"Subject: Order {number} has not arrived\r\n"
        f"Message-ID: <{token}@client.test>\r\n"
        f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
        f"\r\n"
        f"Where is order {number}? Reference {token}.\r\n"
    ).encode()


@pytest.fixture
async def sink():
    """Where Postfix sends bounces for client.test, the customers' domain."""
    async with MailSink().running() as sink:
        yield sink


@pytest.fixture
async def postfix(setup, sink, tmp_path):
    transports = {
        "example.test": f"lmtp:inet:127.0.0.1:{setup.lmtp_port}",
        "client.test": f"smtp:[127.0.0.1]:{sink.port}",
    }
    async with running_postfix(tmp_path, transports) as postfix:
        yield postfix


async def test_mail_waits_in_postfix_while_mailgate_is_down_then_arrives_once(
    setup, engine, postfix
):
    daemon = MailgateProcess(setup)
    await daemon.start()  # creates the schema, as on any first start
    assert await daemon.stop() == 0
    recipients = ["support@example.test", "billing@example.test"]
    sent = {}
    for number in range(20):
        token = secrets.token_hex(8)
        to = recipients[number % 2]
        sent[token] = (to, message(number, token, to))
        await postfix.send(SENDER, [to], sent[token][1])

    async def all_deferred():
        queue = await postfix.queue()
        return len(queue) == 20 and all(m["queue_name"] == "deferred" for m in queue) and queue

    queue = await postfix.wait(all_deferred, "Postfix to defer all 20 messages", 60)
    refused = f"connect to 127.0.0.1[127.0.0.1]:{setup.lmtp_port}: Connection refused"
    for queued in queue:
        [recipient] = queued["recipients"]
        assert refused in recipient["delay_reason"]
    assert len(await postfix.log_lines("status=deferred", refused)) >= 1
    assert await journal_entries(engine) == []

    await daemon.start()
    try:
        await postfix.flush()

        async def delivered():
            return len(await journal_entries(engine)) >= 20 and not await postfix.queue()

        await postfix.wait(delivered, "the deferred mail to reach the journal", 60)
        entries = await journal_entries(engine)
    finally:
        assert await daemon.stop() == 0

    assert len(entries) == 20
    for token, (to, raw) in sent.items():
        [entry] = [e for e in entries if token.encode() in e.raw]
        assert entry.raw.endswith(raw)  # Postfix only prepends its Received: header
        assert entry.raw.startswith(b"Received: from ")
        assert entry.recipients == [to]
        assert entry.mail_from == SENDER
        assert entry.source == "lmtp"
    relay = f"relay=127.0.0.1[127.0.0.1]:{setup.lmtp_port}"
    assert len(await postfix.log_lines(relay, "status=sent")) == 20


async def test_bounce_with_null_sender_is_relayed_and_journaled(setup, engine, postfix, mailgate):
    """A delivery report for our outgoing mail comes with MAIL FROM:<>; it must not be lost."""
    report = message(3, "report", "support+bounces@example.test")
    await postfix.send("", ["support+bounces@example.test"], report)

    await postfix.wait(postfix.settled, "Postfix to pass the message on", 60)
    await postfix.assert_empty()
    [line] = await postfix.log_lines("to=<support+bounces@example.test>")
    assert "status=sent" in line
    [entry] = await journal_entries(engine)
    assert entry.raw.endswith(report)
    assert entry.mail_from == ""
    assert entry.recipients == ["support+bounces@example.test"]


async def test_unknown_recipient_is_bounced_by_postfix_and_not_stored(
    setup, engine, postfix, sink, mailgate
):
    lost = message(1, "lost", "nobody@example.test")
    mixed = message(2, "mixed", "support@example.test, ghost@example.test")
    await postfix.send(SENDER, ["nobody@example.test"], lost)
    await postfix.send(SENDER, ["support@example.test", "ghost@example.test"], mixed)

    await postfix.wait(postfix.settled, "Postfix to deliver and bounce", 60)
    await postfix.assert_empty()  # the bounces, too, went out to the sender

    [entry] = await journal_entries(engine)
    assert entry.raw.endswith(mixed)
    assert entry.recipients == ["support@example.test"]
    for address in ("nobody@example.test", "ghost@example.test"):
        [line] = await postfix.log_lines(f"to=<{address}>", "status=bounced")
        assert "dsn=5.1.1" in line
        assert f"550 5.1.1 <{address}>: no such mailbox here" in line
        assert "(in reply to RCPT TO command)" in line
    assert len(await postfix.log_lines("sender non-delivery notification")) == 2

    # What the customer gets back: a delivery status notification from the MTA.
    assert {(b.mail_from, tuple(b.recipients)) for b in sink.received} == {("", (SENDER,))}
    for address in ("nobody@example.test", "ghost@example.test"):
        final = f"Final-Recipient: rfc822; {address}".encode()
        [bounce] = [b.content for b in sink.received if final in b.content]
        assert b"Content-Type: message/delivery-status" in bounce
        assert b"Status: 5.1.1" in bounce


ALICE = b"alice@example.test"
HEADER_CHECKS = Path(__file__).resolve().parents[1] / "deploy" / "postfix" / "header_checks"


async def test_postfix_on_the_trusted_socket_strips_a_forged_authentication_result(
    setup, engine, tmp_path
):
    """deploy/ as it stands: Postfix drops the sender's Authentication-Results
    (header_checks) and delivers over LMTP to the 0660 socket of its group, which
    mailgate trusts; the forged pass never reaches the pipeline, so no agent."""
    socket = tmp_path / "lmtp.sock"
    setup.sections["smtp"].update(
        lmtp_listen=[f"unix:{socket}"], socket_mode="0660", socket_group="postfix"
    )
    setup.sections["auth"] = {
        "trusted_authserv_ids": ["mx.example.test"],
        "trusted_paths": [f"unix:{socket}"],
    }
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test"}]
    checks = tmp_path / "header_checks"
    checks.write_bytes(HEADER_CHECKS.read_bytes())
    alice = message(1, "forged", "support@example.test").replace(SENDER.encode(), ALICE)
    forged = b"Authentication-Results: mx.example.test; dkim=pass header.d=example.test\r\n" + alice
    async with (
        traversable([socket]),
        running_postfix(tmp_path, {"example.test": f"lmtp:unix:{socket}"}) as postfix,
    ):
        await postfix.configure({"header_checks": f"regexp:{checks}"})
        await postfix.add_service("lmtp", "lmtp unix - - n - - lmtp")  # no chroot: the socket
        await run("postfix", "reload")
        async with daemon_running(setup):
            await postfix.send("alice@example.test", ["support@example.test"], forged)
            await postfix.wait(postfix.settled, "Postfix to deliver over the socket", 60)
            await postfix.assert_empty()
            [entry] = await settled(engine, 1)
    assert entry.source == "lmtp" and entry.trusted_path
    assert b"Authentication-Results" not in entry.raw and b"Reference forged" in entry.raw
    async with AsyncSession(engine) as session:
        [flag] = await session.scalars(select(Message.flag))
    assert "not authenticated" in flag
