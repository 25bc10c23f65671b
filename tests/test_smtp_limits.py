"""Session and recipient limits of the SMTP and LMTP listeners, against a running daemon.

Clients come from several loopback addresses (all of 127.0.0.0/8 is local on Linux),
so one /24 can be filled while another still gets in. Waits are bounded reads on the
socket: what ends them is the server's reply or its closing the connection.
"""

from __future__ import annotations

import asyncio
import smtplib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import daemon_running, journal_entries, wait_until
from tests.test_intake_smtp import MESSAGE, raw_dialogue

BOUND = 30.0  # seconds any single read may wait; far below idle_timeout_seconds


@dataclass
class Held:
    """An open session the test holds without speaking."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    greeting: bytes

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), BOUND)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def hold(port: int, source: str = "127.0.0.1") -> Held:
    streams = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    held = Held(*streams, b"")
    held.greeting = await held.line()
    return held


async def hold_unix(path: str) -> Held:
    held = Held(*await asyncio.open_unix_connection(path), b"")
    held.greeting = await held.line()
    return held


@pytest.fixture
def socket_directory():
    """A short directory for a unix socket (its path must fit in 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="mg", dir="/tmp") as directory:
        yield Path(directory)


async def test_one_network_cannot_take_every_session(setup):
    setup.sections["smtp"] |= {
        "max_sessions": 40,
        "max_sessions_per_client": 2,
        "max_sessions_per_network": 5,
    }
    async with daemon_running(setup):
        port = setup.smtp_port
        crowd = [await hold(port, f"127.0.5.{n}") for n in range(1, 11)]
        greetings = [held.greeting[:3] for held in crowd]
        assert greetings == [b"220"] * 5 + [b"421"] * 5
        assert b"4.7.0 Too many connections from your network" in crowd[-1].greeting
        other = [await hold(port, "127.0.6.1") for _ in range(3)]
        assert [held.greeting[:3] for held in other] == [b"220", b"220", b"421"]
        assert b"from your address" in other[2].greeting

        # A session that ends gives its place back to its network.
        crowd[0].writer.write(b"QUIT\r\n")
        assert (await crowd[0].line()).startswith(b"221")
        assert await crowd[0].line() == b""

        async def admitted():
            held = await hold(port, "127.0.5.20")
            await held.close()
            return held.greeting.startswith(b"220")

        await wait_until(admitted, "a place for the network again")
        for held in crowd + other:
            await held.close()


async def test_unix_socket_and_uncapped_mta_count_only_toward_the_total(setup, socket_directory):
    socket_path = str(socket_directory / "lmtp")
    setup.sections["smtp"] |= {
        "lmtp_listen": [f"127.0.0.1:{setup.lmtp_port}", f"unix:{socket_path}"],
        "max_sessions": 12,
        "max_sessions_per_client": 2,
        "max_sessions_per_network": 2,
        "uncapped_clients": ["127.0.7.1/32"],
    }
    async with daemon_running(setup):
        local = [await hold_unix(socket_path) for _ in range(4)]
        mta = [await hold(setup.lmtp_port, "127.0.7.1") for _ in range(4)]
        stranger = [await hold(setup.lmtp_port, f"127.0.7.{n}") for n in (2, 3, 4)]
        assert [held.greeting[:3] for held in local + mta] == [b"220"] * 8
        # Its neighbours in 127.0.7.0/24 are capped as usual: the network holds two.
        assert [held.greeting[:3] for held in stranger] == [b"220", b"220", b"421"]
        for held in local + mta + stranger:
            await held.close()


async def test_idle_sessions_get_the_short_timeout_when_busy(setup):
    setup.sections["smtp"] |= {
        "max_sessions": 8,
        "max_sessions_per_client": 8,
        "max_sessions_per_network": 8,
        "idle_timeout_seconds": 300.0,
        "busy_idle_timeout_seconds": 1.0,
    }
    async with daemon_running(setup):
        quiet = await hold(setup.smtp_port)
        assert quiet.greeting.startswith(b"220")
        # Seven of eight open: over three quarters, so the quiet one has a second left
        # (and with it gone, the others their five minutes again).
        crowd = [await hold(setup.smtp_port) for _ in range(6)]
        assert (await quiet.line()).startswith(b"421 4.4.2 Idle too long")
        assert await quiet.line() == b""  # and the server closed it
        fresh = await hold(setup.smtp_port)
        assert fresh.greeting.startswith(b"220")
        for held in [quiet, fresh, *crowd]:
            await held.close()


RECIPIENTS = [f"support+r{n}@example.test" for n in range(101)]


def smtp_rcpt_codes(port: int) -> tuple[list[tuple[int, bytes]], int]:
    """MAIL, 101 RCPT and DATA over SMTP: the RCPT replies and the DATA code."""
    with smtplib.SMTP("127.0.0.1", port, timeout=BOUND) as client:
        client.ehlo()
        client.mail("cust@client.test")
        replies = [client.rcpt(address) for address in RECIPIENTS]
        code, _ = client.data(MESSAGE)
        return replies, code


async def test_smtp_recipient_over_the_limit_gets_452_and_the_rest_is_taken(setup, engine):
    async with daemon_running(setup):  # max_recipients: the default, 100
        replies, data_code = await asyncio.to_thread(smtp_rcpt_codes, setup.smtp_port)
        assert [code for code, _ in replies[:100]] == [250] * 100
        assert replies[100] == (452, b"4.5.3 Too many recipients")
        assert data_code == 250
        [entry] = await journal_entries(engine)
        assert entry.recipients == RECIPIENTS[:100]


async def test_lmtp_answers_the_message_once_per_recipient_taken(setup, engine):
    setup.sections["smtp"]["max_recipients"] = 3
    async with daemon_running(setup):
        lines = [b"LHLO client.test", b"MAIL FROM:<cust@client.test>"]
        lines += [f"RCPT TO:<{address}>".encode() for address in RECIPIENTS[:4]]
        lines += [b"DATA", MESSAGE + b".", b"QUIT"]
        replies = await asyncio.to_thread(raw_dialogue, setup.lmtp_port, lines)
        codes = [reply[:3] for reply in replies]
        # Greeting, LHLO, MAIL; three recipients taken, the fourth refused; 354, then one
        # reply to the message per recipient taken, and QUIT.
        assert codes == [
            b"220",
            b"250",
            b"250",
            *[b"250"] * 3,
            b"452",
            b"354",
            *[b"250"] * 3,
            b"221",
        ]
        assert replies[6].startswith(b"452 4.5.3 Too many recipients")
        [entry] = await journal_entries(engine)
        assert entry.recipients == RECIPIENTS[:3]
