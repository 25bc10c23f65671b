"""Waiting on a condition the suite can only poll (a database, /proc, a counter)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(
    check: Callable[[], Awaitable[object]], seconds: float, interval: float = 0.2
) -> float | None:
    """Seconds until ``check()`` was truthy, polled every ``interval``; None if it
    was not within ``seconds``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        if await check():
            return loop.time() - started
        if loop.time() - started > seconds:
            return None
        await asyncio.sleep(interval)
