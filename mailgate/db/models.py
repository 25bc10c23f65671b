"""The database schema of the whole product, as SQLAlchemy 2 typed models.

The journal holds every raw message exactly as it arrived; everything else (tickets,
messages, attachments, outgoing mail) is derived from it by the pipeline. Attachment
bodies are content-addressed blobs, stored once however often they are sent.

The many-to-one ``ticket`` (and ``message``) relationships only let a writer link rows
to a ticket that has no id yet (the pipeline writes a whole batch in one flush); they
never load (``lazy="raise"``): readers use the ``*_id`` columns.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
Id = BigInteger().with_variant(Integer(), "sqlite")
Time = DateTime(timezone=True)

SLA_STALE = "sla_seen_at IS NULL OR sla_seen_at <> updated_at"
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class JournalRaw(Base):
    """The bytes of a journal entry, in a table of their own.

    They are written once; the entry's state changes two or three times. SQLite
    rewrites a whole row on every UPDATE, so with the bytes in the entry each state
    change wrote the message again: half of what a pipeline batch committed.
    """

    __tablename__ = "journal_raw"

    entry_id: Mapped[int] = mapped_column(
        Id, ForeignKey("journal_entries.id", ondelete="CASCADE"), primary_key=True
    )
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class JournalEntry(Base):
    """One raw message as received, before any interpretation.

    ``state``: ``pending`` (waiting for the pipeline), ``processing`` (claimed by a
    node), ``done``, ``duplicate`` or ``quarantined`` (with ``error``). ``raw`` is
    read from ``journal_raw`` and written there (``pipeline/journal.py``).
    """

    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(Time)
    source: Mapped[str] = mapped_column(String(16))
    mail_from: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSON)
    peer: Mapped[str] = mapped_column(String(255), default="")
    helo: Mapped[str] = mapped_column(String(255), default="")
    # It came by one of [auth] trusted_paths: its Authentication-Results are the MTA's.
    trusted_path: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = column_property(
        select(JournalRaw.raw).where(JournalRaw.entry_id == id).scalar_subquery()
    )
    state: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(Time)
    processed_at: Mapped[datetime | None] = mapped_column(Time)

    __table_args__ = (Index("ix_journal_state_id", "state", "id"),)


class Ticket(Base):
    """A ticket; ``code`` is what customers and agents call it."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # Every new ticket comes with its unique code, which makes the code the "sentinel"
    # that lets SQLAlchemy insert a batch of tickets in one statement and still match
    # each returned id to its ticket (on SQLite it would otherwise insert one by one).
    code: Mapped[str] = mapped_column(String(32), unique=True, insert_sentinel=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    customer_name: Mapped[str] = mapped_column(String(255), default="")
    customer_email: Mapped[str] = mapped_column(String(320), index=True)
    queue: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    assignee: Mapped[str | None] = mapped_column(String(320), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="en")
    route_address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(Time)
    updated_at: Mapped[datetime] = mapped_column(Time, index=True)
    first_response_at: Mapped[datetime | None] = mapped_column(Time)
    solved_at: Mapped[datetime | None] = mapped_column(Time)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    linked_from_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # Held back as spam: no acknowledgement, no notification, not in the default
    # inbox, until an agent says "not spam".
    spam: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # SLA state as the timer last worked it out (mailgate/sla/state.py): the earliest
    # due time of a target not met yet while the clock runs, the targets broken so far
    # (comma-separated), and the ``updated_at`` it was worked out from.
    sla_due_at: Mapped[datetime | None] = mapped_column(Time, index=True)
    sla_breached: Mapped[str] = mapped_column(String(64), default="", server_default="")
    sla_seen_at: Mapped[datetime | None] = mapped_column(Time)

    # The tickets whose SLA state is stale, for the timer to find without a scan.
    __table_args__ = (
        Index(
            "ix_tickets_sla_stale",
            "id",
            sqlite_where=text(SLA_STALE),
            postgresql_where=text(SLA_STALE),
        ),
    )


class SlaNotice(Base):
    """A warning or breach notice sent for one target of a ticket, once: the unique
    key is the claim that keeps two nodes' timers from both sending it. ``round`` tells
    the exchanges of ``next_response`` apart (its due time); "" for the others."""

    __tablename__ = "sla_notices"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # warning, breach
    target: Mapped[str] = mapped_column(String(32))
    round: Mapped[str] = mapped_column(String(40), default="")
    at: Mapped[datetime] = mapped_column(Time)

    __table_args__ = (UniqueConstraint("ticket_id", "kind", "target", "round"),)


class TicketTag(Base):
    __tablename__ = "ticket_tags"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    ticket: Mapped[Ticket] = relationship(lazy="raise")


class Participant(Base):
    """A person on a ticket: its customer, or a CC participant who gets agent replies."""

    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(255), default="")
    role: Mapped[str] = mapped_column(String(16))
    ticket: Mapped[Ticket] = relationship(lazy="raise")

    __table_args__ = (UniqueConstraint("ticket_id", "email"),)


class Message(Base):
    """One message in a ticket's thread: customer mail, agent reply, note or event."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    journal_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))
    kind: Mapped[str] = mapped_column(String(16))
    # Looked up through the unique index below, whose first column it is.
    message_id: Mapped[str] = mapped_column(String(998))
    content_sha256: Mapped[str] = mapped_column(String(64), default="")
    from_name: Mapped[str] = mapped_column(String(255), default="")
    from_email: Mapped[str] = mapped_column(String(320), default="")
    to_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    quoted_text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    # More words to search by (the HTML part's text when ``text`` is the plain
    # part's); full-text indexed with subject and text (migration 0017_search_text).
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    auto_reason: Mapped[str | None] = mapped_column(Text)
    # Set when the mail names an agent (From, or an agent's signed address) but did
    # not authenticate as that agent: it was handled as an outside message.
    flag: Mapped[str | None] = mapped_column(Text)
    agent_authenticated: Mapped[bool] = mapped_column(Boolean, default=False)
    # The spam check of customer mail: "spam", "ham" or "failed" (rspamd did not
    # answer), with the verdict (pipeline/spam.py); None when none was asked.
    spam_check: Mapped[str | None] = mapped_column(String(16))
    spam_verdict: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Time)
    ticket: Mapped[Ticket] = relationship(lazy="raise")

    # The same Message-ID with the same content is one message, even when two nodes
    # process two copies of it at once; a reused Message-ID with other content is not.
    __table_args__ = (UniqueConstraint("message_id", "content_sha256"),)


class ThreadRef(Base):
    """A Message-ID we stored or sent, and the ticket it belongs to (threading rule 2)."""

    __tablename__ = "thread_refs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    ticket: Mapped[Ticket] = relationship(lazy="raise")


class Blob(Base):
    """Attachment content, keyed by its SHA-256 and stored once."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    message: Mapped[Message] = relationship(lazy="raise")


class AuditEvent(Base):
    """Every change to a ticket: who, what, when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(Time)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    ticket: Mapped[Ticket] = relationship(lazy="raise")


class SatisfactionRating(Base):
    """The customer's rating of how a ticket was handled: ``good`` or ``bad``, with an
    optional comment; one per ticket, changed in place until the ticket is closed."""

    __tablename__ = "satisfaction_ratings"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(Time, index=True)


class OutboxRaw(Base):
    """The bytes of an outgoing message, in a table of their own (as ``JournalRaw``):
    claiming an item and recording its delivery rewrite the item's row, not its mail."""

    __tablename__ = "outbox_raw"

    item_id: Mapped[int] = mapped_column(
        Id, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True
    )
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    item: Mapped[OutboxItem] = relationship(lazy="raise")


class OutboxItem(Base):
    """A composed outgoing message waiting for (or done with) delivery.

    ``state``: ``queued``, ``sending`` (claimed by a node), ``sent``, ``captured``
    (no smarthost: kept for the web UI), ``failed`` (gave up or bounced),
    ``suppressed`` (automatic mail to addresses that hard-bounced: not sent).
    ``mail_from`` is the sender as composed; the envelope sender is its signed bounce
    address, made at delivery from the item's id. ``raw`` is read from ``outbox_raw``
    and written there (``outbox/queue.py``).
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    mail_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    raw: Mapped[bytes] = column_property(
        select(OutboxRaw.raw).where(OutboxRaw.item_id == id).scalar_subquery()
    )
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Time)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(Time)
    created_at: Mapped[datetime] = mapped_column(Time)
    sent_at: Mapped[datetime | None] = mapped_column(Time)
    ticket: Mapped[Ticket | None] = relationship(lazy="raise")

    __table_args__ = (Index("ix_outbox_state_next", "state", "next_attempt_at"),)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(Time)
    ok: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text, default="")
    # What a failed attempt amounted to: temporary, permanent or suppressed.
    outcome: Mapped[str | None] = mapped_column(String(16))


class WebhookDelivery(Base):
    """One event for one ``[[webhooks]]`` receiver, queued in the transaction of the
    change it tells of (``mailgate/webhooks``).

    ``state``: ``queued``, ``sending`` (claimed by a node), ``delivered`` or ``failed``.
    ``delivery_id`` is the ``X-Mailgate-Delivery`` header, the same on every retry;
    ``body`` is written at the first attempt and sent unchanged after that. ``data``
    holds what the event adds to the ticket (a rating, an SLA target).
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(36), unique=True)
    webhook: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    data: Mapped[dict | None] = mapped_column(JSON)
    body: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Time)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(Time)
    created_at: Mapped[datetime] = mapped_column(Time)
    delivered_at: Mapped[datetime | None] = mapped_column(Time)
    ticket: Mapped[Ticket | None] = relationship(lazy="raise")
    message: Mapped[Message | None] = relationship(lazy="raise")

    __table_args__ = (Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),)


class RateEvent(Base):
    """One rate-limited action (an acknowledgement to a sender, a notification...)."""

    __tablename__ = "rate_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400))
    at: Mapped[datetime] = mapped_column(Time)

    __table_args__ = (Index("ix_rate_key_at", "key", "at"),)


class Suppression(Base):
    """An address that gets no automatic mail until ``until`` (after a hard bounce)."""

    __tablename__ = "suppressions"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    until: Mapped[datetime] = mapped_column(Time)
    reason: Mapped[str] = mapped_column(Text, default="")


class CannedReply(Base):
    """A saved reply agents insert into theirs: shared by the agents of ``queue``, or
    personal to ``owner`` (exactly one of the two is set, the other is ""). Names are
    unique within that scope and kept in lower case; ``body`` holds placeholders
    (``mailgate.actions.canned_text``)."""

    __tablename__ = "canned_replies"
    __table_args__ = (UniqueConstraint("queue", "owner", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(64), default="")
    owner: Mapped[str] = mapped_column(String(320), default="")
    name: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(Time)
    updated_at: Mapped[datetime] = mapped_column(Time)


class AgentAccount(Base):
    """Web sign-in data of an agent; who is an agent is decided by the config."""

    __tablename__ = "agent_accounts"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(Time)


class AgentProfile(Base):
    """What an agent set for themselves on their profile page, over the config's
    ``[[agents]]`` defaults. A None column has no setting here: the config decides."""

    __tablename__ = "agent_profiles"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    signature: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(Time)


class ImapMailboxState(Base):
    """Where the IMAP intake is in a mailbox, so a restart neither skips nor refetches."""

    __tablename__ = "imap_mailbox_state"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(Time)


class AgentSession(Base):
    """A signed-in browser: the SHA-256 of its cookie token, never the token itself."""

    __tablename__ = "agent_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    created_at: Mapped[datetime] = mapped_column(Time)
    expires_at: Mapped[datetime] = mapped_column(Time)


class LoginToken(Base):
    """A one-time sign-in link sent by mail (kept as the SHA-256 of its token)."""

    __tablename__ = "login_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(Time)
    expires_at: Mapped[datetime] = mapped_column(Time)
    used_at: Mapped[datetime | None] = mapped_column(Time)


class Node(Base):
    """A process that claims work (a daemon, a worker process, the reprocess command).

    ``beat_at`` is its heartbeat; the work a node claimed is taken over by the others
    once its heartbeat is older than ``[cluster] node_timeout_seconds`` (None: the node
    has left). ``process`` tells a live process from another that reused its pid. The
    rest is how its work loops fare, for ``/healthz``, ``/status`` and ``/metrics``.
    """

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    process: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime] = mapped_column(Time)
    beat_at: Mapped[datetime | None] = mapped_column(Time)
    progress_at: Mapped[datetime | None] = mapped_column(Time)
    failing_since: Mapped[datetime | None] = mapped_column(Time)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # passes failed in a row
    failures_total: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class Presence(Base):
    """An agent with a ticket open in a browser, kept by the node serving that page's
    live stream (``web/live.py``): ``seen_at`` is its heartbeat, and a row older than
    the presence timeout no longer counts (a node that died leaves its rows to expire).
    ``typing`` is ``reply`` or ``note`` while the agent writes one, as of ``typing_at``."""

    __tablename__ = "presence"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    agent: Mapped[str] = mapped_column(String(320), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(Time, index=True)
    typing: Mapped[str] = mapped_column(String(8), default="")
    typing_at: Mapped[datetime | None] = mapped_column(Time)


class Draft(Base):
    """What an agent has typed and not sent yet on a ticket: a reply or a note, saved
    as they type and deleted when it is sent, so no other action on the page loses it."""

    __tablename__ = "drafts"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    agent: Mapped[str] = mapped_column(String(320), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # reply or note
    text: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(Time)
