"""The test TCP proxy against a plain echo server: it forwards, refuses and black-holes."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import wait_until
from tests.tcpproxy import TcpProxy


class Echo:
    """An echo server on loopback that records every byte it receives and keeps its
    connections' writers, in order, so a test can push bytes or hang up."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while data := await reader.read(65536):
            self.received += data
            writer.write(data)
            await writer.drain()
        writer.close()


@pytest.fixture
async def echo():
    server = Echo()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(echo):
    tcp = TcpProxy("127.0.0.1", echo.port)
    await tcp.start()
    yield tcp
    await tcp.stop()


async def connect(proxy: TcpProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def round_trip(proxy: TcpProxy, data: bytes) -> bytes:
    reader, writer = await connect(proxy)
    writer.write(data)
    echoed = await reader.readexactly(len(data))
    writer.close()
    return echoed


async def open_connections(proxy: TcpProxy, count: int) -> None:
    async def counted() -> bool:
        return proxy.connections == count

    await wait_until(counted, f"{count} open connection(s) at the proxy", interval=0.005)


async def test_forwards_both_ways_and_counts_connections(proxy):
    reader, writer = await connect(proxy)
    writer.write(b"hello")
    assert await reader.readexactly(5) == b"hello"
    assert proxy.connections == 1
    writer.close()
    await open_connections(proxy, 0)


async def test_refuse_closes_open_connections_and_new_ones(proxy, echo):
    reader, writer = await connect(proxy)
    writer.write(b"a")
    assert await reader.readexactly(1) == b"a"
    proxy.refuse()
    assert await reader.read() == b""
    refused, _ = await connect(proxy)
    assert await refused.read() == b""
    assert proxy.connections == 0
    proxy.restore()
    assert await round_trip(proxy, b"again") == b"again"
    assert echo.received == b"aagain"


async def test_blackhole_forwards_nothing_either_way_until_restored(proxy, echo):
    old_reader, old_writer = await connect(proxy)
    old_writer.write(b"1")
    assert await old_reader.readexactly(1) == b"1"
    proxy.blackhole()
    old_writer.write(b"lost")
    echo.writers[0].write(b"late")
    _, new_writer = await connect(proxy)
    new_writer.write(b"lost too")
    await open_connections(proxy, 2)
    proxy.restore()
    old_writer.write(b"still lost")
    # A fresh connection is the barrier: once its bytes came back, the dead ones' would
    # have reached the echo server too if the proxy had let them through.
    assert await round_trip(proxy, b"barrier") == b"barrier"
    assert echo.received == b"1barrier"
    await open_connections(proxy, 2)  # the barrier's is gone, the dead ones stay
    # The server hangs up: its "late" would have reached the client before that end.
    echo.writers[0].close()
    assert await old_reader.read() == b""
    new_writer.close()
    await open_connections(proxy, 0)
