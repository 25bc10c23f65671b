"""Who may hold an SMTP or LMTP session, and for how long.

``SessionRegistry`` bounds the concurrent sessions of all listeners: in all, per client
address and per client network (a /24 or /64), so a few hosts cannot take every session
and real senders still get in. While most sessions are taken, an idle one gets a
shorter time to speak. Shutdown waits for messages in flight while idle sessions go.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP

from mailgate.config import Smtp
from mailgate.networks import IPAddress, ip_of, network_of

log = logging.getLogger(__name__)

SHUTDOWN = b"421 4.3.2 Service shutting down, try again later\r\n"
TOO_MANY = b"421 4.7.0 Too many connections, try again later\r\n"
TOO_MANY_FROM_CLIENT = b"421 4.7.0 Too many connections from your address, try again later\r\n"
TOO_MANY_FROM_NETWORK = b"421 4.7.0 Too many connections from your network, try again later\r\n"
IDLE = b"421 4.4.2 Idle too long, closing connection\r\n"
BUSY_SHARE = 0.75  # with more of max_sessions taken, idle sessions get the busy timeout


@dataclass(frozen=True)
class Client:
    """The address a session comes from and the network it counts against."""

    address: str
    network: str


def peer_address(peer: object) -> IPAddress | None:
    """The address of a TCP peer (IPv4-mapped IPv6 as IPv4); None on a unix socket."""
    if not (isinstance(peer, tuple) and peer and peer[0]):
        return None
    return ip_of(str(peer[0]))


@dataclass
class SessionRegistry:
    """The live sessions of all listeners, for limits and graceful shutdown."""

    config: Smtp
    sessions: set[SMTP] = field(default_factory=set)
    per_address: Counter[str] = field(default_factory=Counter)
    per_network: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        uncapped = self.config.uncapped_clients
        self._uncapped = [ipaddress.ip_network(net, strict=False) for net in uncapped]

    def client(self, peer: object) -> Client | None:
        """Whom a session counts against beyond ``max_sessions``: nobody on a unix
        socket (no address; its file permissions say who may connect) nor for an MTA in
        front listed in ``uncapped_clients``."""
        address = peer_address(peer)
        if address is None or any(address in network for network in self._uncapped):
            return None
        return Client(str(address), network_of(address))

    def admit(self, protocol: SMTP, client: Client | None) -> bytes | None:
        """Register the session; or, over a limit, the 421 reply that refuses it."""
        refusal = self._refusal(client)
        if refusal:
            return refusal
        was_busy = self.busy()
        self.sessions.add(protocol)
        if client:
            self.per_address[client.address] += 1
            self.per_network[client.network] += 1
        if self.busy() and not was_busy:
            for session in self.sessions:  # idle ones now get the shorter timeout
                session.watch_idle()
        return None

    def _refusal(self, client: Client | None) -> bytes | None:
        config = self.config
        if len(self.sessions) >= config.max_sessions:
            return TOO_MANY
        if client is None:
            return None
        if self.per_address[client.address] >= config.max_sessions_per_client:
            return TOO_MANY_FROM_CLIENT
        if self.per_network[client.network] >= config.max_sessions_per_network:
            return TOO_MANY_FROM_NETWORK
        return None

    def release(self, protocol: SMTP, client: Client | None) -> None:
        if protocol not in self.sessions:
            return
        self.sessions.discard(protocol)
        if client:
            _drop_one(self.per_address, client.address)
            _drop_one(self.per_network, client.network)

    def busy(self) -> bool:
        return len(self.sessions) > self.config.max_sessions * BUSY_SHARE

    def idle_seconds(self) -> float:
        """How long a session may stay silent now: shorter while the server is busy."""
        config = self.config
        if self.busy():
            return min(config.busy_idle_timeout_seconds, config.idle_timeout_seconds)
        return config.idle_timeout_seconds

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


HOOK_PREFIXES = ("smtp_", "auth_", "handle_")
# aiosmtpd's own idle timer counts from the last command, so a long DATA would be cut:
# it is set beyond reach and ours, which counts from the client's last bytes, rules.
AIOSMTPD_TIMEOUT = 7 * 24 * 3600.0


@functools.cache
def _hook_names(cls: type) -> list[str]:
    return [name for name in dir(cls) if name.startswith(HOOK_PREFIXES)]


class HookNamesOnce:
    """aiosmtpd's constructor finds the commands and hooks (``smtp_*``, ``auth_*``,
    ``handle_*``) by scanning ``dir()`` of the session and of its handler on every
    connection: a quarter of a bare server's CPU per message. They are methods of the
    class, so ``dir()`` answers with those names from a cache per class.
    tests/test_smtp_sessions.py fails if aiosmtpd comes to find other names."""

    def __dir__(self) -> list[str]:
        return _hook_names(type(self))


class AdmittedSession(HookNamesOnce):
    """Mixin for aiosmtpd protocols, through asyncio's public protocol methods only:
    admission by the registry on connecting, and an idle timer that counts from the
    client's last bytes for as long as the registry's load allows."""

    # Long lines are legal in the mail we must keep (a 100 KB header happens).
    line_length_limit = 4 << 20

    def __init__(self, handler: object, *, registry: SessionRegistry, **options) -> None:
        self.registry = registry
        self._client: Client | None = None
        self._admitted: bool | None = None  # None until the connection is decided
        self._heard = 0.0  # the loop time of the client's last bytes
        self._idle: asyncio.TimerHandle | None = None
        super().__init__(handler, timeout=AIOSMTPD_TIMEOUT, **options)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted is not None:  # STARTTLS: the same session, now encrypted
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        self._heard = self.loop.time()
        self._client = self.registry.client(peer)
        refusal = self.registry.admit(self, self._client)
        self._admitted = refusal is None
        if refusal:
            log.info("session refused: %s", refusal.decode().strip(), extra=_log_fields(peer))
            transport.write(refusal)
            transport.close()
            return
        super().connection_made(transport)
        self.watch_idle()

    def connection_lost(self, error: Exception | None) -> None:
        if not self._admitted:  # refused: aiosmtpd never started on it
            return
        self.registry.release(self, self._client)
        if self._idle is not None:
            self._idle.cancel()
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        self._heard = self.loop.time()
        super().data_received(data)

    def watch_idle(self) -> None:
        """(Re)arm the idle timer for the timeout the registry's load allows now."""
        if self._idle is not None:
            self._idle.cancel()
        due = self._heard + self.registry.idle_seconds()
        self._idle = self.loop.call_at(due, self._check_idle)

    def _check_idle(self) -> None:
        if self.transport is None:  # closed; the registry has yet to hear of it
            return
        if self.envelope.content is not None:  # a message is in and being stored
            self._heard = self.loop.time()
        if self.loop.time() < self._heard + self.registry.idle_seconds():
            self.watch_idle()
            return
        log.info("idle session closed", extra=_log_fields(self.session.peer))
        self.transport.write(IDLE)
        self.transport.close()


def _log_fields(peer: object) -> dict:
    address = peer_address(peer)
    return {"fields": {"client": str(address or "local")}}


def _drop_one(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
