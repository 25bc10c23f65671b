"""Threading: which ticket does a message belong to?

The rules, in order (PRODUCT.md): a signed reply address; In-Reply-To/References
naming a Message-ID we stored or sent; the ticket code in the Subject, but only from
the ticket's customer, a CC participant or an agent; otherwise a new ticket. A reply
to a closed ticket opens a new ticket linked to it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Tickets
from mailgate.db.models import Participant, ThreadRef, Ticket
from mailgate.message import ParsedMessage
from mailgate.pipeline.codes import codes_in
from mailgate.signing import SignedReply, Signer

MAX_MERGE_HOPS = 20


@dataclass(frozen=True)
class ThreadDecision:
    ticket: Ticket | None  # the ticket to add the message to; None: open a new one
    rule: str  # "signed-address", "references", "subject-code" or "new"
    signed: SignedReply | None = None
    follow_up_of: Ticket | None = None  # the closed ticket this mail answered
    refers_to: Ticket | None = None  # a ticket a stranger quoted
    note: str = ""  # why a known ticket was not used


def read_signed(
    recipients: Sequence[str], signer: Signer, agents: Collection[str]
) -> list[SignedReply]:
    """The recipients that are genuine signed reply (or note) addresses, as read."""
    found = (signer.read_reply_address(recipient, agents) for recipient in recipients)
    return [signed for signed in found if signed is not None]


async def find_thread(
    session: AsyncSession,
    message: ParsedMessage,
    signed: Sequence[SignedReply],
    tickets: Tickets,
    sender_is_agent: bool,
) -> ThreadDecision:
    """``signed``: from ``read_signed``; ``sender_is_agent``: the sender authenticated
    as an agent, who may thread by a ticket code like the ticket's own people."""
    decision = (
        await _by_signed_address(session, signed)
        or await _by_references(session, message)
        or await _by_subject_code(session, message, sender_is_agent, tickets.code_prefix)
        or ThreadDecision(None, "new")
    )
    ticket = decision.ticket
    if ticket is not None and tickets.category_of(ticket.status) == "closed":
        note = f"{ticket.code} is {ticket.status}: this mail opens a new ticket"
        return ThreadDecision(None, decision.rule, decision.signed, follow_up_of=ticket, note=note)
    return decision


async def _by_signed_address(session, signed_addresses) -> ThreadDecision | None:
    for signed in signed_addresses:
        ticket = await _ticket_by_code(session, signed.code)
        if ticket is not None:
            return ThreadDecision(ticket, "signed-address", signed)
    return None


async def _by_references(session: AsyncSession, message: ParsedMessage) -> ThreadDecision | None:
    # The direct parent first, then the rest of the chain from newest to oldest.
    wanted = list(dict.fromkeys((*message.in_reply_to, *reversed(message.references))))
    if not wanted:
        return None
    rows = await session.execute(
        select(ThreadRef.message_id, ThreadRef.ticket_id).where(ThreadRef.message_id.in_(wanted))
    )
    found = {message_id: ticket_id for message_id, ticket_id in rows}
    for message_id in wanted:
        if message_id in found:
            ticket = await _survivor(session, await session.get(Ticket, found[message_id]))
            return ThreadDecision(ticket, "references")
    return None


async def _by_subject_code(session, message, sender_is_agent, prefix) -> ThreadDecision | None:
    sender = message.sender.email.lower() if message.sender else ""
    for code in codes_in(message.subject, prefix):
        ticket = await _ticket_by_code(session, code)
        if ticket is None:
            continue
        if sender_is_agent or await _is_participant(session, ticket, sender):
            return ThreadDecision(ticket, "subject-code")
        note = f"quotes {ticket.code}, but {sender or 'the sender'} is not on that ticket"
        return ThreadDecision(None, "new", refers_to=ticket, note=note)
    return None


async def _ticket_by_code(session: AsyncSession, code: str) -> Ticket | None:
    ticket = await session.scalar(select(Ticket).where(Ticket.code == code.upper()))
    return await _survivor(session, ticket)


async def _survivor(session: AsyncSession, ticket: Ticket | None) -> Ticket | None:
    """Follow merges: a merged ticket's mail belongs to the ticket it was merged into."""
    for _ in range(MAX_MERGE_HOPS):
        if ticket is None or ticket.merged_into_id is None:
            return ticket
        ticket = await session.get(Ticket, ticket.merged_into_id)
    return ticket


async def _is_participant(session: AsyncSession, ticket: Ticket, email: str) -> bool:
    if not email:
        return False
    found = await session.scalar(
        select(Participant.id).where(Participant.ticket_id == ticket.id, Participant.email == email)
    )
    return found is not None
