"""The sd_notify protocol: READY, STOPPING, RELOADING and watchdog pings.

Without ``$NOTIFY_SOCKET`` (not under systemd) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from contextlib import suppress

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        self._address = address
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_seconds = int(usec) / 1_000_000 if usec.isdigit() else 0.0

    def notify(self, *states: str) -> None:
        if not self._address:
            return
        # systemd gone, or not reading (a full queue): nothing to tell, and never wait
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, suppress(OSError):
            sock.setblocking(False)
            sock.sendto("\n".join(states).encode(), self._address)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    async def watchdog(self, stuck: Callable[[], Awaitable[list[str]]]) -> None:
        """Ping the watchdog at half its interval while ``stuck()`` finds nothing wrong,
        forever (no-op when it is off). While something is stuck the pings stop, and
        systemd restarts the service once the interval is out. The check runs beside
        the pings, so a slow one delays no ping; each ping follows the last verdict."""
        if not self.watchdog_seconds:
            return
        verdict: list[str] = []
        checking = asyncio.create_task(stuck())
        try:
            while True:
                if checking.done():
                    verdict = self._new_verdict(verdict, checking.result())
                    checking = asyncio.create_task(stuck())
                if not verdict:
                    self.notify("WATCHDOG=1")
                await asyncio.sleep(self.watchdog_seconds / 2)
        finally:
            checking.cancel()

    @staticmethod
    def _new_verdict(old: list[str], new: list[str]) -> list[str]:
        if new and not old:
            log.error("not feeding the systemd watchdog: %s", "; ".join(new))
        elif old and not new:
            log.info("feeding the systemd watchdog again")
        return new
