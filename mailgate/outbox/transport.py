"""Delivery transports: the seam in front of the smarthost.

``SmtpTransport`` hands a batch to the smarthost over one SMTP connection
(aiosmtplib), reopened if the server drops it, and reports each message's result as
soon as the smarthost answers it; it hands over the next message only when asked for
the next result, so its caller can record each outcome first. ``CaptureTransport``
sends nothing (so its results come all at once): without a smarthost (the embedded
default) mail is kept in the database for the web UI.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiosmtplib

from mailgate.config import Outbound

log = logging.getLogger(__name__)

# "suppressed": never handed over (automatic mail to addresses that hard-bounced).
Outcome = Literal["sent", "captured", "temporary", "permanent", "suppressed"]


@dataclass(frozen=True)
class Delivery:
    """One message to hand over; ``id`` and ``message_id`` are for the logs."""

    id: int
    message_id: str
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class SendResult:
    """What became of one message; ``detail`` is the server's reply or the error."""

    outcome: Outcome
    detail: str = ""
    refused: tuple[str, ...] = ()  # recipients refused while the others accepted it

    @property
    def ok(self) -> bool:
        return self.outcome in ("sent", "captured")


class Transport(Protocol):
    def send(self, items: Sequence[Delivery]) -> AsyncIterator[list[SendResult]]:
        """One result per item, in order, in lists as they become known: nothing more
        is handed over until the next list is asked for. Delivery problems are
        results, not raised. Close the iterator (``contextlib.aclosing``) to stop early."""
        ...


class CaptureTransport:
    """No smarthost: every message is kept in the database (state ``captured``)."""

    async def send(self, items: Sequence[Delivery]) -> AsyncIterator[list[SendResult]]:
        yield [SendResult("captured", "no smarthost configured")] * len(items)


class SmtpTransport:
    """Relays through a smarthost, one connection per batch."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool = False,
        username: str = "",
        password: str = "",
        timeout: float = 60.0,
        local_hostname: str | None = None,
    ) -> None:
        self._options: dict = {"hostname": host, "port": port, "timeout": timeout}
        # False, not None: aiosmtplib would otherwise try STARTTLS whenever offered.
        self._options["start_tls"] = starttls
        if username:
            self._options |= {"username": username, "password": password}
        self._local_hostname = local_hostname
        self.where = f"{host}:{port}"

    async def send(self, items: Sequence[Delivery]) -> AsyncIterator[list[SendResult]]:
        if self._local_hostname is None:  # getfqdn may wait on DNS: once, off the loop
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(**self._options, local_hostname=self._local_hostname)
        connection = _Connection(client, self.where)
        try:
            for item in items:
                yield [await connection.deliver(item)]
        except BaseException:  # also closed early by the caller (GeneratorExit)
            client.close()
            raise
        await connection.quit()


class _Lost(Exception):
    """The connection failed mid-transaction; the message may be tried again."""


class _Connection:
    """One SMTP session for a batch.

    A dropped connection is reopened and the message tried once more (servers close
    idle or long-lived sessions); a second loss in a row, or a failed connect, marks
    the smarthost unusable and the rest of the batch fails temporarily at once, so a
    dead or hanging server costs a few timeouts per batch, not one per message.
    """

    def __init__(self, client: aiosmtplib.SMTP, where: str) -> None:
        self._client = client
        self._where = where
        self._broken: str | None = None

    async def deliver(self, item: Delivery) -> SendResult:
        try:
            return await self._attempt(item)
        except _Lost as lost:
            log.info("outbox %d %s: %s; reconnecting", item.id, item.message_id, lost)
        try:
            return await self._attempt(item)
        except _Lost as lost:
            self._broken = f"smarthost {self._where}: connection lost twice: {lost}"
            return SendResult("temporary", self._broken)

    async def _attempt(self, item: Delivery) -> SendResult:
        if self._broken is None and not self._client.is_connected:
            await self._open()
        if self._broken is not None:
            return SendResult("temporary", self._broken)
        return await _transaction(self._client, item)

    async def _open(self) -> None:
        self._client.close()
        try:
            await self._client.connect()
            if self._client.is_ehlo_or_helo_needed:  # extensions decide the options
                await self._client.ehlo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._client.close()
            self._broken = f"smarthost {self._where}: {_describe(exc)}"
            log.warning("delivery: %s", self._broken)

    async def quit(self) -> None:
        if self._client.is_connected:
            with suppress(aiosmtplib.SMTPException, OSError):
                await self._client.quit()
        self._client.close()


async def _transaction(client: aiosmtplib.SMTP, item: Delivery) -> SendResult:
    """MAIL, RCPT, DATA for one message; aiosmtplib sends RSET after a refusal."""
    try:
        refused, reply = await client.sendmail(
            item.mail_from, list(item.recipients), item.raw, mail_options=_options(client, item)
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return _all_refused(exc.recipients)
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code == 421:  # the server is closing the session: try a fresh one
            raise _Lost(_describe(exc)) from exc
        return SendResult(_kind(exc.code), _describe(exc))
    except aiosmtplib.SMTPNotSupported as exc:
        return SendResult("permanent", f"smarthost cannot take it: {exc}")
    except (aiosmtplib.SMTPException, OSError) as exc:  # disconnects and timeouts
        raise _Lost(_describe(exc)) from exc
    except ValueError as exc:  # an address aiosmtplib will not put on the wire
        client.close()  # the envelope may be half sent: start the next one afresh
        return SendResult("permanent", f"unsendable address: {exc}")
    return _accepted(reply, refused)


def _options(client: aiosmtplib.SMTP, item: Delivery) -> list[str]:
    """BODY=8BITMIME for 8-bit content; SMTPUTF8 for UTF-8 addresses or headers."""
    options = []
    if not item.raw.isascii() and client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    envelope_ascii = all(a.isascii() for a in (item.mail_from, *item.recipients))
    headers = item.raw.partition(b"\r\n\r\n")[0]
    if not envelope_ascii or (not headers.isascii() and client.supports_extension("smtputf8")):
        options.append("SMTPUTF8")
    return options


def _accepted(reply: str, refused: dict) -> SendResult:
    """Sent, even when some recipients were refused: those are noted, not retried."""
    noted = tuple(f"{rcpt}: {r.code} {r.message}" for rcpt, r in refused.items())
    return SendResult("sent", f"250 {reply}", noted)


def _all_refused(errors: list[aiosmtplib.SMTPRecipientRefused]) -> SendResult:
    """Permanent when every refusal is 5xx; any 4xx (greylisting...) retries them all."""
    detail = "; ".join(f"{e.recipient}: {e.code} {e.message}" for e in errors)
    permanent = all(_kind(e.code) == "permanent" for e in errors)
    return SendResult("permanent" if permanent else "temporary", f"refused {detail}")


def _kind(code: int) -> Outcome:
    return "permanent" if 500 <= code < 600 else "temporary"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def transport_for(outbound: Outbound) -> Transport:
    """SMTP through ``outbound.smarthost`` (``host[:port]``, port 25 by default);
    capture when it is empty."""
    if not outbound.smarthost:
        return CaptureTransport()
    address = urlsplit(f"//{outbound.smarthost}")
    return SmtpTransport(
        address.hostname or "localhost",
        address.port or 25,
        starttls=outbound.starttls,
        username=outbound.username,
        password=outbound.password,
    )
