"""The smarthost of a trial: tests/smarthost.py's sink, counting instead of keeping.

Every acknowledgement mailgate sends answers one customer message (In-Reply-To), so
the sink counts arrivals per Message-ID answered; a soak would not fit its messages
in memory. It also knows how many SMTP connections are open at any instant: a crash
may re-send at most the messages in flight on those.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from tests.smarthost import Smarthost


class CountingSink(Smarthost):
    """``acks[message_id]``: acknowledgements that arrived for it; ``open``:
    connections open now."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.acks: Counter[str] = Counter()
        self.open = 0

    async def start(self) -> None:
        controller = _CountingController(
            self, hostname="127.0.0.1", port=self.port, server_hostname="smarthost.test"
        )
        await asyncio.to_thread(controller.start)
        self._controller = controller

    async def handle_DATA(self, server, session, envelope) -> str:
        headers = BytesHeaderParser().parsebytes(envelope.original_content)
        self.acks[str(headers.get("In-Reply-To", "")).strip()] += 1
        return "250 2.0.0 Queued"


class _CountingSMTP(SMTP):
    def connection_made(self, transport) -> None:
        self.event_handler.open += 1
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        self.event_handler.open -= 1
        super().connection_lost(error)


class _CountingController(Controller):
    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)
