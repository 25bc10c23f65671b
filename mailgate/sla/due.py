"""A ticket's SLA due times and breaches, from what happened to it.

The clock runs while the ticket is new or open, in the calendar's business hours. It
pauses while the ticket is pending (waiting on the customer) and stops while it is
solved or closed; a reopened ticket's clock runs on from where it stopped.

- first response: from creation to the first agent reply;
- next response: from the first customer message after an agent reply to the next
  agent reply (every such exchange counts toward a breach);
- resolution: from creation until solved, over all the time the clock ran.

A target not met yet is due when its running time reaches the target; while the
ticket is pending that is projected as if the clock started again now, and once it is
solved or closed an unmet target has no due time. A target is breached once its
running time exceeds it, even if it is met later; when each was met is kept.
Pure: events and ``now`` in, due times out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from mailgate.sla.calendar import BusinessCalendar, add_business, business_between

Running = tuple[datetime, datetime | None]  # [start, end); None: still running


@dataclass(frozen=True)
class Targets:
    first_response: timedelta | None = None
    next_response: timedelta | None = None
    resolution: timedelta | None = None


@dataclass(frozen=True)
class Event:
    """A customer or agent message, or a change of status category, at ``at``."""

    at: datetime
    kind: Literal["customer", "agent", "status"]
    category: str = ""  # for "status": new, open, pending, solved, closed


@dataclass(frozen=True)
class Due:
    first_response: datetime | None
    next_response: datetime | None
    resolution: datetime | None
    breached: tuple[str, ...]  # target names, in the order above
    # When each target met so far was met: the first reply; the reply that answered
    # the latest exchange, while none waits; the moment the ticket was solved.
    met: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Clock:
    """When a ticket's clock ran, in business time of ``calendar``."""

    calendar: BusinessCalendar
    running: tuple[Running, ...]
    now: datetime

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        end = min(end, self.now)
        total = timedelta()
        for begins, ends in self.running:
            ends = min(ends or end, end)
            if ends > max(begins, start):
                total += business_between(self.calendar, max(begins, start), ends)
        return total

    def due(self, start: datetime, span: timedelta) -> datetime | None:
        """When the clock, running from ``start``, reaches ``span``; None if it stopped."""
        left = span
        for begins, ends in self.running:
            begins = max(begins, start)
            if ends is None:
                return add_business(self.calendar, begins, left)
            if ends > begins:
                available = business_between(self.calendar, begins, ends)
                if available >= left:
                    return add_business(self.calendar, begins, left)
                left -= available
        return None


def running_periods(created: datetime, events: Sequence[Event], now: datetime) -> list[Running]:
    """The periods the clock ran; a pending ticket's is projected to restart ``now``."""
    periods: list[Running] = []
    started: datetime | None = created
    category = "new"
    for event in (e for e in events if e.kind == "status"):
        category = event.category
        runs = category in ("new", "open")
        if runs and started is None:
            started = event.at
        elif not runs and started is not None:
            periods.append((started, event.at))
            started = None
    if started is not None:
        periods.append((started, None))
    elif category == "pending":
        periods.append((max(now, created), None))
    return periods


def due_times(
    targets: Targets, calendar: BusinessCalendar, created: datetime, events: Sequence[Event], now
) -> Due:
    events = sorted(events, key=lambda event: event.at)
    clock = Clock(calendar, tuple(running_periods(created, events, now)), now)
    replies = [event.at for event in events if event.kind == "agent"]
    first = _target(clock, targets.first_response, created, replies[0] if replies else None)
    next_, answered = _next_response(clock, targets.next_response, events)
    solved = _solved_at(events)
    resolution = _target(clock, targets.resolution, created, now if solved else None)
    found = {"first_response": first, "next_response": next_, "resolution": resolution}
    met = {"first_response": replies[0] if replies else None, "next_response": answered,
           "resolution": solved}  # fmt: skip
    return Due(
        first_response=first[0],
        next_response=next_[0],
        resolution=resolution[0],
        breached=tuple(name for name, (_, broken) in found.items() if broken),
        met={name: at for name, at in met.items() if at and getattr(targets, name)},
    )


def _solved_at(events: Sequence[Event]) -> datetime | None:
    """When the ticket was last solved (or closed straight away), if it still is."""
    solved = None
    for event in (e for e in events if e.kind == "status"):
        if event.category not in ("solved", "closed"):
            solved = None
        elif solved is None:
            solved = event.at
    return solved


def _target(
    clock: Clock, span: timedelta | None, start: datetime, met: datetime | None
) -> tuple[datetime | None, bool]:
    """(due time if not met yet, breached) for one clock from ``start``."""
    if span is None:
        return None, False
    broken = clock.elapsed(start, met or clock.now) > span
    return (None if met else clock.due(start, span)), broken


def _next_response(clock: Clock, span: timedelta | None, events: Sequence[Event]):
    """Each exchange: the first customer message after an agent reply, to the next reply.

    Returns ((due, breached), the reply that answered the latest exchange if none waits).
    """
    due, broken = None, False
    waiting_since: datetime | None = None
    answered, last_answer = False, None
    for event in events:
        if event.kind == "agent":
            if waiting_since is not None:
                broken |= _target(clock, span, waiting_since, event.at)[1]
                last_answer = event.at
            waiting_since, answered = None, True
        elif event.kind == "customer" and answered and waiting_since is None:
            waiting_since = event.at
    if waiting_since is not None:
        due, late = _target(clock, span, waiting_since, None)
        return (due, broken | late), None
    return (due, broken), last_answer
