"""A TCP proxy on loopback that a test controls, to play a link that fails.

It runs in the caller's event loop and forwards bytes between each client and the
target. ``refuse()`` plays a peer that is down (open connections are closed, new ones
closed at once); ``blackhole()`` plays a dead link (connections stay open, new ones are
accepted, and nothing passes either way); ``restore()`` forwards new connections again,
while black-holed ones stay dead until one end closes them. When either end of a
connection closes, the proxy closes the other: a server behind a dead link learns of
its client's end only then, as it would from its keepalive much later.
"""

from __future__ import annotations

import asyncio
import contextlib

FORWARD, REFUSE, BLACKHOLE = "forward", "refuse", "blackhole"


class _Link:
    """One client connection: its writers (client first, then the target's, if any)."""

    def __init__(self, client: asyncio.StreamWriter, dead: bool) -> None:
        self.writers = [client]
        self.dead = dead

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class TcpProxy:
    """``start()`` it, point the client at ``port``, and fail the link at will."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self._mode = FORWARD
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task] = set()

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return len(self._links)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for their handlers."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in self._links:
            link.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def refuse(self) -> None:
        self._mode = REFUSE
        for link in self._links:
            link.close()

    def blackhole(self) -> None:
        self._mode = BLACKHOLE
        for link in self._links:
            link.dead = True

    def restore(self) -> None:
        self._mode = FORWARD

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == REFUSE:
            writer.close()
            return
        link = _Link(writer, dead=self._mode == BLACKHOLE)
        handler = asyncio.current_task()
        self._links.add(link)
        self._handlers.add(handler)
        try:
            await self._carry(link, reader)
        except OSError:
            pass  # the target refused, or a peer reset: the link closes either way
        finally:
            link.close()
            self._links.discard(link)
            self._handlers.discard(handler)

    async def _carry(self, link: _Link, client: asyncio.StreamReader) -> None:
        """Pump both ways until either end closes (only swallow the client's bytes
        when the link was dead from the start)."""
        if link.dead:
            await _pump(client, None, link)
            return
        target, target_writer = await asyncio.open_connection(self.target_host, self.target_port)
        link.writers.append(target_writer)
        pumps = [
            asyncio.create_task(_pump(client, target_writer, link)),
            asyncio.create_task(_pump(target, link.writers[0], link)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None, link: _Link
) -> None:
    """Copy ``reader`` to ``writer`` until EOF; drop the bytes while the link is dead."""
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            if writer is not None and not link.dead:
                writer.write(data)
                await writer.drain()
