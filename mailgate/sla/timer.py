"""The SLA timer: keeps each ticket's stored SLA state current and sends warnings
and breach notices when their time comes.

Every node runs one, in the daemon, with no leader: each pass first stores the state
of the tickets changed since it was worked out (``state.py``), then takes the tickets
whose stored due time is within the longest ``warn_before`` of now and sends what
they call for (``notices.py``), each ticket in a transaction of its own that holds it
against the other nodes. "Now" is the runtime's clock (``clock.py``). A pass runs
every ``[tickets] sla_check_seconds``, and at once when the web changed a ticket, so
the inbox's SLA filters follow an agent's reply; a change the pipeline makes (mail
from the customer or an agent) shows there within the period.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.actions import ActionContext
from mailgate.db.models import Ticket
from mailgate.db.session import sessions
from mailgate.loop import LoopWorker, WorkLoop
from mailgate.sla.notices import longest_warning, notify_ticket, waiting
from mailgate.sla.state import BATCH, forget_unsolved, refresh_changed


class SlaTimer(LoopWorker):
    def __init__(
        self,
        engine: AsyncEngine,
        ctx: ActionContext,
        on_outgoing: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._ctx = ctx
        self._on_outgoing = on_outgoing
        self._config_seen = ""
        period = ctx.runtime.settings.tickets.sla_check_seconds
        self.loop = WorkLoop("sla", self.check_once, BATCH, period)

    async def check_once(self) -> int:
        """One pass; returns how many tickets' state it stored (a full batch: go on)."""
        settings = self._ctx.runtime.settings
        now = self._ctx.runtime.clock.now()
        await self._forget_if_config_changed()
        refreshed = await refresh_changed(self._engine, settings, now)
        if not settings.sla:
            return refreshed
        async with sessions(self._engine)() as session:
            soon = Ticket.sla_due_at <= now + longest_warning(settings)
            # Latest first: the tickets coming due, then those just missed; the long
            # overdue (told of already) last.
            query = select(Ticket).where(soon).order_by(Ticket.sla_due_at.desc()).limit(BATCH)
            due = await waiting(session, settings, list(await session.scalars(query)), now)
        sent = 0
        for ticket_id in due:
            sent += await notify_ticket(self._engine, self._ctx, ticket_id, now)
        if sent:
            self._on_outgoing()
        return refreshed

    async def _forget_if_config_changed(self) -> None:
        """At start and after a reload that changed what SLA state depends on."""
        settings = self._ctx.runtime.settings
        parts = (settings.sla, settings.calendars, settings.routes, settings.tickets.statuses)
        text = json.dumps([[item.model_dump() for item in part] for part in parts], default=str)
        if text != self._config_seen:
            await forget_unsolved(self._engine, settings)
            self._config_seen = text
