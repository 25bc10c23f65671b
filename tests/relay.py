"""A small SMTP relay on loopback that hands mail on by recipient domain.

It plays the internet between two mailgate instances: each instance's smarthost is
the relay, which delivers ``…@a.test`` to one instance's SMTP port, ``…@b.test`` to
the other's and everything else to a sink. It forwards inside DATA and answers with
the next hop's reply, so a message the sender counts as sent is already stored by
the receiver. ``rewrite`` can change the bytes on the way, to play a path that drops
headers.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib
from aiosmtpd.controller import Controller

from tests.support import free_port


@dataclass(frozen=True)
class Relayed:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage = field(compare=False, repr=False)


class Relay:
    def __init__(
        self,
        ports: dict[str, int],
        default_port: int,
        rewrite: Callable[[bytes], bytes] = lambda raw: raw,
    ) -> None:
        self.port = free_port()
        self.ports = {domain.lower(): port for domain, port in ports.items()}
        self.default_port = default_port
        self.rewrite = rewrite
        self.relayed: list[Relayed] = []
        self._controller: Controller | None = None

    async def start(self) -> None:
        controller = Controller(self, hostname="127.0.0.1", port=self.port)
        await asyncio.to_thread(controller.start)
        self._controller = controller

    async def stop(self) -> None:
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
            self._controller = None

    def to(self, domain: str) -> list[Relayed]:
        """What was relayed to recipients at ``domain``."""
        wanted = f"@{domain.lower()}"
        return [m for m in self.relayed if any(r.lower().endswith(wanted) for r in m.rcpt_tos)]

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = self.rewrite(envelope.original_content)
        by_port: dict[int, list[str]] = {}
        for rcpt in envelope.rcpt_tos:
            port = self.ports.get(rcpt.rpartition("@")[2].lower(), self.default_port)
            by_port.setdefault(port, []).append(rcpt)
        for port, rcpts in by_port.items():
            try:
                await aiosmtplib.send(
                    raw,
                    sender=envelope.mail_from,
                    recipients=rcpts,
                    hostname="127.0.0.1",
                    port=port,
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                return f"550 5.1.1 refused by the next hop: {exc.recipients[0].message}"
            except aiosmtplib.SMTPResponseException as exc:
                return f"{exc.code} {exc.message}"
        message = email.message_from_bytes(raw, policy=email.policy.default)
        self.relayed.append(Relayed(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 2.0.0 Relayed"
