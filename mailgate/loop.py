"""The loop every background worker runs: a pass, then wait for work or a poll.

After a full batch the next pass starts at once; otherwise the loop sleeps until
``wake()`` (new work was committed) or ``poll_seconds``. Work that trickles in (the
last pass found some, but less than a batch) is given ``GATHER_SECONDS`` to build
up: under a steady stream a pass then takes a dozen entries rather than one, and
each pass's fixed cost (claim, queries, commit) is shared. ``stop()`` lets the pass
in progress finish, so shutdown never cuts a database transaction in half.

A failing pass is logged when the loop starts failing (or fails otherwise), and once
when it works again, never once per pass; ``state`` (written with the node's
heartbeat) tells ``/healthz`` whether the loop makes progress.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import DBAPIError

from mailgate.db.nodes import LoopState

log = logging.getLogger(__name__)

ERROR_PAUSE_SECONDS = 1.0
GATHER_SECONDS = 0.05


class WorkLoop:
    def __init__(
        self,
        name: str,
        one_pass: Callable[[], Awaitable[int]],
        batch_size: int,
        poll_seconds: float,
        error_pause: float = ERROR_PAUSE_SECONDS,
    ) -> None:
        self._name = name
        self._pass = one_pass
        self._batch = batch_size
        self._poll = poll_seconds
        self._error_pause = error_pause
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.state = LoopState()

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        while not self._stopping:
            # Cleared before the pass, not after: a wake-up for work committed while
            # the pass ran must not wait for the next poll.
            self._wakeup.clear()
            handled = await self._guarded_pass()
            _reraise_swallowed_cancel()
            if handled < self._batch and not self._stopping:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancellation that lands as the event is set, and the loop runs on.
                with suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wakeup.wait()
                if handled and not self._stopping:
                    await asyncio.sleep(GATHER_SECONDS)

    async def _guarded_pass(self) -> int:
        """One pass; a failure is noted and paused on, never fatal to the daemon."""
        self.state.started(datetime.now(UTC))
        try:
            handled = await self._pass()
        except Exception as exc:
            self._failed(exc)
            await asyncio.sleep(self._error_pause)
            return 0
        if self.state.passed(datetime.now(UTC)):
            log.info("%s: working again", self._name)
        return handled

    def _failed(self, exc: Exception) -> None:
        outage = isinstance(exc, DBAPIError | OSError)
        what = f"database unavailable: {getattr(exc, 'orig', exc)}" if outage else repr(exc)
        if not self.state.failed(datetime.now(UTC), what):
            return  # said already
        if outage:
            log.warning("%s: %s; retrying", self._name, what)
        else:
            log.error("%s: pass failed: %s; retrying", self._name, what, exc_info=exc)


def backoff(base: float, cap: float, tries: int, rng: random.Random) -> timedelta:
    """The wait before the next try after ``tries`` failed ones: doubling from
    ``base`` up to ``cap``, with 10 % jitter so retries of many items spread out."""
    delay = min(cap, base * 2 ** min(tries - 1, 32))
    return timedelta(seconds=delay * rng.uniform(0.9, 1.1))


def _reraise_swallowed_cancel() -> None:
    """Honour a cancellation that a library swallowed during the pass.

    On Python 3.11 ``asyncio.wait_for`` (aiosmtplib reads replies with it) returns
    the result instead of raising when a cancellation lands as the reply arrives;
    the task is left "cancelling" and would otherwise run on forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class LoopWorker:
    """A worker whose passes ``self.loop`` (a ``WorkLoop``) runs: ``wake`` starts the
    next pass now (new work was committed), ``stop`` ends ``run`` after the pass in
    progress, so nothing done goes unrecorded; ``run`` works until stopped or
    cancelled, errors logged, never fatal."""

    loop: WorkLoop

    def wake(self) -> None:
        self.loop.wake()

    def stop(self) -> None:
        self.loop.stop()

    async def run(self) -> None:
        await self.loop.run()
