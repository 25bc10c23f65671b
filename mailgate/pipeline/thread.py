"""Threading: which ticket does a message belong to?

The rules, in order (PRODUCT.md): a signed reply address; In-Reply-To/References
naming a Message-ID we stored or sent; the ticket code in the Subject, but only from
the ticket's customer, a CC participant or an agent; otherwise a new ticket. A reply
to a closed ticket opens a new ticket linked to it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailgate.config import Tickets
from mailgate.db.models import Ticket
from mailgate.message import ParsedMessage
from mailgate.pipeline.codes import codes_in
from mailgate.signing import SignedReply, Signer

if TYPE_CHECKING:
    from mailgate.pipeline.known import Known


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
    known: Known,
    message: ParsedMessage,
    signed: Sequence[SignedReply],
    tickets: Tickets,
    sender_is_agent: bool,
) -> ThreadDecision:
    """``signed``: from ``read_signed``; ``sender_is_agent``: the sender authenticated
    as an agent, who may thread by a ticket code like the ticket's own people."""
    decision = (
        await _by_signed_address(known, signed)
        or await _by_references(known, message)
        or await _by_subject_code(known, message, sender_is_agent)
        or ThreadDecision(None, "new")
    )
    ticket = decision.ticket
    if ticket is not None and tickets.category_of(ticket.status) == "closed":
        note = f"{ticket.code} is {ticket.status}: this mail opens a new ticket"
        return ThreadDecision(None, decision.rule, decision.signed, follow_up_of=ticket, note=note)
    return decision


async def _by_signed_address(known: Known, signed_addresses) -> ThreadDecision | None:
    for signed in signed_addresses:
        ticket = await known.ticket_by_code(signed.code)
        if ticket is not None:
            return ThreadDecision(ticket, "signed-address", signed)
    return None


async def _by_references(known: Known, message: ParsedMessage) -> ThreadDecision | None:
    ticket = await known.ticket_by_reference(message.thread_ids())
    return ThreadDecision(ticket, "references") if ticket is not None else None


async def _by_subject_code(known: Known, message, sender_is_agent) -> ThreadDecision | None:
    sender = message.sender.email.lower() if message.sender else ""
    for code in codes_in(message.subject):
        ticket = await known.ticket_by_code(code)
        if ticket is None:
            continue
        if sender_is_agent or (sender and sender in await known.participants(ticket)):
            return ThreadDecision(ticket, "subject-code")
        note = f"quotes {ticket.code}, but {sender or 'the sender'} is not on that ticket"
        return ThreadDecision(None, "new", refers_to=ticket, note=note)
    return None
