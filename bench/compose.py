"""Composing outgoing mail: µs per acknowledgement and per agent notification, wire bytes included.

Run: ``.venv/bin/python bench/compose.py``. One core, no database: the composer alone.
"""

from __future__ import annotations

import timeit
from datetime import UTC, datetime

from mailgate.config import Route
from mailgate.db.models import Ticket
from mailgate.outbox.compose import Composer, InReplyTo
from mailgate.outbox.templates import MailTemplates
from mailgate.signing import Signer

ROUTE = Route(address="support@example.test", name="Example Support")
TICKET = Ticket(
    code="ABC-1234",
    subject="Printer on fire again, third time this week",
    customer_name="Jörg Müller",
    customer_email="joerg@client.test",
    queue="support",
    status="new",
    priority="normal",
    assignee=None,
    created_at=datetime.now(UTC),
)
PARENT = InReplyTo("<first.1234@client.test>", ("<older.1@client.test>",))
DETAILS = {
    "event": "new",
    "author": "Jörg Müller",
    "text": "It smokes.\n" * 5,
    "attachments": [],
    "auto_reason": "",
}


def main() -> None:
    composer = Composer(MailTemplates(), Signer(b"k" * 32), "https://help.example.test")
    cases = {
        "acknowledgement": lambda: (
            composer.acknowledgement(TICKET, ROUTE, PARENT, TICKET.customer_name).raw
        ),
        "agent_notification": lambda: (
            composer.agent_notification(TICKET, ROUTE, PARENT, "alice@example.test", **DETAILS).raw
        ),
    }
    for name, compose in cases.items():
        number, _ = timeit.Timer(compose).autorange()
        best = min(timeit.repeat(compose, number=number, repeat=5)) / number
        print(f"{name:20} {best * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
