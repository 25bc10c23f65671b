"""Is mail flowing? What ``/healthz``, ``/status``, ``/metrics`` and the watchdog tell.

Mail is stuck when the journal cannot be written, when work has waited longer than
``[health] stall_seconds`` while no worker of its kind made progress, or when a
live worker fails pass after pass or has not finished a pass for that long (its
claims are then held by a node that looks alive). The workers run in processes of
their own, on this node and others, so what they do is read from their heartbeat
rows (``db/nodes.py``), never from this process's memory.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailgate.config import Settings
from mailgate.db.models import JournalEntry, Node, OutboxItem
from mailgate.localtime import utc

FAILING_PASSES = 3  # failed passes in a row that make a worker "failing"
QUEUES = {"pipeline": "journal", "delivery": "outbox"}  # what each kind of worker works off


@dataclass(frozen=True)
class Problem:
    component: str  # "journal", "pipeline", "delivery"
    reason: str  # for anyone: no addresses, hosts or error texts
    detail: str = ""  # the error, for signed-in agents


@dataclass(frozen=True)
class Health:
    problems: tuple[Problem, ...]
    oldest_waiting: dict[str, float | None]  # queue -> seconds the oldest item waits

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        return {
            "status": "ok" if self.ok else "unavailable",
            "problems": [{"component": p.component, "reason": p.reason} for p in self.problems],
            "oldest_waiting_seconds": self.oldest_waiting,
        }


def local_problems(journal_error: str | None, heartbeat_error: str | None) -> list[Problem]:
    """This process's own: its last failure to commit mail and to write its heartbeat
    (each None once a write went through again)."""
    problems = []
    if journal_error:
        problems.append(Problem("journal", "mail cannot be stored", journal_error))
    if heartbeat_error:
        problems.append(Problem("database", "the database cannot be written", heartbeat_error))
    return problems


async def assess(engine: AsyncEngine, settings: Settings, local: list[Problem]) -> Health:
    """The health of the cluster as this node sees it, with its ``local`` problems."""
    now = datetime.now(UTC)
    async with engine.connect() as connection:
        nodes = await _node_rows(connection)
        waiting = {
            "journal": await connection.scalar(
                select(func.min(JournalEntry.received_at)).where(
                    JournalEntry.state.in_(("pending", "processing"))
                )
            ),
            "outbox": await connection.scalar(
                select(func.min(OutboxItem.created_at)).where(
                    OutboxItem.state.in_(("queued", "sending"))
                )
            ),
        }
        due = {
            "journal": waiting["journal"],
            "outbox": await connection.scalar(
                select(func.min(OutboxItem.next_attempt_at)).where(
                    OutboxItem.state == "queued", OutboxItem.next_attempt_at <= now
                )
            ),
        }
    problems = list(local)
    for role, queue in QUEUES.items():
        problems += _worker_problems(role, nodes, _age(due[queue], now), settings, now)
    oldest = {queue: _age(since, now) for queue, since in waiting.items()}
    return Health(tuple(problems), oldest)


def _worker_problems(
    role: str, nodes: list, waited: float | None, settings: Settings, now: datetime
) -> list[Problem]:
    stall = settings.health.stall_seconds
    live = [n for n in nodes if n.role == role and _live(n, settings, now)]
    problems = []
    progressed = [utc(n.progress_at) for n in live if n.progress_at is not None]
    if waited is not None and waited > stall and not any(now - p <= _s(stall) for p in progressed):
        reason = f"mail has waited {waited:.0f}s and no {role} worker has made progress"
        problems.append(Problem(role, reason))
    for node in live:
        if trouble := _stuck(node, settings, now):
            problems.append(Problem(role, f"worker {node.id}: {trouble[0]}", trouble[1]))
    return problems


def stuck_workers(nodes: list, settings: Settings, children: Mapping[int, datetime]) -> list[str]:
    """What is wrong with the daemon's worker processes on this host (``children``:
    pid -> start), for the watchdog: silent for node_timeout_seconds (frozen, or
    never joined), failing pass after pass, or making no progress."""
    now, host = datetime.now(UTC), socket.gethostname()
    rows = {node.pid: node for node in nodes if node.host == host and node.role in QUEUES}
    timeout = _s(settings.cluster.node_timeout_seconds)
    found = []
    for pid, started in sorted(children.items()):
        node = rows.get(pid)
        if node is None or not _live(node, settings, now):
            if now - started > timeout:
                found.append(f"worker process {pid}: no heartbeat")
        elif trouble := _stuck(node, settings, now):
            found.append(f"{node.role} worker {pid}: {trouble[0]}")
    return found


async def node_rows(engine: AsyncEngine) -> list:
    """The rows of the nodes that have not left."""
    async with engine.connect() as connection:
        return await _node_rows(connection)


async def _node_rows(connection: AsyncConnection) -> list:
    return list(await connection.execute(select(Node).where(Node.beat_at.is_not(None))))


def _stuck(node, settings: Settings, now: datetime) -> tuple[str, str] | None:
    """(reason, detail) when a live worker fails pass after pass, or has not finished
    a pass for ``stall_seconds`` (an idle one finishes one every poll)."""
    stall = settings.health.stall_seconds
    if node.failures >= FAILING_PASSES:
        since = utc(node.failing_since or now)
        return f"failing pass after pass for {(now - since).total_seconds():.0f}s", node.last_error
    finished = utc(node.progress_at or node.started_at)
    if now - finished > _s(stall):
        return f"no pass finished for {(now - finished).total_seconds():.0f}s", ""
    return None


def _live(node, settings: Settings, now: datetime) -> bool:
    return now - utc(node.beat_at) <= _s(settings.cluster.node_timeout_seconds)


def _age(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else max(0.0, (now - utc(since)).total_seconds())


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
