"""Agents working from their own mail client, end to end through a real daemon.

Customer and agent mail go in over SMTP, or over LMTP on the unix socket the config
trusts (where the MTA would deliver); what mailgate sends comes out at a real
aiosmtpd smarthost sink; the ticket is read back through the JSON API and the
outbox table (written in the same transaction as the mail's processing, so "nothing
was sent" is checked without waiting). SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import grp
import re
import smtplib
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.values import MAX_TAGS
from mailgate.db.models import AuditEvent, OutboxItem
from mailgate.pipeline.journal import Arrival, entry_rows, write_entries
from tests.postfix import traversable
from tests.support import api_get, daemon_running, journal_entries, wait_until
from tests.test_pipeline import mail, send, sent_to, settled, ticket

ALICE, BOB = "alice@example.test", "bob@example.test"
CAROL, DAVE = "carol@client.test", "dave@client.test"
TRUSTED_PASS = "Authentication-Results: mx.example.test; dkim=pass header.d=example.test\r\n"
SOCKET_GROUP = "mail"  # stands for the MTA's group; "nobody" is not in it


def trust_the_lmtp_socket(setup) -> str:
    """Add an LMTP unix socket for the MTA (mode 0660, its group) and trust it alone:
    the TCP SMTP and LMTP listeners stay untrusted. Returns the socket's path."""
    path = str(setup.directory / "lmtp.sock")
    smtp = setup.sections["smtp"]
    smtp["lmtp_listen"] = [*smtp["lmtp_listen"], f"unix:{path}"]
    smtp.update(socket_mode="0660", socket_group=SOCKET_GROUP)
    setup.sections["auth"] = {
        "trusted_authserv_ids": ["mx.example.test"],
        "trusted_paths": [f"unix:{path}"],
    }
    return path


@pytest.fixture
async def daemon(setup, smarthost):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    trust_the_lmtp_socket(setup)
    setup.routes[0]["agents"] = [ALICE, BOB]
    setup.routes[0]["name"] = "Example Support"
    setup.agents = [{"email": ALICE, "name": "Alice"}, {"email": BOB, "name": "Bob"}]
    async with daemon_running(setup) as process:
        yield process


class Desk:
    """One ticket opened by Carol (Dave in Cc) and the mail around it."""

    def __init__(self, daemon, smarthost, engine) -> None:
        self.daemon, self.smarthost, self.engine = daemon, smarthost, engine
        self.entries = 0
        self.code = ""

    async def open(self) -> Desk:
        raw = mail("Printer on fire", extra=f"Cc: Dave <{DAVE}>\r\n", message_id="<q@client.test>")
        await self.deliver(raw, sender=CAROL)
        await self.mail_to(ALICE)
        [ack] = await self.mail_to(CAROL)  # queued with Alice's, but may come after it
        self.code = ack.message["X-Mailgate-Ticket"]
        return self

    async def deliver(
        self, raw: bytes, sender: str, recipients=("support@example.test",), trusted=False
    ):
        """Hand ``raw`` to the public SMTP listener, or to the ``trusted`` LMTP socket."""
        if trusted:
            socket = self.daemon.setup.sections["auth"]["trusted_paths"][0].removeprefix("unix:")
            await asyncio.to_thread(send_lmtp, socket, raw, recipients, sender)
        else:
            await asyncio.to_thread(send, self.daemon.setup.smtp_port, raw, recipients, sender)
        self.entries += 1
        await settled(self.engine, self.entries)

    async def mail_to(self, address: str, count: int = 1, kind: str | None = None) -> list:
        """Wait for the ``count``-th message to ``address`` (of the given kind)."""

        async def arrived():
            found = [m for m in sent_to(self.smarthost, address) if kind in (None, _kind(m))]
            return found if len(found) >= count else None

        return await wait_until(arrived, f"{count} mail(s) to {address}")

    async def agent_mail(
        self, body: str, sender=ALICE, to: str | None = None, extra="", trusted=False
    ):
        """Mail from an agent; by default to the reply address of their notification."""
        to = to or (await self.mail_to(sender))[0].message["Reply-To"]
        raw = mail(f"Re: [{self.code}] Printer on fire", body=body, sender=sender, to=to,
                   extra=extra)  # fmt: skip
        await self.deliver(raw, sender=sender, recipients=(to,), trusted=trusted)

    async def ticket(self) -> dict:
        return await ticket(self.daemon, self.code)

    async def outbox(self) -> list[tuple[str, list[str]]]:
        async with AsyncSession(self.engine) as session:
            rows = await session.execute(
                select(OutboxItem.kind, OutboxItem.recipients).order_by(OutboxItem.id)
            )
            return [(kind, recipients) for kind, recipients in rows]


async def ticket_list(desk: Desk) -> list[dict]:
    return (await api_get(desk.daemon.setup, "/api/v1/tickets"))["tickets"]


def send_lmtp(socket: str, raw: bytes, recipients, sender: str) -> None:
    with smtplib.LMTP(socket, timeout=30) as client:
        client.sendmail(sender, list(recipients), raw)


def _kind(received) -> str | None:
    """Tell our notifications apart by their subject (the sink sees only the mail)."""
    subject = str(received.message["Subject"])
    for marker, kind in (("Internal note", "note"), ("Not understood", "error")):
        if marker in subject:
            return kind
    return "other"


@pytest.fixture
async def desk(daemon, smarthost, engine) -> Desk:
    return await Desk(daemon, smarthost, engine).open()


async def test_agent_reply_reaches_customer_and_cc_from_the_support_address(desk):
    body = (
        "#status pending\n\nHello Carol, please switch it off.\n\n-- \nAlice\n\n"
        "On Sun, 22 Nov 2026 at 10:00, Example Support <support@example.test> wrote:\n"
        "> New ticket from Carol\n> #status is explained below\n"
    )
    await desk.agent_mail(body)
    [relay] = (await desk.mail_to(CAROL, 2))[1:]
    message = relay.message
    assert set(relay.rcpt_tos) == {CAROL, DAVE}
    assert re.fullmatch(r"support\+bounce-\d+\.\w+@example\.test", relay.mail_from)  # VERP
    assert message["From"].addresses[0].addr_spec == "support@example.test"
    assert message["From"].addresses[0].display_name == "Alice via Example Support"
    assert f"[{desk.code}]" in message["Subject"]
    assert message["In-Reply-To"] == "<q@client.test>"
    assert "<q@client.test>" in message["References"].split()
    headers = "\n".join(f"{name}: {value}" for name, value in message.items())
    assert ALICE not in headers.lower() and "alice@" not in relay.raw.decode().lower()
    text = message.get_body(("plain",)).get_content()
    assert "please switch it off" in text and "#" not in text and "> New ticket" not in text
    shown = await desk.ticket()
    assert shown["status"] == "Pending" and shown["first_response_at"]
    reply = shown["messages"][-1]
    assert (reply["kind"], reply["from"], reply["text"].startswith("Hello Carol")) == (
        "agent", ALICE, True
    )  # fmt: skip


async def test_forged_agent_mail_is_an_outside_message(desk):
    forged = mail(f"Re: [{desk.code}] Printer on fire", body="#status closed\n\nDone.",
                  sender=f"Alice <{ALICE}>")  # fmt: skip
    await desk.deliver(forged, sender=ALICE)
    shown = await desk.ticket()
    assert shown["status"] == "New" and len(shown["messages"]) == 1
    assert not [kind for kind, _ in await desk.outbox() if kind == "agent_reply"]
    listed = await ticket_list(desk)
    assert len(listed) == 2  # the forged mail opened a ticket of its own ...
    other = await ticket(desk.daemon, listed[0]["code"])
    assert "not authenticated" in other["messages"][0]["flag"]  # ... and says why


async def test_authentication_results_from_a_trusted_id_only(desk):
    untrusted = TRUSTED_PASS.replace("mx.example.test", "mx.evil.test")
    # An attacker's header below an untrusted top one is never read.
    await desk.agent_mail("#priority high\n\nForged.", to="support@example.test",
                          extra=untrusted + TRUSTED_PASS, trusted=True)  # fmt: skip
    assert (await desk.ticket())["priority"] == "normal"
    await desk.agent_mail("#priority high\n\nReal.", to="support@example.test",
                          extra=TRUSTED_PASS, trusted=True)  # fmt: skip
    shown = await desk.ticket()
    assert shown["priority"] == "high" and shown["messages"][-1]["kind"] == "agent"
    [relay] = (await desk.mail_to(CAROL, 2))[1:]
    assert "Real." in relay.message.get_body(("plain",)).get_content()
    assert len(await ticket_list(desk)) == 2  # the untrusted one became a ticket of its own


CHANGES = "#status solved\n#assign alice\n#tag vip\n\nAll fixed, goodbye."
MTA_FAILED = f"Authentication-Results: mx.example.test; spf=fail smtp.mailfrom={ALICE}\r\n"


async def assert_untouched_and_flagged(desk: Desk) -> None:
    """The ticket is as Carol opened it, nothing went to her, and the mail opened a
    ticket of its own flagged as not authenticated."""
    shown = await desk.ticket()
    assert (shown["status"], shown["assignee"], shown["tags"]) == ("New", None, [])
    assert len(shown["messages"]) == 1
    assert [kind for kind, to in await desk.outbox() if CAROL in to] == ["acknowledgement"]
    listed = await ticket_list(desk)
    assert len(listed) == 2
    other = await ticket(desk.daemon, listed[0]["code"])
    assert "not authenticated" in other["messages"][0]["flag"]


async def test_authentication_results_over_the_public_smtp_listener_are_never_read(desk, engine):
    """Whoever reaches the SMTP listener writes the headers: nothing vouches for them."""
    await desk.agent_mail(CHANGES, to="support@example.test", extra=TRUSTED_PASS)
    await assert_untouched_and_flagged(desk)
    assert [entry.trusted_path for entry in await journal_entries(engine)] == [False, False]


async def test_a_forged_pass_under_the_mtas_failure_is_not_believed(desk):
    """On the trusted socket the MTA's own header says SPF failed; the sender's forged
    dkim=pass under it, with the same authserv-id, must not outvote it."""
    await desk.agent_mail(CHANGES, to="support@example.test", extra=MTA_FAILED + TRUSTED_PASS,
                          trusted=True)  # fmt: skip
    await assert_untouched_and_flagged(desk)


async def test_the_mtas_pass_on_the_trusted_socket_makes_the_agent(desk, engine):
    await desk.agent_mail(CHANGES, to="support@example.test", extra=TRUSTED_PASS, trusted=True)
    shown = await desk.ticket()
    assert (shown["status"], shown["assignee"], shown["tags"]) == ("Solved", ALICE, ["vip"])
    assert shown["messages"][-1]["kind"] == "agent" and len(await ticket_list(desk)) == 1
    relayed = (await desk.mail_to(CAROL, 3))[1:]
    assert any("All fixed" in str(m.message.get_body(("plain",)).get_content()) for m in relayed)
    assert [entry.trusted_path for entry in await journal_entries(engine)] == [False, True]


CONNECT = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"


async def test_the_trusted_socket_is_for_the_mtas_group_only(daemon):
    path = Path(daemon.setup.sections["auth"]["trusted_paths"][0].removeprefix("unix:"))
    status = await asyncio.to_thread(path.stat)
    assert stat.S_IMODE(status.st_mode) == 0o660
    assert status.st_gid == grp.getgrnam(SOCKET_GROUP).gr_gid
    async with traversable([path]):  # a local user outside the group, in a subprocess
        tried = await asyncio.to_thread(
            subprocess.run, ["/usr/bin/python3", "-c", CONNECT, str(path)],
            user="nobody", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert tried.returncode != 0 and "PermissionError" in tried.stderr


async def test_reprocessing_decides_from_the_path_stored_with_the_mail(desk, engine):
    """Two quarantined copies of one forged-looking mail: only the one journaled from
    the trusted path acts as Alice when run again."""

    def arrival(tag: str, trusted: bool) -> Arrival:
        raw = mail(f"Re: [{desk.code}] Printer on fire", body=f"#tag {tag}\n\nHello.",
                   sender=ALICE, extra=TRUSTED_PASS)  # fmt: skip
        return Arrival("lmtp", ALICE, ("support@example.test",), raw, trusted=trusted)

    rows = entry_rows([arrival("forged", False), arrival("genuine", True)])
    for row in rows:  # written quarantined: the running pipeline never sees them
        row.update(state="quarantined", error="apply: RuntimeError: a bug since fixed")
    async with engine.begin() as connection:
        ids = await write_entries(connection, rows)
    command = desk.daemon.setup.command("reprocess", *map(str, ids))
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (await desk.ticket())["tags"] == ["genuine"]


async def test_every_command_and_the_solved_mail(desk):
    await desk.agent_mail("#status solved\n#assign bob\n#priority urgent\n#tag vip\n#tag printer")
    shown = await desk.ticket()
    assert (shown["status"], shown["assignee"], shown["priority"]) == ("Solved", BOB, "urgent")
    assert shown["tags"] == ["printer", "vip"] and len(shown["messages"]) == 1  # nothing relayed
    [solved] = (await desk.mail_to(CAROL, 2))[1:]
    assert f"[{desk.code}] Solved" in solved.message["Subject"]
    assert "reopens" in solved.message.get_content()
    assigned = await desk.mail_to(BOB, 2)
    assert "Assigned to you" in assigned[-1].message["Subject"]
    await desk.agent_mail("#untag vip\n#assign me\n#status open")
    shown = await desk.ticket()
    assert (shown["status"], shown["assignee"], shown["tags"]) == ("Open", ALICE, ["printer"])
    await desk.agent_mail("#assign none")
    assert (await desk.ticket())["assignee"] is None
    assert [kind for kind, _ in await desk.outbox()].count("solved") == 1


async def test_a_bad_command_is_explained_and_nothing_happens(desk):
    await desk.agent_mail("#staus solved\n#priority asap\n#assign mallory\n\nHello Carol!")
    [error] = await desk.mail_to(ALICE, kind="error")
    text = error.message.get_content()
    assert "#staus solved: unknown command" in text
    assert "#priority asap: unknown priority" in text and "#assign mallory" in text
    shown = await desk.ticket()
    assert (shown["status"], shown["priority"], len(shown["messages"])) == ("New", "normal", 1)
    assert not [kind for kind, _ in await desk.outbox() if kind == "agent_reply"]


async def test_notes_by_command_and_by_note_address_stay_internal(desk):
    await desk.agent_mail("#note\nCarol is a reseller, be nice.")
    [note] = await desk.mail_to(BOB, kind="note")
    assert "be nice" in note.message.get_content()
    note_address = note.message["Reply-To"]
    assert note_address.startswith(f"support+{desk.code.lower()}.note.")
    await desk.agent_mail("Noted, I will call her.", sender=BOB, to=note_address)
    [answer] = await desk.mail_to(ALICE, kind="note")
    assert "I will call her" in answer.message.get_content()
    shown = await desk.ticket()
    assert [m["kind"] for m in shown["messages"]] == ["customer", "note", "note"]
    assert shown["first_response_at"] is None
    customers = {CAROL, DAVE}
    assert [kind for kind, to in await desk.outbox() if customers & set(to)] == ["acknowledgement"]


async def test_cc_participant_gets_the_reply_and_may_answer(desk):
    await desk.agent_mail("Hello both, which model is it?")
    [relay] = await desk.mail_to(DAVE)
    answer = mail("Re: whatever", body="It is the X-1000.", sender=f"Dave <{DAVE}>",
                  to=relay.message["Reply-To"],
                  extra=f"In-Reply-To: {relay.message['Message-ID']}\r\n")  # fmt: skip
    await desk.deliver(answer, sender=DAVE, recipients=(relay.message["Reply-To"],))
    shown = await desk.ticket()
    assert [(m["kind"], m["from"]) for m in shown["messages"]] == [
        ("customer", CAROL), ("agent", ALICE), ("customer", DAVE)
    ]  # fmt: skip
    told = await desk.mail_to(ALICE, 2)
    assert "X-1000" in told[-1].message.get_content()
    assert len(await ticket_list(desk)) == 1


async def test_tags_past_the_cap_are_left_out_and_the_mail_still_applies(desk, engine):
    fifty = [f"t{n:02}" for n in range(1, MAX_TAGS + 1)]
    await desk.agent_mail("\n".join(f"#tag {tag}" for tag in fifty))
    assert (await desk.ticket())["tags"] == fifty
    await desk.agent_mail("#tag extra\n#tag t01\n#status pending\n\nSwitch it off, please.")
    shown = await desk.ticket()
    assert shown["tags"] == fifty and shown["status"] == "Pending"
    [relay] = (await desk.mail_to(CAROL, 2))[1:]
    assert "Switch it off" in relay.message.get_body(("plain",)).get_content()
    async with AsyncSession(engine) as session:
        [dropped] = await session.scalars(
            select(AuditEvent.data).where(AuditEvent.action == "tags_dropped")
        )
    assert dropped["tags"] == "extra" and f"at most {MAX_TAGS}" in dropped["reason"]
