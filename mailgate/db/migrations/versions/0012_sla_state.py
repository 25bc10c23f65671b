"""tickets.sla_*: stored SLA state; sla_notices: each warning and breach sent once

The inbox sorts and filters by a ticket's next due time, which needs it in a column
with an index rather than worked out per ticket on every page. The SLA timer keeps it
(mailgate/sla/state.py) and records each notice it sends in sla_notices, whose unique
key is the claim that keeps two nodes from sending one twice.

Revision ID: 0012_sla_state
Revises: 0011_journal_trusted_path
Create Date: 2026-12-02 12:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012_sla_state"
down_revision: str | Sequence[str] | None = "0011_journal_trusted_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tickets whose SLA state the timer has to work out again (a partial index).
SLA_STALE = "sla_seen_at IS NULL OR sla_seen_at <> updated_at"


def upgrade() -> None:
    # In place on both databases (no batch copy of the tickets table).
    op.add_column("tickets", sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "tickets",
        sa.Column("sla_breached", sa.String(length=64), server_default="", nullable=False),
    )
    op.add_column("tickets", sa.Column("sla_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_tickets_sla_due_at"), "tickets", ["sla_due_at"], unique=False)
    stale = sa.text(SLA_STALE)
    op.create_index(
        "ix_tickets_sla_stale", "tickets", ["id"], sqlite_where=stale, postgresql_where=stale
    )
    op.create_table(
        "sla_notices",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("round", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_sla_notices_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_notices")),
        sa.UniqueConstraint(
            "ticket_id", "kind", "target", "round", name=op.f("uq_sla_notices_ticket_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("sla_notices")
    op.drop_index("ix_tickets_sla_stale", table_name="tickets")
    op.drop_index(op.f("ix_tickets_sla_due_at"), table_name="tickets")
    op.drop_column("tickets", "sla_seen_at")
    op.drop_column("tickets", "sla_breached")
    op.drop_column("tickets", "sla_due_at")
