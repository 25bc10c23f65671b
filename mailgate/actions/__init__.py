"""Ticket actions: the one way tickets change after they exist.

The web pages, the JSON API and agents' mail commands all go through these
functions. Each works in the caller's session; the caller commits and then wakes
the delivery worker for the mail an action queued.
"""

from mailgate.actions.base import UNSET, ActionContext, ActionError
from mailgate.actions.merge import merge_tickets, split_message
from mailgate.actions.messages import add_note, agent_reply
from mailgate.actions.spam import release_spam
from mailgate.actions.update import update_ticket
from mailgate.actions.values import PRIORITIES, check_update, resolve_agent, status_name
from mailgate.outbox.compose import NewAttachment

__all__ = [
    "PRIORITIES",
    "UNSET",
    "ActionContext",
    "ActionError",
    "NewAttachment",
    "add_note",
    "agent_reply",
    "check_update",
    "merge_tickets",
    "release_spam",
    "resolve_agent",
    "split_message",
    "status_name",
    "update_ticket",
]
