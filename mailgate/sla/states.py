"""Where each of a ticket's SLA targets stands now, as a person reads it.

One state per target the policy sets:

- ``met``: answered (or solved) in time, at ``met``;
- ``breached``: its time ran out, at ``due``; if it was met after all, ``met`` says when;
- ``running``: due at ``due``, ``left`` from now;
- ``paused``: the ticket is pending, so the clock stands; ``due`` is when it would be
  due if the clock started again now;
- ``idle``: not running: no customer message waits for a next response, or the
  ticket was solved before the target was met.

Pure: a ticket's ``TicketSla``, its status category and ``now`` in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from mailgate.sla.tickets import TARGET_NAMES, TicketSla

State = Literal["met", "breached", "running", "paused", "idle"]


@dataclass(frozen=True)
class TargetState:
    name: str  # first_response, next_response, resolution
    state: State
    due: datetime | None = None  # when a target not met yet is (or was) due
    met: datetime | None = None

    def left(self, now: datetime) -> timedelta | None:
        """Time from ``now`` to the due time; negative once it is overdue."""
        return self.due - now if self.due else None


def target_states(sla: TicketSla, category: str, now: datetime) -> list[TargetState]:
    """The state of each target the policy sets, in the order of ``TARGET_NAMES``."""
    states = []
    for name in TARGET_NAMES:
        if getattr(sla.targets, name) is None:
            continue
        due: datetime | None = getattr(sla.due, name)
        met = sla.due.met.get(name)
        if name in sla.due.breached:
            states.append(TargetState(name, "breached", due, met))
        elif met and due is None:
            states.append(TargetState(name, "met", met=met))
        elif due is None:
            states.append(TargetState(name, "idle"))
        else:
            states.append(TargetState(name, "paused" if category == "pending" else "running", due))
    return states


def nearest(states: list[TargetState]) -> TargetState | None:
    """The unmet target due first (the one overdue longest, if any is overdue)."""
    waiting = [s for s in states if s.due is not None and s.met is None]
    return min(waiting, key=lambda s: s.due, default=None)
