"""Bounces of our own outgoing mail, recognised by their signed (VERP) address.

Every outgoing message leaves with a return path that names its outbox item and is
signed by the server secret (``Signer.bounce_address``). A message to such an address
whose signature holds is read for delivery reports (``dsn.py``) and applied in the
caller's transaction, instead of threading:

- a failure marks the item ``failed``, records the attempt, shows the event on the
  ticket (a system message and an audit event) and tells the ticket's agents;
- a hard failure (5.x.x) also suppresses automatic mail to the address for
  ``[outbound] suppress_after_bounce_hours``;
- a delay (4.x.x, ``Action: delayed``) is recorded on the ticket only.

A report never becomes a ticket or a customer message. Mail to a bounce address that
holds no report (an auto-reply sent to the return path, as RFC 3834 asks) goes down
the pipeline like any other mail, and so does mail to a forged bounce address.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.actions.notify import notify_agents, responsible_agents
from mailgate.db.bulk import add_row
from mailgate.db.models import (
    DeliveryAttempt,
    JournalEntry,
    Message,
    OutboxItem,
    Suppression,
    Ticket,
)
from mailgate.db.records import audit
from mailgate.db.upsert import insert_ignoring_conflicts
from mailgate.outbox.compose import Composer, InReplyTo, Outgoing
from mailgate.pipeline.apply import message_values
from mailgate.pipeline.dsn import DeliveryReport, read_reports
from mailgate.pipeline.inbound import Inbound
from mailgate.runtime import RuntimeConfig
from mailgate.signing import Signer

NOTICE = "delivery_failure"  # the outbox kind of the agents' notice (Composer.delivery_failure)


async def handle_bounce(
    session: AsyncSession,
    runtime: RuntimeConfig,
    signer: Signer,
    composer: Composer,
    inbound: Inbound,
) -> str | None:
    """Apply a bounce of our mail; its outcome, or None if ``inbound`` is none."""
    outbox_id = bounced_outbox_id(signer, inbound)
    item = await session.get(OutboxItem, outbox_id) if outbox_id is not None else None
    if item is None:
        return None
    raw = await session.scalar(select(JournalEntry.raw).where(JournalEntry.id == inbound.entry_id))
    reports = _for_item(item, read_reports(raw))
    if not reports:
        return None
    now = datetime.now(UTC)
    newly_failed = _record_delivery(session, item, reports, now)
    hours = runtime.settings.outbound.suppress_after_bounce_hours
    hard = sorted({report.recipient for report in reports if report.hard})
    await _suppress(session, hard, now + timedelta(hours=hours), reports)
    ticket = await session.get(Ticket, item.ticket_id) if item.ticket_id else None
    noticed = 0
    if ticket is not None:
        _show_on_ticket(session, ticket, inbound, item, reports, now)
        if newly_failed and item.kind != NOTICE:
            args = (composer, ticket, item, reports, hard, now)
            noticed = await _notify_agents(session, runtime, *args)
    summary = "; ".join(report.describe() for report in reports)
    return f"bounce of outbox {item.id}: {summary}" + (f"; {noticed} notice(s)" if noticed else "")


def bounced_outbox_id(signer: Signer, inbound: Inbound) -> int | None:
    """The outbox item whose signed bounce address ``inbound`` is addressed to, if any."""
    # The envelope names the bounce address; mail fetched by IMAP has only its To:.
    addressed = (*inbound.recipients, *(address.email for address in inbound.message.to))
    found = (signer.read_bounce_address(address) for address in addressed)
    return next((outbox_id for outbox_id in found if outbox_id is not None), None)


def _for_item(item: OutboxItem, reports: list[DeliveryReport]) -> list[DeliveryReport]:
    """The reports about the item's recipients, named as we sent to them.

    A report naming another address (the recipient forwarded our mail elsewhere) is
    taken for the item's only recipient; with several recipients it is left out.
    """
    ours = {address.lower(): address for address in item.recipients}
    found: dict[str, DeliveryReport] = {}
    for report in reports:
        address = next((a for a in (report.original, report.recipient) if a in ours), None)
        if address is None and len(ours) == 1:
            address = next(iter(ours))
        if address is not None:
            found.setdefault(address, replace(report, recipient=ours[address]))
    return list(found.values())


def _record_delivery(session, item: OutboxItem, reports, now: datetime) -> bool:
    """An attempt row for the report; a failure fails the item. True if it just failed.

    The claim is cleared too, so a delivery worker still holding the item (the bounce
    came back before it recorded the send) does not overwrite ``failed``.
    """
    detail = "; ".join(report.describe() for report in reports)
    session.add(DeliveryAttempt(outbox_id=item.id, at=now, ok=False, detail=f"bounce: {detail}"))
    failed = [report for report in reports if report.failed]
    if not failed:
        return False
    newly_failed = item.state != "failed"
    item.state, item.claimed_by, item.claimed_at = "failed", None, None
    item.last_error = "bounced: " + "; ".join(report.describe() for report in failed)
    return newly_failed


async def _suppress(session, addresses: list[str], until: datetime, reports) -> None:
    """No automatic mail to ``addresses`` until ``until`` (a later bounce extends it)."""
    for address in addresses:
        reason = next(r.describe() for r in reports if r.recipient == address)[:1000]
        email = address.lower()
        await insert_ignoring_conflicts(session, Suppression, email=email, until=until, reason="")
        await session.execute(
            update(Suppression).where(Suppression.email == email).values(until=until, reason=reason)
        )


def _show_on_ticket(session, ticket: Ticket, inbound: Inbound, item, reports, now) -> None:
    """A system message in the thread (it keeps the report's raw bytes through the
    journal, and its fingerprint makes a re-delivered report a duplicate) and an audit
    event per recipient."""
    text = "\n".join(_sentence(report.describe()) for report in reports)
    add_row(session, Message, **message_values(inbound, ticket, "system", now, text=text))
    for report in reports:
        action = "delivery_failed" if report.failed else "delivery_delayed"
        audit(
            session, ticket, "mailgate", action, now,
            recipient=report.recipient, status=report.status, diagnostic=report.diagnostic,
            outbox_id=item.id, kind=item.kind,
        )  # fmt: skip
    ticket.updated_at = now


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


async def _notify_agents(session, runtime, composer: Composer, ticket, item, reports, hard, now):
    """A notice to the ticket's agents (within their notification limits), but not to
    an agent whose own mail bounced: it would bounce too."""
    route = runtime.routes.match(ticket.route_address)
    if route is None:
        return 0
    bounced = {report.recipient.lower() for report in reports}
    agents = [a for a in responsible_agents(ticket, route) if a.lower() not in bounced]
    details = {
        "failures": [report for report in reports if report.failed],
        "what": item.kind.replace("_", " "),
        "suppressed": hard,
        "suppress_hours": f"{runtime.settings.outbound.suppress_after_bounce_hours:g}",
    }
    parent = InReplyTo(item.message_id)

    def compose(agent: str) -> Outgoing:
        return composer.delivery_failure(ticket, route, parent, agent, **details)

    return len(await notify_agents(session, runtime, ticket, agents, compose, now))
