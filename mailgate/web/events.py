"""Audit events in words, for a ticket's timeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailgate.db.models import AuditEvent

# Shown as the message itself; the event would only repeat it.
SHOWN_AS_MESSAGES = frozenset({"reply", "note"})

_PHRASES = {
    "created": "opened the ticket in queue {queue}",
    "status": "changed the status from {old} to {new}",
    "priority": "changed the priority from {old} to {new}",
    "assignee": "assigned the ticket to {new}",
    "tag": "added the tag {tag}",
    "untag": "removed the tag {tag}",
    "merged_into": "merged this ticket into {ticket}",
    "merged_from": "merged {ticket} into this ticket",
    "split": "split a message off into {ticket}",
    "split_from": "split this ticket off {ticket}",
    "follow_up": "opened {ticket} as a follow-up of this closed ticket",
    "follow_up_of": "opened this ticket as a follow-up of {ticket}",
    "refers_to": "noted that this mail quotes {ticket}",
    "ack_skipped": "sent no acknowledgement: {reason}",
    "notify_skipped": "did not notify {agent}: {reason}",
    "solved_mail_skipped": "sent no solved mail: {reason}",
    "held_as_spam": "held the ticket back as spam ({verdict})",
    "not_spam": "released the ticket: not spam",
    "tags_dropped": "left out the tags {tags}: {reason}",
    "satisfaction": "rated the ticket {new}",
    "sla_warning": "warned that the {target} target of SLA {policy} falls due at {due_at}",
    "sla_breach": "noted that the {target} target of SLA {policy} was missed (due {due_at})",
}


@dataclass(frozen=True)
class EventLine:
    actor: str
    text: str
    ticket: str | None  # a ticket code the event names, shown as a link

    @property
    def parts(self) -> tuple[str, str, str]:
        """The text around the ticket code it names, so the code is shown once, as
        the link: (before, code, after); a code the text lacks goes at the end."""
        if not self.ticket:
            return self.text, "", ""
        before, found, after = self.text.partition(self.ticket)
        return (before, found, after) if found else (f"{self.text} (", self.ticket, ")")


def _as_is(value: str) -> str:
    return value


def describe(event: AuditEvent, name: Callable[[str], str] = _as_is) -> EventLine:
    """The event in words; ``name`` turns an agent's address into how pages show them."""
    data = {key: "nobody" if value is None else name(value) for key, value in event.data.items()}
    data.setdefault("new", "nobody")
    phrase = _PHRASES.get(event.action)
    try:
        text = phrase.format(**data) if phrase else _generic(event)
    except (KeyError, IndexError):
        text = _generic(event)
    return EventLine(name(event.actor), text, event.data.get("ticket"))


def _generic(event: AuditEvent) -> str:
    details = ", ".join(f"{key} {value}" for key, value in sorted(event.data.items()))
    return f"{event.action.replace('_', ' ')}" + (f" ({details})" if details else "")
