"""SLA state of stored tickets: the policy that applies and its due times, computed
from the ticket's messages and its status changes (audit events), a few at a time."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Settings, Sla
from mailgate.db.models import AuditEvent, Message, Ticket
from mailgate.localtime import iso_utc, utc
from mailgate.sla.calendar import ALWAYS, BusinessCalendar
from mailgate.sla.due import Due, Event, Targets, due_times
from mailgate.sla.spans import parse_duration

TARGET_NAMES = ("first_response", "next_response", "resolution")


@dataclass(frozen=True)
class TicketSla:
    policy: str
    due: Due
    targets: Targets  # the policy's; None where it sets none

    def shape(self) -> dict:
        """The ``sla`` object of the API's ticket: times in UTC, ISO 8601."""
        times = (self.due.first_response, self.due.next_response, self.due.resolution)
        return {
            "policy": self.policy,
            **{f"{name}_due_at": iso_utc(at) for name, at in zip(TARGET_NAMES, times, strict=True)},
            "breached": list(self.due.breached),
        }


def policy_for(settings: Settings, ticket: Ticket) -> Sla | None:
    """The first ``[[sla]]`` policy matching the ticket's queue and priority."""
    return next((p for p in settings.sla if p.applies_to(ticket.queue, ticket.priority)), None)


def calendar_for(settings: Settings, ticket: Ticket) -> BusinessCalendar:
    """The business hours of the ticket's route; around the clock without one."""
    for route in settings.routes:
        if route.address.lower() == ticket.route_address and route.calendar:
            found = next(c for c in settings.calendars if c.name == route.calendar)
            return BusinessCalendar.from_config(found)
    return ALWAYS


def targets_of(policy: Sla) -> Targets:
    spans = (policy.first_response, policy.next_response, policy.resolution)
    return Targets(*(parse_duration(text) if text else None for text in spans))


async def tickets_sla(
    session: AsyncSession, settings: Settings, tickets: list[Ticket], now: datetime
) -> dict[int, TicketSla | None]:
    """Each ticket's SLA state (None where no policy applies), in two queries."""
    policies = {ticket.id: policy_for(settings, ticket) for ticket in tickets}
    events = await _events(session, settings, [i for i, p in policies.items() if p])
    found: dict[int, TicketSla | None] = {}
    for ticket in tickets:
        policy = policies[ticket.id]
        if policy is None:
            found[ticket.id] = None
            continue
        calendar = calendar_for(settings, ticket)
        targets = targets_of(policy)
        due = due_times(targets, calendar, utc(ticket.created_at), events[ticket.id], now)
        found[ticket.id] = TicketSla(policy.name, due, targets)
    return found


async def _events(session: AsyncSession, settings: Settings, ids: list[int]) -> dict:
    """Customer and agent messages and status changes, by ticket."""
    events: defaultdict[int, list[Event]] = defaultdict(list)
    if not ids:
        return events
    messages = select(Message.ticket_id, Message.kind, Message.created_at).where(
        Message.ticket_id.in_(ids), Message.kind.in_(("customer", "agent"))
    )
    for ticket_id, kind, at in await session.execute(messages):
        events[ticket_id].append(Event(utc(at), kind))
    changes = select(AuditEvent.ticket_id, AuditEvent.at, AuditEvent.data).where(
        AuditEvent.ticket_id.in_(ids), AuditEvent.action == "status"
    )
    for ticket_id, at, data in await session.execute(changes):
        # A status since removed from the config counts as open: the clock runs.
        category = settings.tickets.category_of(str(data.get("new", ""))) or "open"
        events[ticket_id].append(Event(utc(at), "status", category))
    return events
