"""Writing delivery outcomes as the smarthost answers them (group commit).

Each connection of a delivery pass waits for its message's outcome to be written
before it hands the next message over, so a crash re-sends at most the messages in
flight. Outcomes that arrive while a write is running (from the other connections)
share the next transaction. Once a write fails (the database is down), that write's
outcomes and every later one are kept in ``unwritten`` for the next pass, and every
later ``record`` raises at once: nothing more is handed over until they are written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class OutcomesUnwritten(Exception):
    """The outcomes could not be written now; they are kept in ``unwritten``."""


class OutcomeWriter(Generic[T]):
    """``record`` returns once its outcomes are committed by ``write``."""

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[None]]) -> None:
        self._write = write
        self._lock = asyncio.Lock()
        self._waiting: list[tuple[Sequence[T], asyncio.Future[None]]] = []
        self.failure: Exception | None = None  # the first failed write's error
        self.unwritten: list[T] = []

    async def record(self, outcomes: Sequence[T]) -> None:
        """Write ``outcomes`` (with whatever else waits); OutcomesUnwritten if not."""
        if self.failure is not None:
            self.unwritten.extend(outcomes)
            raise OutcomesUnwritten(str(self.failure)) from self.failure
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((outcomes, done))
        async with self._lock:
            if not done.done():  # else an earlier holder of the lock wrote ours too
                group, self._waiting = self._waiting, []
                await self._write_group(group)
        await done

    async def _write_group(self, group: list[tuple[Sequence[T], asyncio.Future[None]]]) -> None:
        outcomes = [outcome for batch, _ in group for outcome in batch]
        try:
            await self._write(outcomes)
        except Exception as exc:
            self.failure = exc
            self.unwritten.extend(outcomes)
            for _, done in group:
                done.set_exception(OutcomesUnwritten(str(exc)))
                done.exception()  # retrieved here: a cancelled waiter may never look
            return
        except BaseException:  # cancelled: the whole pass is going away
            for _, done in group:
                done.cancel()
            raise
        for _, done in group:
            done.set_result(None)
