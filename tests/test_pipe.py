"""``mailgate deliver``: the pipe transport of an MTA, by itself and under Postfix.

The MTA only sees the exit code: 0 stored, 67 unknown recipient and 65 too big (the MTA
bounces), 75 could not store (the MTA keeps the mail queued and tries again). Under
Postfix's pipe(8) the command runs as an unprivileged user, so the tests give that user
(nobody) what an admin would: a config and a database it can reach.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import mailgate
from tests.postfix import MailSink, SystemUser, give_to, running_postfix, traversable
from tests.support import MailgateSetup, daemon_running, free_port, journal_entries, need
from tests.test_pipeline import mail, settled

MESSAGE = (
    b"From: Customer <cust@client.test>\r\n"
    b"To: support@example.test\r\n"
    b"Subject: Invoice is wrong\r\n"
    b"Message-ID: <pipe-1@client.test>\r\n"
    b"\r\n"
    b"Line one.\r\n"
    b"A bare LF line\n"
    b"Caf\xc3\xa9 \xff\x00 and no final newline"
)


async def deliver(setup: MailgateSetup, raw: bytes, *args: str) -> tuple[int, str]:
    """Run ``mailgate deliver`` as an MTA does: message on stdin, exit code back."""
    process = await asyncio.create_subprocess_exec(
        *setup.command("deliver", *args),
        cwd=setup.directory,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(raw), 60)
    return process.returncode, (out + err).decode(errors="replace")


@pytest.fixture
async def migrated(setup) -> MailgateSetup:
    """The config written and the schema in place (``mailgate db upgrade``, as at install)."""
    setup.write()
    process = await asyncio.create_subprocess_exec(
        *setup.command("db", "upgrade"),
        cwd=setup.directory,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()
    return setup


async def test_stored_message_is_exit_0_and_byte_for_byte(migrated, engine):
    code, output = await deliver(
        migrated, MESSAGE, "--sender", "cust@client.test", "--recipient", "support@example.test"
    )
    assert code == 0, output
    [entry] = await journal_entries(engine)
    assert entry.raw == MESSAGE
    assert entry.source == "pipe"
    assert entry.mail_from == "cust@client.test"
    assert entry.recipients == ["support@example.test"]
    assert entry.state == "pending"


async def test_deliver_is_a_trusted_path_only_when_listed(migrated, engine):
    """``"deliver"`` in ``[auth] trusted_paths``: its entries may be believed."""
    args = ("--sender", "cust@client.test", "--recipient", "support@example.test")
    assert (await deliver(migrated, MESSAGE, *args))[0] == 0
    migrated.sections["auth"] = {"trusted_paths": ["deliver"]}
    migrated.write()
    assert (await deliver(migrated, MESSAGE, *args))[0] == 0
    assert [entry.trusted_path for entry in await journal_entries(engine)] == [False, True]


async def test_recipients_match_case_and_subaddress_and_null_sender(migrated, engine):
    recipients = ["Support+Order-42@Example.TEST", "billing@example.test"]
    args = [f"--recipient={r}" for r in recipients]
    code, output = await deliver(migrated, MESSAGE, "--sender=", *args)
    assert code == 0, output
    [entry] = await journal_entries(engine)
    assert entry.recipients == recipients
    assert entry.mail_from == ""


@pytest.mark.parametrize(
    "recipients",
    [["nobody@example.test"], ["support@example.test", "nobody@example.test"]],
    ids=["unknown", "one-of-two-unknown"],
)
async def test_unknown_recipient_is_exit_67_and_nothing_stored(migrated, engine, recipients):
    args = [f"--recipient={r}" for r in recipients]
    code, output = await deliver(migrated, MESSAGE, *args)
    assert code == 67, output
    assert "5.1.1 <nobody@example.test>: no such mailbox here" in output
    assert await journal_entries(engine) == []


async def test_over_max_message_bytes_is_exit_65_at_the_limit_stored(migrated, engine):
    migrated.sections["smtp"]["max_message_bytes"] = len(MESSAGE)
    migrated.write()
    too_big = MESSAGE + b"!"
    code, output = await deliver(migrated, too_big, "--recipient=support@example.test")
    assert code == 65, output
    assert f"message of {len(too_big)} bytes is over the limit" in output
    assert await journal_entries(engine) == []

    code, output = await deliver(migrated, MESSAGE, "--recipient=support@example.test")
    assert code == 0, output
    assert [e.raw for e in await journal_entries(engine)] == [MESSAGE]


def unreachable_url(database_url: str, directory: Path) -> str:
    """A database of the same kind that cannot be reached."""
    if database_url.startswith("sqlite"):
        blocker = directory / "not-a-directory"
        blocker.write_text("a regular file where the database directory should be\n")
        return f"sqlite+aiosqlite:///{blocker}/mailgate.db"
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/mailgate"


async def test_unreachable_database_is_exit_75_and_the_retry_stores_once(
    migrated, engine, database_url
):
    migrated.sections["database"]["url"] = unreachable_url(database_url, migrated.directory)
    migrated.write()
    code, output = await deliver(migrated, MESSAGE, "--recipient=support@example.test")
    assert code == 75, output
    assert await journal_entries(engine) == []

    # The MTA retries once the admin has the database back.
    migrated.sections["database"]["url"] = database_url
    migrated.write()
    code, output = await deliver(migrated, MESSAGE, "--recipient=support@example.test")
    assert code == 0, output
    assert [e.raw for e in await journal_entries(engine)] == [MESSAGE]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[database\nurl = 1\n", "invalid TOML"),
        ("[smtp]\nmax_message_byte = 10\n", "mailgate.toml:2: smtp.max_message_byte: unknown key"),
        (None, "cannot read config"),
    ],
    ids=["syntax", "unknown-key", "missing-file"],
)
async def test_broken_config_is_exit_75_so_the_mta_retries(tmp_path, text, complaint):
    setup = MailgateSetup(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/mailgate.db")
    if text is not None:
        setup.config_path.write_text(text)
    code, output = await deliver(setup, MESSAGE, "--recipient=support@example.test")
    assert code == 75, output
    assert "bad config" in output and complaint in output
    assert not (tmp_path / "mailgate.db").exists()


# Through Postfix's pipe(8) transport ---------------------------------------------------

PIPE_USER = SystemUser("nobody")  # pipe(8) refuses root; any unprivileged account does


@pytest.fixture
async def pipe_postfix(migrated, tmp_path):
    """Postfix delivering example.test with ``mailgate deliver`` as user nobody.

    nobody needs to reach the Python of the virtualenv, the checkout (an editable
    install) and the test directory with config and SQLite file; on this kind of
    machine the virtualenv's Python lives under /root (mode 0700), so ``traversable``
    adds the search bit to such directories for the test and takes it back after.
    """
    need(PIPE_USER.exists, f"no user {PIPE_USER.name} to run the pipe command as")
    # The product default: under Postfix a slow commit costs a 5-minute retry, not a 451.
    migrated.sections["database"]["write_timeout_seconds"] = 10.0
    migrated.write()
    argv = migrated.command("deliver", "--sender=${sender}", "--recipient=${recipient}")
    assert not any(" " in arg for arg in argv), argv  # master.cf splits argv at blanks
    reach = [*mailgate_paths(), tmp_path]
    # null_sender= passes a bounce's empty return path on as "" (default: MAILER-DAEMON).
    service = (
        f"mailgate unix - n n - - pipe flags=Rq user={PIPE_USER.name} null_sender= "
        f"argv={' '.join(argv)}"
    )
    async with MailSink().running() as sink, traversable(reach):
        transports = {"example.test": "mailgate:", "client.test": f"smtp:[127.0.0.1]:{sink.port}"}
        give_to(PIPE_USER, tmp_path)  # the SQLite file and its WAL are written by nobody
        try:
            await _check_pipe_user_can_run(argv)
            async with running_postfix(tmp_path, transports, {"mailgate": service}) as postfix:
                yield postfix, sink
        finally:
            give_to(SystemUser("root"), tmp_path)


def mailgate_paths() -> list[Path]:
    """What running ``python -m mailgate`` from this virtualenv reads."""
    python = Path(sys.executable)
    package = Path(mailgate.__file__).parent
    return [python, python.resolve(), Path(sys.prefix), Path(sys.base_prefix), package]


async def _check_pipe_user_can_run(argv: list[str]) -> None:
    """Fail early, with the reason, if the pipe user cannot even start mailgate."""
    process = await asyncio.create_subprocess_exec(
        "runuser",
        "-u",
        PIPE_USER.name,
        "--",
        argv[0],
        "-m",
        "mailgate",
        "--version",
        cwd="/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, f"{PIPE_USER.name} cannot run mailgate: {out.decode()}"


def pipe_message(token: str, to: str) -> bytes:
    return (
        f"From: cust@client.test\r\nTo: {to}\r\nSubject: {token}\r\n"
        f"Message-ID: <{token}@client.test>\r\n\r\nBody of {token}.\r\n"
    ).encode()


@pytest.mark.postfix
async def test_postfix_pipe_journals_each_message_once(pipe_postfix, engine):
    postfix, _ = pipe_postfix
    both = ["support@example.test", "billing@example.test"]
    await postfix.send("cust@client.test", both, pipe_message("to-both", ", ".join(both)))
    await postfix.send("", [both[0]], pipe_message("null-sender", both[0]))

    await postfix.wait(postfix.settled, "Postfix to pipe both messages into mailgate", 60)
    await postfix.assert_empty()
    first, second = sorted(await journal_entries(engine), key=lambda e: b"null-sender" in e.raw)
    assert sorted(first.recipients) == sorted(both)  # one run of the command for both
    assert first.mail_from == "cust@client.test"
    assert first.source == "pipe"
    # pipe(8) hands over the message with LF line ends, Return-Path first (flags=R).
    assert first.raw.startswith(b"Return-Path: <cust@client.test>\n")
    assert b"\nBody of to-both.\n" in first.raw
    assert second.recipients == ["support@example.test"] and second.mail_from == ""
    assert b"\nBody of null-sender.\n" in second.raw
    assert len(await journal_entries(engine)) == 2
    sent = await postfix.log_lines("relay=mailgate", "status=sent (delivered via mailgate")
    assert len(sent) == 3  # one line per recipient


@pytest.mark.postfix
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # nothing is stored
async def test_postfix_pipe_bounces_unknown_recipient(pipe_postfix, engine):
    postfix, sink = pipe_postfix
    lost = pipe_message("lost", "nobody@example.test")
    await postfix.send("cust@client.test", ["nobody@example.test"], lost)

    await postfix.wait(postfix.settled, "Postfix to bounce the unknown recipient", 60)
    await postfix.assert_empty()  # the bounce, too, went out to the sender
    [line] = await postfix.log_lines("to=<nobody@example.test>", "relay=mailgate")
    assert "dsn=5.1.1" in line and "status=bounced" in line
    [notice] = sink.received
    assert notice.recipients == ["cust@client.test"]
    assert b"Final-Recipient: rfc822; nobody@example.test" in notice.content
    assert await journal_entries(engine) == []


@pytest.mark.postfix
async def test_postfix_pipe_defers_while_database_is_down(
    pipe_postfix, setup, engine, database_url
):
    postfix, _ = pipe_postfix
    setup.sections["database"]["url"] = unreachable_url(database_url, setup.directory)
    setup.write()
    give_to(PIPE_USER, setup.directory)
    later = pipe_message("later", "support@example.test")
    await postfix.send("cust@client.test", ["support@example.test"], later)

    async def deferred():
        queue = await postfix.queue()
        return queue and queue[0]["queue_name"] == "deferred" and queue[0]

    [recipient] = (await postfix.wait(deferred, "Postfix to defer the message", 60))["recipients"]
    assert "could not store the message" in recipient["delay_reason"]
    assert await postfix.log_lines("relay=mailgate", "dsn=4.3.0", "status=deferred")

    setup.sections["database"]["url"] = database_url
    setup.write()
    await postfix.flush()

    async def delivered():
        return not await postfix.queue() and await journal_entries(engine)

    [entry] = await postfix.wait(delivered, "the retried message in the journal", 60)
    assert b"\nBody of later.\n" in entry.raw


def piped(sender: str, return_path: str | None) -> bytes:
    """A customer's mail from ``sender`` as an MDA gets it, with or without Return-Path."""
    raw = mail(f"From {sender}", sender=sender)
    if return_path is None:
        return raw
    # The topmost counts: the one the last MTA wrote, above older hops' headers.
    top = f"Return-Path: <{return_path}>\r\nReceived: from mx.client.test\r\n"
    return top.encode() + b"Return-Path: <older@relay.test>\r\n" + raw


async def test_without_sender_the_return_path_is_the_sender_and_empty_is_a_bounce(
    setup, smarthost, engine
):
    """fetchmail, procmail, maildrop and .forward pass no sender: the topmost
    Return-Path says who sent it, and without one the sender is unknown, not null.
    Only ``--sender ''`` (Postfix's bounce) or ``Return-Path: <>`` is a bounce."""
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    rcpt = "--recipient=support@example.test"
    async with daemon_running(setup):
        runs = [
            (piped("carol@client.test", "carol@client.test"), "--sender="),
            (piped("frank@client.test", ""), None),
            (piped("dave@client.test", "dave@client.test"), None),
            (piped("erin@client.test", None), None),
        ]
        for raw, sender in runs:
            code, output = await deliver(setup, raw, rcpt, *([sender] if sender else []))
            assert code == 0, output
        entries = await settled(engine, 4)
        assert [(e.source, e.mail_from) for e in entries] == [
            ("pipe", ""), ("mda", ""), ("mda", "dave@client.test"), ("mda", "")
        ]  # fmt: skip
        # The barrier: the last two are acknowledged, the bounces before them never.
        await smarthost.wait_for(2)
        assert sorted(m.rcpt_tos for m in smarthost.messages) == [
            ("dave@client.test",), ("erin@client.test",)
        ]  # fmt: skip
