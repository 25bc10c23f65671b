"""The load: concurrent SMTP clients offering new-ticket mail at a steady rate.

Every message carries a unique marker (``TAG-N``) in its Message-ID and subject and
comes from a sender of its own. A client that gets a ``4xx`` or loses the connection
sends the same bytes again after a pause that doubles each time, as an MTA would, to
any of the ports (several nodes are several MX hosts); a ``5xx`` is final. Only a
``250`` obliges the daemon to make a ticket of the message.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiosmtplib

RETRY_PAUSE_SECONDS = (0.5, 4.0)  # first and longest pause before sending again
CLIENT_TIMEOUT_SECONDS = 20.0
SUBJECT = "Fault trial"


def marker_of(tag: str, number: int) -> str:
    return f"{tag}-{number}"


def message_id_of(marker: str) -> str:
    return f"<{marker}@client.test>"


def new_ticket_mail(marker: str, size: int) -> bytes:
    head = (
        f"From: Customer <{marker}@client.test>\r\n"
        "To: support@example.test\r\n"
        f"Subject: {SUBJECT} {marker}\r\n"
        f"Message-ID: {message_id_of(marker)}\r\n\r\n"
    )
    body = ("y" * 76 + "\r\n") * max(1, (size - len(head)) // 78)
    return (head + body).encode()


@dataclass
class Tally:
    """What the clients saw: markers offered and accepted, answers that were not 250."""

    offered: list[str] = field(default_factory=list)
    accepted: set[str] = field(default_factory=set)
    deferred: int = 0  # 4xx answers, timeouts and lost connections (each retried)
    rejected: set[str] = field(default_factory=set)  # 5xx: final
    first_deferral: float | None = None  # loop time of the first 4xx or lost connection


class Load:
    """Offer ``rate`` messages/s over at most ``clients`` connections at a time."""

    def __init__(self, ports: Sequence[int], tag: str, rate: float, clients: int, size: int):
        self.ports = list(ports)
        self.tag = tag
        self.rate = rate
        self.size = size
        self.tally = Tally()
        self._queue: asyncio.Queue[tuple[str, int, int]] = asyncio.Queue()  # marker, try, port
        self._clients = clients
        self._unsettled = 0  # offered, neither accepted nor rejected yet
        self._offered_all = False
        self._settled = asyncio.Event()  # set once all is offered and settled

    async def run(self, seconds: float, settle_seconds: float) -> Tally:
        """Offer mail for ``seconds``, then keep retrying what is not settled for at
        most ``settle_seconds`` more; returns the tally."""
        workers = [asyncio.create_task(self._client()) for _ in range(self._clients)]
        try:
            await self._produce(seconds)
            if not self._unsettled:
                self._settled.set()
            await asyncio.wait_for(self._settled.wait(), settle_seconds)
        except TimeoutError:
            pass  # what is still unsettled never got 250: not owed a ticket
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return self.tally

    async def _produce(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for number in itertools.count():
            at = started + number / self.rate
            if at - started >= seconds:
                self._offered_all = True
                return
            await asyncio.sleep(max(0.0, at - loop.time()))
            marker = marker_of(self.tag, number)
            self.tally.offered.append(marker)
            self._unsettled += 1
            self._queue.put_nowait((marker, 0, number))

    async def _client(self) -> None:
        while True:
            marker, attempt, turn = await self._queue.get()
            code = await self._send(marker, self.ports[turn % len(self.ports)])
            if code == 250:
                self.tally.accepted.add(marker)
            elif code >= 500:
                self.tally.rejected.add(marker)
            else:
                self._deferred()
                first, longest = RETRY_PAUSE_SECONDS
                again = (marker, attempt + 1, turn + 1)  # to the next port, if there are more
                asyncio.get_running_loop().call_later(
                    min(first * 2**attempt, longest), self._queue.put_nowait, again
                )
                continue
            self._unsettled -= 1
            if not self._unsettled and self._offered_all:
                self._settled.set()

    def _deferred(self) -> None:
        self.tally.deferred += 1
        if self.tally.first_deferral is None:
            self.tally.first_deferral = asyncio.get_running_loop().time()

    async def _send(self, marker: str, port: int) -> int:
        """The final reply code, or 421 for a connection that failed or timed out."""
        try:
            await aiosmtplib.send(
                new_ticket_mail(marker, self.size),
                sender=f"{marker}@client.test",
                recipients=["support@example.test"],
                hostname="127.0.0.1",
                port=port,
                timeout=CLIENT_TIMEOUT_SECONDS,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            return min(refusal.code for refusal in error.recipients)
        except aiosmtplib.SMTPResponseException as error:
            return error.code
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            return 421
        return 250
