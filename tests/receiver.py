"""A real webhook receiver: an aiohttp server on loopback that records each POST.

``answers`` holds the statuses of the next requests (then 200); ``stop()`` and
``start()`` again on the same port make an outage.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass

from aiohttp import web

from tests.support import free_port


@dataclass(frozen=True)
class Received:
    event: str
    delivery: str
    signature: str
    content_type: str
    user_agent: str
    body: bytes

    @property
    def payload(self) -> dict:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        """The receiver's check: HMAC-SHA256 of the exact body, compared in constant time."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.signature)


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.answers: list[int] = []
        self.received: list[Received] = []
        self.refused: list[Received] = []  # answered other than 2xx
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _hook(self, request: web.Request) -> web.Response:
        headers = request.headers
        got = Received(
            headers.get("X-Mailgate-Event", ""),
            headers.get("X-Mailgate-Delivery", ""),
            headers.get("X-Mailgate-Signature", ""),
            headers.get("Content-Type", ""),
            headers.get("User-Agent", ""),
            await request.read(),
        )
        status = self.answers.pop(0) if self.answers else 200
        (self.received if status < 300 else self.refused).append(got)
        self._arrived.set()
        return web.Response(status=status, text="ok" if status < 300 else "try later")

    async def events(self, count: int, seconds: float = 60.0) -> list[Received]:
        """Wait until ``count`` events were accepted; all accepted so far."""
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return list(self.received)
