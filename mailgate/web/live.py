"""Live updates for the agents' pages: one loop per process, shared by its streams.

Every ``[web] live_poll_seconds`` the loop reads what changed since its cursor (new
messages and audit events, ``changes.py``) and hands each open stream the changes its
agent may see; it also beats for the tickets its streams view and reads who else is
on them (``presence.py``). Everything comes from the database, so an agent on one
node hears of a change made through another. With no stream open it does nothing.

A transaction may commit a lower id after a higher one was read (PostgreSQL hands
out ids before commit): each look reaches ``LATE_IDS`` back and skips what it sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.actions.base import agent_name
from mailgate.runtime import RuntimeConfig
from mailgate.web.auth import AgentSession
from mailgate.web.changes import Change, Cursor, changes_since, current_cursor
from mailgate.web.presence import Here, beat, leave, present

log = logging.getLogger(__name__)

LATE_IDS = 20
BACKLOG = 1000  # events waiting for a slow browser; past that it reloads the page


@dataclass(frozen=True)
class Event:
    """One server-sent event; ``key`` names the row it reports, to drop repeats."""

    name: str
    data: object
    id: str | None = None
    key: tuple[str, int] | None = None

    def encode(self) -> bytes:
        head = f"id: {self.id}\n" if self.id else ""
        # JSON escapes every line break, so the data is one line.
        return f"{head}event: {self.name}\ndata: {json.dumps(self.data)}\n\n".encode()


def ticket_event(change: Change, cursor: Cursor) -> Event:
    data = {
        "code": change.code,
        "new": change.what == "created" and not change.spam,
        "message": change.source == "message",
    }
    return Event("ticket", data, str(cursor), change.key)


@dataclass(eq=False)
class Stream:
    """One open page: the inbox or board (``ticket_id`` None) or a ticket page."""

    agent: AgentSession
    ticket_id: int | None
    since: Cursor | None  # the page knew everything up to here
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    sent: set[tuple[str, int]] = field(default_factory=set)  # caught up already
    presence: frozenset[Here] | None = None
    overflowed: bool = False
    connected: Callable[[], bool] = lambda: True  # False once the browser went away

    def wants(self, change: Change) -> bool:
        if self.since is not None and not self.since.past(change.key):
            return False
        if self.ticket_id is not None and change.ticket_id != self.ticket_id:
            return False
        return self.agent.can_see(change)

    def put(self, event: Event | None) -> None:
        if self.queue.qsize() >= BACKLOG:
            self.overflowed = True
            return
        self.queue.put_nowait(event)


class LiveHub:
    """The process's one look at the database for all its open streams."""

    def __init__(self, engine: AsyncEngine, runtime: RuntimeConfig) -> None:
        self.engine, self.runtime = engine, runtime
        self.streams: set[Stream] = set()
        self.cursor: Cursor | None = None
        self._sent: set[tuple[str, int]] = set()
        self._beaten_at = 0.0
        self._wake = asyncio.Event()
        self.closed = False

    def open(self, stream: Stream) -> Stream:
        """Add ``stream``, within its agent's limit on this node (else 429); a stream
        whose browser went away (a reload a moment ago) does not count."""
        if self.closed:
            raise web.HTTPServiceUnavailable(text="The server is stopping.")
        limit = self.runtime.settings.web.live_streams_per_agent
        email = stream.agent.email
        if sum(s.agent.email == email and s.connected() for s in self.streams) >= limit:
            raise web.HTTPTooManyRequests(text=f"At most {limit} live pages per agent.")
        self.streams.add(stream)
        self._beaten_at = 0.0  # the others see the new viewer at the next look
        self._wake.set()
        return stream

    async def close(self, stream: Stream) -> None:
        self.streams.discard(stream)
        if stream.ticket_id is None or self._viewing(stream.ticket_id, stream.agent.email):
            return
        try:
            await leave(self.engine, stream.ticket_id, stream.agent.email)
        except Exception as exc:  # the row expires on its own
            log.warning("live: could not record an agent leaving: %s", exc)

    def _viewing(self, ticket_id: int, email: str) -> bool:
        return any(s.ticket_id == ticket_id and s.agent.email == email for s in self.streams)

    def shutdown(self) -> None:
        """End every stream, so the server stops without waiting for browsers."""
        self.closed = True
        for stream in self.streams:
            stream.queue.put_nowait(None)
        self._wake.set()

    async def run(self) -> None:
        while not self.closed:
            if self.streams:
                try:
                    await self.look()
                except Exception as exc:  # the database is away: look again later
                    log.warning("live: could not read changes: %s", exc)
            else:
                self.cursor = None  # idle: start afresh with the next stream
            try:
                interval = self.runtime.settings.web.live_poll_seconds
                await asyncio.wait_for(self._wake.wait(), interval)
            except TimeoutError:
                pass
            self._wake.clear()

    async def ready(self) -> None:
        """Start from what is committed now, if idle until now. A new stream waits for
        this before it catches up from its own cursor, so nothing falls in between."""
        if self.cursor is None:
            async with self.engine.connect() as connection:
                cursor = await current_cursor(connection)
            if self.cursor is None:
                self.cursor = cursor

    async def look(self) -> None:
        await self._changes()
        await self._presence(datetime.now(UTC))

    async def _changes(self) -> None:
        await self.ready()
        async with self.engine.connect() as connection:
            back = Cursor(self.cursor.message - LATE_IDS, self.cursor.audit - LATE_IDS)
            fresh = [c for c in await changes_since(connection, back) if c.key not in self._sent]
        if not fresh:
            return
        self.cursor = self.cursor.after(fresh)
        floor = Cursor(self.cursor.message - LATE_IDS, self.cursor.audit - LATE_IDS)
        self._sent = {key for key in self._sent if floor.past(key)}
        self._sent.update(change.key for change in fresh)
        for stream in self.streams:
            for change in fresh:
                if stream.wants(change):
                    stream.put(ticket_event(change, self.cursor))

    async def _presence(self, now: datetime) -> None:
        viewed = {(s.ticket_id, s.agent.email) for s in self.streams if s.ticket_id is not None}
        if not viewed:
            return
        timeout = self.runtime.settings.web.presence_timeout_seconds
        if time.monotonic() - self._beaten_at >= timeout / 3:
            await beat(self.engine, viewed, now)
            self._beaten_at = time.monotonic()
        here = await present(self.engine, {ticket for ticket, _ in viewed}, now, timeout)
        for stream in list(self.streams):
            if stream.ticket_id is None:
                continue
            others = frozenset(h for h in here[stream.ticket_id] if h.agent != stream.agent.email)
            if others != stream.presence:
                stream.presence = others
                stream.put(Event("presence", self._names(others)))

    def _names(self, others: frozenset[Here]) -> list[dict[str, str]]:
        named = [
            {"name": agent_name(self.runtime, h.agent) or h.agent, "typing": h.typing}
            for h in others
        ]
        return sorted(named, key=lambda item: item["name"])


LIVE = web.AppKey("live", LiveHub)
