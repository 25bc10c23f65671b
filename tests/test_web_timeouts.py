"""A web client that never finishes its request loses the connection, over real sockets.

The daemon runs with one-second header and body timeouts; every read in the test is
bounded far above that, and what ends it is the server's answer or its closing the
connection.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support import daemon_running

BOUND = 30.0
TOKEN = "timeouts-token"


@pytest.fixture
async def daemon(setup):
    setup.sections["web"] |= {"header_timeout_seconds": 1.0, "body_timeout_seconds": 1.0}
    setup.sections["api"] = {"tokens": [TOKEN]}
    async with daemon_running(setup) as process:
        yield process


async def connect(daemon) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", daemon.setup.web_port)


async def to_the_close(reader: asyncio.StreamReader) -> bytes:
    """All the server says until it closes the connection."""
    return await asyncio.wait_for(reader.read(), BOUND)


async def test_a_request_head_never_finished_is_closed(daemon):
    silent = await connect(daemon)
    halfway = await connect(daemon)
    halfway[1].write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    # Meanwhile a complete request is answered, and its connection kept for the next.
    reader, writer = await connect(daemon)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert (await asyncio.wait_for(reader.readline(), BOUND)).startswith(b"HTTP/1.1 200")
    for stalled_reader, stalled_writer in (silent, halfway):
        assert await to_the_close(stalled_reader) == b""
        stalled_writer.close()
    writer.close()


async def test_a_form_body_never_finished_gets_408_and_the_close(daemon):
    reader, writer = await connect(daemon)
    head = (
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
    )
    writer.write(head + b"email=alice%40example.test")
    answer = await to_the_close(reader)
    assert answer.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_an_api_body_never_finished_gets_a_json_408(daemon):
    reader, writer = await connect(daemon)
    head = (
        b"PATCH /api/v1/tickets/TCK-1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    writer.write(head + b'{"status": ')
    answer = await to_the_close(reader)
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"]["code"] == "request_timeout"
    writer.close()
    # A body that arrives in time is read as usual (here: no such ticket).
    reader, writer = await connect(daemon)
    writer.write(head.replace(b"100", b"19") + b'{"status": "Open"}\n')
    assert (await asyncio.wait_for(reader.readline(), BOUND)).startswith(b"HTTP/1.1 404")
    writer.close()
