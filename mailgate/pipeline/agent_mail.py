"""Agent mail: an authenticated agent's reply, note or commands on a ticket.

The commands at the top are checked first, every one of them: if any is not
understood, the agent gets a short mail saying which, and nothing else happens
(nothing relayed, nothing changed). Otherwise the text goes to the customer (or,
with ``#note`` or to a note address, to the other agents), then the commands apply,
all through the ticket actions, in the worker's transaction. ``#tag`` lines past the
cap of tags on a ticket are left out, and the ticket's history says which. Each
``#canned NAME`` line of the text is replaced by that canned reply, rendered for the
ticket; a name the agent has no reply of is a problem like a bad command.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions import (
    UNSET,
    ActionContext,
    ActionError,
    NewAttachment,
    add_note,
    agent_reply,
    check_update,
    update_ticket,
)
from mailgate.actions.base import route_of
from mailgate.actions.canned import rendered, usable_on
from mailgate.actions.canned_text import expand, has_canned_lines
from mailgate.actions.notify import notify_agents
from mailgate.actions.values import MAX_TAGS, current_tags, tags_within_cap
from mailgate.db.models import Message, Ticket
from mailgate.db.records import audit
from mailgate.outbox.compose import InReplyTo
from mailgate.pipeline.commands import Command, Commands, has_content, parse_commands
from mailgate.pipeline.inbound import Inbound


@dataclass(frozen=True)
class AgentMailDone:
    ticket: Ticket
    message: Message | None  # the reply or note stored; None when refused or commands only
    outcome: str  # "reply", "note", "commands" or "refused"


async def apply_agent_mail(
    session: AsyncSession, ctx: ActionContext, inbound: Inbound, ticket: Ticket
) -> AgentMailDone:
    """Apply the mail of ``inbound.agent`` to ``ticket``."""
    agent = inbound.agent or ""
    note = inbound.sender_check.note
    parsed = parse_commands(inbound.message.text)
    text, canned_problems = await _with_canned(session, ctx, ticket, agent, parsed.text)
    parsed = replace(parsed, text=text)
    commands = await _within_tag_cap(session, ticket, agent, parsed.commands)
    problems = [
        *parsed.problems,
        *canned_problems,
        *await _value_problems(session, ctx, ticket, agent, commands),
    ]
    if problems:
        await _refuse(session, ctx, inbound, ticket, agent, problems)
        return AgentMailDone(ticket, None, "refused")
    message, outcome = await _post(session, ctx, inbound, ticket, parsed, note or parsed.note)
    await update_ticket(session, ctx, ticket, agent, **_changes(commands, agent))
    return AgentMailDone(ticket, message, outcome)


async def _with_canned(session, ctx, ticket: Ticket, agent: str, text: str):
    """``text`` with its ``#canned`` lines replaced, and the problems of those lines."""
    if not has_canned_lines(text):
        return text, []
    replies = await usable_on(session, ticket, agent)
    known = {reply.name: rendered(ctx, ticket, agent, reply) for reply in replies}
    return expand(text, known, f"of yours or of the {ticket.queue} queue")


async def _within_tag_cap(session, ticket: Ticket, agent: str, commands: tuple[Command, ...]):
    """``commands`` without the ``#tag`` lines that would pass MAX_TAGS; those are
    noted on the ticket rather than failing the whole mail."""
    adds = [c.value for c in commands if c.name == "tag"]
    removes = [c.value for c in commands if c.name == "untag"]
    fitting = tags_within_cap(await current_tags(session, ticket), adds, removes)
    dropped = [tag for tag in adds if tag not in fitting]
    if not dropped:
        return commands
    reason = f"a ticket has at most {MAX_TAGS} tags"
    now = datetime.now(UTC)
    audit(session, ticket, agent, "tags_dropped", now, tags=", ".join(dropped), reason=reason)
    return tuple(c for c in commands if c.name != "tag" or c.value in fitting)


async def _post(session, ctx, inbound: Inbound, ticket, parsed: Commands, note: bool):
    """Relay the text (or note it); a mail of commands alone posts nothing."""
    attachments = [
        NewAttachment(a.filename, a.content_type, a.data) for a in inbound.message.attachments
    ]
    if not has_content(parsed.text) and not attachments:
        return None, "commands"
    action = add_note if note else agent_reply
    message = await action(
        session,
        ctx,
        ticket,
        inbound.agent or "",
        parsed.text,
        attachments,
        journal_id=inbound.entry_id,
        source_message_id=inbound.message.message_id,
        content_sha256=inbound.fingerprint,
    )
    return message, "note" if note else "reply"


def _changes(commands: tuple[Command, ...], agent: str) -> dict:
    changes: dict = {"add_tags": [], "remove_tags": []}
    for command in commands:
        if command.name in ("status", "priority"):
            changes[command.name] = command.value
        elif command.name == "assign":
            wanted = command.value.lower()
            changes["assignee"] = agent if wanted == "me" else None if wanted == "none" else wanted
        elif command.name in ("tag", "untag"):
            changes["add_tags" if command.name == "tag" else "remove_tags"].append(command.value)
    changes.setdefault("assignee", UNSET)
    return changes


async def _value_problems(
    session, ctx, ticket, agent: str, commands: tuple[Command, ...]
) -> list[str]:
    """Each command's value checked on its own, so the agent hears of every bad one."""
    problems = []
    for command in commands:
        try:
            await check_update(session, ctx, ticket, **_changes((command,), agent))
        except ActionError as error:
            problems.append(f"{command.line}: {error.message}")
    return problems


async def _refuse(session, ctx, inbound: Inbound, ticket, agent: str, problems: list[str]):
    now = datetime.now(UTC)
    route = route_of(ctx.runtime, ticket)
    parent = InReplyTo(inbound.message.message_id, inbound.message.references)
    audit(session, ticket, agent, "commands_refused", now, problems=problems)
    details = dict(
        problems=problems,
        subject=inbound.message.subject,
        statuses=[s.name for s in ctx.runtime.settings.tickets.statuses],
    )
    await notify_agents(
        session,
        ctx.runtime,
        ticket,
        [agent],
        lambda to: ctx.composer.command_error(ticket, route, parent, to, **details),
        now,
    )
