"""satisfaction_ratings: the customer's Good/Bad rating of a solved ticket

The solved mail carries signed Good and Bad links; the portal page they open
records the rating (and a comment) here, one row per ticket.

Revision ID: 0010_satisfaction_ratings
Revises: 0009_spam_hold
Create Date: 2026-12-02 09:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010_satisfaction_ratings"
down_revision: str | Sequence[str] | None = "0009_spam_hold"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "satisfaction_ratings",
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("score", sa.String(length=8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_satisfaction_ratings_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_satisfaction_ratings")),
    )
    op.create_index(
        op.f("ix_satisfaction_ratings_at"), "satisfaction_ratings", ["at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_satisfaction_ratings_at"), table_name="satisfaction_ratings")
    op.drop_table("satisfaction_ratings")
