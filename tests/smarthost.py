"""A real SMTP sink on loopback, standing in for the smarthost mailgate relays through.

An aiosmtpd ``Controller`` runs it in a thread of its own, so a test that blocks its
event loop for a moment does not stall the sink. It records every accepted message
with its envelope, can refuse at RCPT or DATA with any reply, can drop connections
after a number of messages, and can be stopped and started again on the same port to
play a smarthost that is down for a while.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from tests.support import free_port


@dataclass(frozen=True)
class Received:
    """One accepted message: the envelope, the bytes as received, and their parse."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage = field(compare=False, repr=False)


class Smarthost:
    """``start()``/``stop()`` it; ``refuse(reply)`` to answer DATA with a 4xx/5xx."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[Received] = []
        self.connections = 0  # SMTP sessions that began a mail transaction
        self.refusal: str | None = None  # DATA reply instead of 250, e.g. "451 4.3.0 Later"
        self.refused_recipients: dict[str, str] = {}  # address (lower case) -> RCPT reply
        self.max_per_connection: int | None = None  # then 421 and hang up, like busy servers
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def refuse(self, reply: str | None) -> None:
        """Answer DATA with ``reply`` (``None``: accept again)."""
        self.refusal = reply

    def refuse_recipient(self, address: str, reply: str) -> None:
        self.refused_recipients[address.lower()] = reply

    async def start(self) -> None:
        controller = Controller(
            self, hostname="127.0.0.1", port=self.port, server_hostname="smarthost.test"
        )
        await asyncio.to_thread(controller.start)
        self._controller = controller

    async def stop(self) -> None:
        """Stop listening and cut open sessions: from now on the smarthost is down."""
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
            self._controller = None

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:  # noqa: ASYNC109
        """Wait until ``count`` messages have arrived; fail after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) < count:
            if loop.time() > deadline:
                raise AssertionError(
                    f"smarthost got {len(self.messages)} of {count} messages in {timeout:g}s"
                )
            await asyncio.sleep(0.01)
        return self.messages

    # aiosmtpd handler hooks; they run in the controller's thread.

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:
        sent = getattr(session, "sink_messages", None)
        if sent is None:
            session.sink_messages = sent = 0
            self.connections += 1
        if self.max_per_connection is not None and sent >= self.max_per_connection:
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.7.0 Too many messages on this connection, closing"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        reply = self.refused_recipients.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.refusal:
            return self.refusal
        raw = envelope.original_content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        self.messages.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), raw, message))
        session.sink_messages += 1
        return "250 2.0.0 Queued"
