"""presence and drafts: who has a ticket open (and is typing), and unsent text

The ticket page's live stream keeps a presence row per agent and ticket with a
heartbeat, so every node can tell its agents who else is there; drafts keep a reply
or note an agent has typed and not sent yet, per agent and ticket.

Revision ID: 0016_live_drafts
Revises: 0015_webhooks
Create Date: 2026-12-02 12:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0016_live_drafts"
down_revision: str | Sequence[str] | None = "0015_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TICKET_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "presence",
        sa.Column("ticket_id", TICKET_ID, nullable=False),
        sa.Column("agent", sa.String(length=320), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("typing", sa.String(length=8), nullable=False),
        sa.Column("typing_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_presence_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "agent", name=op.f("pk_presence")),
    )
    op.create_index(op.f("ix_presence_seen_at"), "presence", ["seen_at"], unique=False)
    op.create_table(
        "drafts",
        sa.Column("ticket_id", TICKET_ID, nullable=False),
        sa.Column("agent", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_drafts_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "agent", "kind", name=op.f("pk_drafts")),
    )


def downgrade() -> None:
    op.drop_table("drafts")
    op.drop_index(op.f("ix_presence_seen_at"), table_name="presence")
    op.drop_table("presence")
