"""Node liveness: every process that claims work keeps a heartbeat row in ``nodes``.

A node's claims (journal entries being processed, outgoing mail being sent) stay its
own while its heartbeat is fresh, however slow its work; once it has been silent for
``[cluster] node_timeout_seconds`` any other node takes them over. A process starting
on a host retires the rows of the processes there that are gone, so a restarted
daemon (or worker) takes its own old claims at once instead of waiting out the
timeout. The row also carries how the node's work loop fares (``LoopState``), which
``/healthz`` and ``/metrics`` read: worker processes have no web of their own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, Row, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailgate.db.models import Node

log = logging.getLogger(__name__)

BEATS_PER_TIMEOUT = 4
FORGET_AFTER = timedelta(days=1)  # rows of nodes gone this long are deleted


@dataclass
class LoopState:
    """How a work loop fares: updated by the loop, written with each heartbeat."""

    progress_at: datetime | None = None  # the end of the last pass that went through
    in_pass_since: datetime | None = None
    failing_since: datetime | None = None
    failures: int = 0  # passes failed in a row
    failures_total: int = 0
    last_error: str | None = None

    def started(self, now: datetime) -> None:
        self.in_pass_since = now

    def passed(self, now: datetime) -> bool:
        """A pass went through; True if the loop had been failing."""
        was_failing = self.failures > 0
        self.progress_at, self.failing_since, self.failures = now, None, 0
        self.in_pass_since = None
        return was_failing

    def failed(self, now: datetime, error: str) -> bool:
        """A pass failed; True if this is a new failure (the first, or another error)."""
        new = self.failures == 0 or error != self.last_error
        self.failing_since = self.failing_since or now
        self.failures += 1
        self.failures_total += 1
        self.last_error = error[:2000]
        self.in_pass_since = None
        return new

    def progress(self, now: datetime) -> datetime | None:
        """Up to when the loop is known to have kept up: now while it waits for work
        after a pass that went through; else the end of its last good pass."""
        idle = self.in_pass_since is None and self.failures == 0
        return now if idle and self.progress_at is not None else self.progress_at


def new_node_id() -> str:
    """Names this process in work claims, so several nodes can share one database."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"[:64]


def claim_is_dead(claimed_by, now: datetime, timeout_seconds: float) -> ColumnElement[bool]:
    """True for a claim whose node has been silent for ``timeout_seconds`` or has left
    (or is unknown: a claim from before heartbeats, or of a node long gone)."""
    live = select(Node.id).where(Node.beat_at >= now - timedelta(seconds=timeout_seconds))
    return or_(claimed_by.is_(None), claimed_by.not_in(live.scalar_subquery()))


async def claim_due(
    connection: AsyncConnection,
    model: type,
    returning: Sequence,
    node: str,
    limit: int,
    now: datetime,
    node_timeout: float,
) -> list[Row]:
    """Mark up to ``limit`` due rows of a work queue (the outbox, webhook deliveries)
    ``sending`` by ``node``; return their ``returning`` columns, by id.

    Due: queued with ``next_attempt_at`` passed, or left ``sending`` by a node that
    died (silent for ``node_timeout`` seconds). PostgreSQL skips rows another node is
    claiming; SQLite has one writer, so the plain UPDATE ... WHERE id IN (SELECT ...
    LIMIT) is already exclusive there.
    """
    due = or_(
        and_(model.state == "queued", model.next_attempt_at <= now),
        and_(model.state == "sending", claim_is_dead(model.claimed_by, now, node_timeout)),
    )
    ids = select(model.id).where(due).order_by(model.id).limit(limit)
    if connection.dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    claim = (
        update(model)
        .where(model.id.in_(ids))
        .values(state="sending", claimed_by=node, claimed_at=now)
        .returning(*returning)
    )
    return sorted(await connection.execute(claim), key=lambda row: row.id)


class NodeHeartbeat:
    """This process's row in ``nodes``: ``join`` it, ``run`` the heartbeat, ``leave``."""

    def __init__(
        self, engine: AsyncEngine, role: str, timeout_seconds: float, node_id: str = ""
    ) -> None:
        self._engine = engine
        self.role = role
        self.id = node_id or new_node_id()
        self.timeout_seconds = timeout_seconds
        self.loop_state = LoopState()
        self.write_error: str | None = None  # the last heartbeat's, until one goes through

    @property
    def interval(self) -> float:
        return min(10.0, max(0.25, self.timeout_seconds / BEATS_PER_TIMEOUT))

    async def join(self) -> None:
        """Write our row, and retire the rows of the processes on this host that are
        gone (their claims become free at once)."""
        now = datetime.now(UTC)
        host, me = socket.gethostname(), process_identity(os.getpid())
        async with self._engine.begin() as connection:
            await connection.execute(delete(Node).where(Node.beat_at < now - FORGET_AFTER))
            rows = await connection.execute(
                select(Node.id, Node.pid, Node.process).where(
                    Node.host == host, Node.beat_at.is_not(None), Node.id != self.id
                )
            )
            gone = [row.id for row in rows if me and process_identity(row.pid) != row.process]
            if gone:
                await connection.execute(update(Node).where(Node.id.in_(gone)).values(beat_at=None))
            await connection.execute(
                insert(Node).values(
                    id=self.id,
                    role=self.role,
                    host=host,
                    pid=os.getpid(),
                    process=me,
                    started_at=now,
                    beat_at=now,
                    failures=0,
                    failures_total=0,
                )
            )
        if gone:
            log.info(
                "%s: took over the claims of %d process(es) gone from this host",
                self.role,
                len(gone),
            )

    def watch(self, state: LoopState) -> None:
        """Write ``state`` (a work loop's) with each heartbeat."""
        self.loop_state = state

    async def beat(self) -> None:
        """Write the heartbeat and the loop's state (raises on a database error)."""
        state, now = self.loop_state, datetime.now(UTC)
        async with self._engine.begin() as connection:
            await connection.execute(
                update(Node)
                .where(Node.id == self.id)
                .values(
                    beat_at=now,
                    progress_at=state.progress(now),
                    failing_since=state.failing_since,
                    failures=state.failures,
                    failures_total=state.failures_total,
                    last_error=state.last_error,
                )
            )

    async def run(self) -> None:
        """Beat every ``interval`` until cancelled; a failure is logged once, until a
        beat goes through again."""
        while True:
            try:
                await self.beat()
            except Exception as exc:  # the database is away: keep trying
                if self.write_error is None:
                    log.warning("%s: cannot write the heartbeat: %s", self.role, exc)
                self.write_error = str(exc) or type(exc).__name__
            else:
                if self.write_error is not None:
                    log.info("%s: heartbeat written again", self.role)
                self.write_error = None
            await asyncio.sleep(self.interval)

    async def leave(self) -> None:
        """Mark the row gone (what we still claim is free at once); errors ignored."""
        try:
            async with asyncio.timeout(self.interval * 2), self._engine.begin() as connection:
                await connection.execute(
                    update(Node).where(Node.id == self.id).values(beat_at=None)
                )
        except Exception as exc:  # the others take over after the timeout instead
            log.warning("%s: could not sign off: %s", self.role, exc)


def process_identity(pid: int) -> str:
    """The boot and start time of process ``pid``: tells it from a later process that
    got the same pid. "" when it does not exist (or /proc cannot tell)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    started = stat.rpartition(")")[2].split()[19]  # field 22, counted after the name
    return f"{boot[:36]}:{started}"
