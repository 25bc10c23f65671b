"""The loop every background worker runs: a pass, then wait for work or a poll.

After a full batch the next pass starts at once; otherwise the loop sleeps until
``wake()`` (new work was committed) or ``poll_seconds``. ``stop()`` lets the pass in
progress finish, so shutdown never cuts a database transaction in half.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)


class WorkLoop:
    def __init__(
        self,
        name: str,
        one_pass: Callable[[], Awaitable[int]],
        batch_size: int,
        poll_seconds: float,
    ) -> None:
        self._name = name
        self._pass = one_pass
        self._batch = batch_size
        self._poll = poll_seconds
        self._wakeup = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                handled = await self._pass()
            except DBAPIError as exc:
                log.warning("%s: database unavailable: %s", self._name, exc.orig or exc)
                handled = 0
            if handled < self._batch and not self._stopping:
                self._wakeup.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._poll)
