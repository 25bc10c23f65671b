"""SMTP and LMTP intake: envelope in, journal entry and status code out.

The handler owns policy (which recipients are ours and how many, store before
answering); the aiosmtpd protocol owns the wire; ``sessions.py`` says who may hold a
session and for how long.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import stat

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailgate.addresses import envelope_sender, mailbox
from mailgate.config import Smtp, parse_listen
from mailgate.intake.sessions import AdmittedSession, HookNamesOnce, SessionRegistry
from mailgate.pipeline.journal import Arrival, Journal, JournalUnavailable
from mailgate.pipeline.parse import is_empty
from mailgate.runtime import RuntimeConfig
from mailgate.trust import is_trusted, socket_gid

log = logging.getLogger(__name__)

TEMPFAIL = "451 4.3.0 Could not store the message, please try again later"
EMPTY = "554 5.6.0 Message is empty"
# RFC 5321 4.5.3.1.10: the client sends the message to the recipients taken so far and
# the rest in a later transaction.
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
NULL_SENDER = "<>"  # aiosmtpd needs a non-empty sender until DATA


class IntakeHandler(HookNamesOnce):
    """aiosmtpd handler: accept our recipients, journal the message, then answer.

    ``listen`` is the listener's address as configured: whether it is one of ``[auth]
    trusted_paths`` is asked per message, so a reload takes effect at once."""

    def __init__(self, runtime: RuntimeConfig, journal: Journal, source: str, listen: str) -> None:
        self._runtime = runtime
        self._journal = journal
        self._source = source
        self._listen = listen

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
        if len(envelope.rcpt_tos) >= self._runtime.settings.smtp.max_recipients:
            return TOO_MANY_RECIPIENTS
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
            trusted=is_trusted(self._runtime.settings, self._listen),
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


class SmtpSession(AdmittedSession, SMTP):
    pass


class LmtpSession(AdmittedSession, LMTP):
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
    handler = IntakeHandler(runtime, journal, protocol, listen)
    session_class = LmtpSession if protocol == "lmtp" else SmtpSession
    tls = tls_context(config) if protocol == "smtp" else None
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return session_class(
            handler,
            registry=registry,
            data_size_limit=config.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=config.hostname,
            ident="mailgate",
            tls_context=tls,
            loop=loop,
        )

    where = parse_listen(listen)
    if isinstance(where, str):
        server = await _bind_unix(factory, where, config)
    else:
        server = await loop.create_server(factory, where[0], where[1], reuse_address=True)
    log.info("%s listening on %s", protocol.upper(), listen)
    return server


async def _bind_unix(factory, path: str, config: Smtp) -> asyncio.AbstractServer:
    """Listen on the unix socket ``path`` with ``[smtp] socket_group`` and
    ``socket_mode``: connecting needs write access, so "0660" with the MTA's group
    lets the MTA in and keeps local users out."""
    gid = socket_gid(config.socket_group)  # before binding: a bad name binds nothing
    _remove_stale_socket(path)
    server = await asyncio.get_running_loop().create_unix_server(factory, path)
    try:
        if gid is not None:
            os.chown(path, -1, gid)
        os.chmod(path, int(config.socket_mode, 8))
    except OSError:
        server.close()
        raise
    return server


def _remove_stale_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
