"""Delivery transports: the seam in front of the smarthost.

``SmtpTransport`` sends a batch over one reused SMTP connection (aiosmtplib), each
message with its own result; ``CaptureTransport`` sends nothing and keeps the mail
for the web UI (the embedded default has no smarthost).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import aiosmtplib

from mailgate.config import Outbound, parse_listen

log = logging.getLogger(__name__)

Outcome = Literal["sent", "captured", "temporary", "permanent"]


@dataclass(frozen=True)
class Outgoing:
    id: int
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str = ""


class Transport(Protocol):
    async def send(self, items: Sequence[Outgoing]) -> list[SendResult]: ...


class CaptureTransport:
    async def send(self, items: Sequence[Outgoing]) -> list[SendResult]:
        return [SendResult("captured", "captured: no smarthost configured") for _ in items]


class SmtpTransport:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool = False,
        username: str = "",
        password: str = "",
        timeout: float = 60.0,
    ) -> None:
        self._options = {
            "hostname": host,
            "port": port,
            "timeout": timeout,
            "start_tls": starttls,
            "use_tls": False,
        }
        self._login = (username, password) if username else None

    async def send(self, items: Sequence[Outgoing]) -> list[SendResult]:
        results: list[SendResult] = []
        client: aiosmtplib.SMTP | None = None
        try:
            for item in items:
                if client is None or not client.is_connected:
                    client = await self._connect(items, results)
                    if client is None:
                        return results
                results.append(await _send_one(client, item))
        finally:
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except aiosmtplib.SMTPException:
                    client.close()
        return results

    async def _connect(self, items, results) -> aiosmtplib.SMTP | None:
        """Connect and log in; on failure every unsent item fails temporarily."""
        client = aiosmtplib.SMTP(**self._options)
        try:
            await client.connect()
            if self._login:
                await client.login(*self._login)
        except (aiosmtplib.SMTPException, OSError) as exc:
            detail = f"smarthost {self._options['hostname']}:{self._options['port']}: {exc}"
            log.warning("delivery: %s", detail)
            results.extend(SendResult("temporary", detail) for _ in items[len(results) :])
            return None
        return client


def _mail_options(client: aiosmtplib.SMTP, item: Outgoing) -> list[str]:
    """8-bit content asks for 8BITMIME, and SMTPUTF8 where the server offers it."""
    if item.raw.isascii() and item.mail_from.isascii():
        return []
    options = ["BODY=8BITMIME"]
    if client.supports_extension("smtputf8"):
        options.append("SMTPUTF8")
    return options


async def _send_one(client: aiosmtplib.SMTP, item: Outgoing) -> SendResult:
    try:
        refused, reply = await client.sendmail(
            item.mail_from,
            list(item.recipients),
            item.raw,
            mail_options=_mail_options(client, item),
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return SendResult(_kind(exc.recipients[0].code), _refusals(exc.recipients))
    except aiosmtplib.SMTPResponseException as exc:
        await _reset(client)
        return SendResult(_kind(exc.code), f"{exc.code} {exc.message}")
    except (aiosmtplib.SMTPException, OSError) as exc:
        client.close()
        return SendResult("temporary", f"connection lost: {exc}")
    detail = reply
    if refused:
        detail += "; refused: " + "; ".join(f"{r} {e.code} {e.message}" for r, e in refused.items())
    return SendResult("sent", detail)


def _kind(code: int) -> Outcome:
    return "permanent" if 500 <= code < 600 else "temporary"


def _refusals(errors) -> str:
    return "; ".join(f"{error.recipient}: {error.code} {error.message}" for error in errors)


async def _reset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


def transport_for(outbound: Outbound) -> Transport:
    if not outbound.smarthost:
        return CaptureTransport()
    host, port = parse_listen(outbound.smarthost)
    return SmtpTransport(
        host,
        port,
        starttls=outbound.starttls,
        username=outbound.username,
        password=outbound.password,
    )
