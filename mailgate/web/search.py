"""Full-text search over message subjects and texts, on either database.

SQLite searches the FTS5 table ``messages_fts``; PostgreSQL the generated
``messages.search_vector`` column (GIN index); both follow every insert and cover
the subject, the text and ``search_text`` (the HTML part's words, migration
0017_search_text). A query is split into words, and a ticket matches when one of
its messages holds every word, each as a word prefix ("print" finds "printer").
A ticket code or a customer address matches that ticket as well, and a domain
(``nordic.test`` or ``@nordic.test``) the tickets of every customer there.
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, Select, any_, func, or_, select, text
from sqlalchemy.engine import Dialect

from mailgate.db.models import Message, Ticket

MAX_WORDS = 12
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,9}-\d{8}-[A-Za-z0-9]{4}$")
# Letters, digits and hyphens in dot-separated labels: no LIKE wildcard gets through.
_LABEL = r"[^\W_](?:(?:[^\W_]|-)*[^\W_])?"
_DOMAIN = re.compile(rf"^@?({_LABEL}(?:\.{_LABEL})+)$")

_SQLITE_MATCH = "messages.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :words)"
_POSTGRES_MATCH = "messages.search_vector @@ to_tsquery('simple', :words)"


def words_of(query: str) -> list[str]:
    return _WORD.findall(query.lower())[:MAX_WORDS]


def _fts_query(words: list[str], dialect: Dialect) -> str:
    if dialect.name == "postgresql":
        return " & ".join(f"{word}:*" for word in words)
    return " ".join(f'"{word}"*' for word in words)


def matching(query: str, dialect: Dialect) -> ColumnElement[bool]:
    """A condition on Ticket: the ticket matches the search ``query``."""
    query = query.strip()
    found: list[ColumnElement[bool]] = []
    words = words_of(query)
    if words:
        match = _POSTGRES_MATCH if dialect.name == "postgresql" else _SQLITE_MATCH
        in_messages = select(Message.ticket_id).where(
            text(match).bindparams(words=_fts_query(words, dialect))
        )
        found.append(_among(in_messages, dialect))
    if _CODE.match(query):
        found.append(Ticket.code == query.upper())
    if "@" in query:
        found.append(func.lower(Ticket.customer_email) == query.lower())
    if domain := _DOMAIN.match(query.lower()):
        found.append(_at_domain(domain.group(1)))
    return or_(*found) if found else Ticket.id.is_(None)


def _among(in_messages: Select, dialect: Dialect) -> ColumnElement[bool]:
    """The ticket is one of the tickets of the matching messages.

    On SQLite ``id + 0`` keeps the planner from looking each match up by primary key
    and sorting them all: it walks the tickets in the page's order and stops after a
    page. PostgreSQL estimates a word prefix to match about 1,000 of 300,000 messages
    whatever the word, so for a page it walks the tickets in the page's order and
    looks up each one's messages: all 100,000 tickets, over a second, for a rare word
    or none. ``= ANY(ARRAY(...))`` has it read the matches from the GIN index first
    (once, as an init plan) and fetch and sort just their tickets."""
    if dialect.name == "sqlite":
        return (Ticket.id + 0).in_(in_messages)
    return Ticket.id == any_(func.array(in_messages.scalar_subquery()))


def _at_domain(domain: str) -> ColumnElement[bool]:
    """The customer's address is at ``domain`` or one of its subdomains."""
    address = func.lower(Ticket.customer_email)
    return address.like(f"%@{domain}") | address.like(f"%.{domain}")
