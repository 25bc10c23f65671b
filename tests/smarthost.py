"""An aiosmtpd sink on loopback, standing in for the smarthost mailgate relays through.

It runs in the test's own event loop (no Controller thread), records every message
with its envelope, and can be stopped and started again on the same port to play a
smarthost that is down for a while.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from contextlib import suppress
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP

from tests.support import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


class Smarthost:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Received] = []
        self.connections = 0
        self.reply = "250 2.0.0 OK"  # set to a 4xx/5xx to refuse at DATA
        self._server: asyncio.AbstractServer | None = None
        self._arrived = asyncio.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.reply.startswith("250"):
            raw = envelope.original_content
            self.messages.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), raw))
            self._arrived.set()
        return self.reply

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            self.connections += 1
            return SMTP(self, enable_SMTPUTF8=True, hostname="smarthost.test", loop=loop)

        self._server = await loop.create_server(factory, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:  # noqa: ASYNC109
        """Wait until ``count`` messages have arrived; fail after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"smarthost got {len(self.messages)} of {count} messages in {timeout:g}s"
                )
            self._arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.5))
        return self.messages
