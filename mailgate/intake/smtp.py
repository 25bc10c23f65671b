"""SMTP and LMTP intake: envelope in, journal entry and status code out.

The handler owns policy (which recipients are ours, store before answering); the
aiosmtpd protocol owns the wire. ``SessionRegistry`` bounds concurrent sessions, per
client too, and lets shutdown wait for messages in flight while idle sessions go.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import stat
from dataclasses import dataclass, field

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailgate.addresses import envelope_sender, mailbox
from mailgate.config import Smtp, parse_listen
from mailgate.pipeline.journal import Arrival, Journal, JournalUnavailable
from mailgate.pipeline.parse import is_empty
from mailgate.runtime import RuntimeConfig

log = logging.getLogger(__name__)

TEMPFAIL = "451 4.3.0 Could not store the message, please try again later"
EMPTY = "554 5.6.0 Message is empty"
SHUTDOWN = b"421 4.3.2 Service shutting down, try again later\r\n"
TOO_MANY = b"421 4.7.0 Too many connections, try again later\r\n"
NULL_SENDER = "<>"  # aiosmtpd needs a non-empty sender until DATA


class IntakeHandler:
    """aiosmtpd handler: accept our recipients, journal the message, then answer."""

    def __init__(self, runtime: RuntimeConfig, journal: Journal, source: str) -> None:
        self._runtime = runtime
        self._journal = journal
        self._source = source

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options
    ) -> str:
        sender = envelope_sender(address)  # aiosmtpd has read the path, quotes kept
        if sender is None:
            return f"553 5.1.7 <{address}>: bad sender address syntax"
        envelope.mail_from = sender or NULL_SENDER
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options
    ) -> str:
        recipient = mailbox(address)
        if not self._runtime.routes.is_ours(recipient):
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(recipient)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if is_empty(envelope.original_content or b""):
            return EMPTY
        return await self._store(session, envelope)

    async def _store(self, session: Session, envelope: Envelope) -> str:
        """Journal the message; the status that says whether it was stored."""
        arrival = Arrival(
            source=self._source,
            mail_from="" if envelope.mail_from == NULL_SENDER else envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            raw=envelope.original_content or b"",
            peer=_peer_text(session.peer),
            helo=session.host_name or "",
        )
        try:
            entry_id = await self._journal.store(arrival)
        except JournalUnavailable as exc:
            log.warning("message deferred: %s", exc, extra={"fields": {"peer": arrival.peer}})
            return TEMPFAIL
        return f"250 2.0.0 Queued as {entry_id}"


def _peer_text(peer) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "local")


@dataclass
class SessionRegistry:
    """The live sessions of all listeners, for limits and graceful shutdown."""

    max_sessions: int
    max_per_client: int
    sessions: set[SMTP] = field(default_factory=set)
    per_client: dict[str, int] = field(default_factory=dict)

    def admit(self, protocol: SMTP, client: str) -> bool:
        if len(self.sessions) >= self.max_sessions:
            return False
        if self.per_client.get(client, 0) >= self.max_per_client:
            return False
        self.sessions.add(protocol)
        self.per_client[client] = self.per_client.get(client, 0) + 1
        return True

    def release(self, protocol: SMTP, client: str) -> None:
        if protocol in self.sessions:
            self.sessions.discard(protocol)
            left = self.per_client.get(client, 1) - 1
            if left:
                self.per_client[client] = left
            else:
                self.per_client.pop(client, None)

    def close_idle(self) -> None:
        """Say 421 to sessions not inside a mail transaction and close them."""
        for protocol in list(self.sessions):
            envelope = getattr(protocol, "envelope", None)
            transport = protocol.transport
            if transport is not None and (envelope is None or envelope.mail_from is None):
                transport.write(SHUTDOWN)
                transport.close()

    def abort_all(self) -> None:
        for protocol in list(self.sessions):
            if protocol.transport is not None:
                protocol.transport.abort()

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for transactions in flight, then cut the rest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.sessions and loop.time() < deadline:
            self.close_idle()
            await asyncio.sleep(0.05)
        if self.sessions:
            log.warning("closing %d session(s) still open after grace", len(self.sessions))
            self.abort_all()


class _Admitted:
    """Mixin for aiosmtpd protocols: register the session, refuse it over the limits."""

    registry: SessionRegistry
    # Long lines are legal in the mail we must keep (a 100 KB header happens).
    line_length_limit = 4 << 20

    async def _handle_client(self) -> None:
        client = _peer_text(self.session.peer).rpartition(":")[0] or "local"
        if not self.registry.admit(self, client):
            self.transport.write(TOO_MANY)
            self.transport.close()
            return
        try:
            await super()._handle_client()
        finally:
            self.registry.release(self, client)


class SmtpSession(_Admitted, SMTP):
    pass


class LmtpSession(_Admitted, LMTP):
    """LMTP answers a message once per accepted recipient (RFC 2033 4.2), whoever
    answers: the handler, or aiosmtpd refusing a line over the limit or too much data,
    which it answers once, as on SMTP; the client would wait for the rest."""

    _replies_owed = 0  # set at "354": the next reply is to the message

    async def push(self, status: str) -> None:
        owed, self._replies_owed = self._replies_owed, 0
        if owed:
            status = "\r\n".join([status] * owed)
        elif status.startswith("354"):
            self._replies_owed = len(self.envelope.rcpt_tos)
        await super().push(status)


def tls_context(config: Smtp) -> ssl.SSLContext | None:
    if not (config.tls_cert_file and config.tls_key_file):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    return context


async def start_listener(
    listen: str,
    protocol: str,
    runtime: RuntimeConfig,
    journal: Journal,
    registry: SessionRegistry,
) -> asyncio.AbstractServer:
    """Bind one SMTP or LMTP listener (``HOST:PORT`` or ``unix:/path``)."""
    config = runtime.settings.smtp
    handler = IntakeHandler(runtime, journal, protocol)
    session_class = LmtpSession if protocol == "lmtp" else SmtpSession
    tls = tls_context(config) if protocol == "smtp" else None
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        session = session_class(
            handler,
            data_size_limit=config.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=config.hostname,
            ident="mailgate",
            tls_context=tls,
            timeout=config.idle_timeout_seconds,
            loop=loop,
        )
        session.registry = registry
        return session

    where = parse_listen(listen)
    if isinstance(where, str):
        _remove_stale_socket(where)
        server = await loop.create_unix_server(factory, where)
        os.chmod(where, 0o666)  # access is governed by the directory's permissions
    else:
        server = await loop.create_server(factory, where[0], where[1], reuse_address=True)
    log.info("%s listening on %s", protocol.upper(), listen)
    return server


def _remove_stale_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
