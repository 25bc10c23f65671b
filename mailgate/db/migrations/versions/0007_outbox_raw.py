"""outbox_raw: an outgoing message's bytes apart from its delivery state

As with the journal (0006): SQLite rewrites a whole row on UPDATE, so claiming an
item and recording its delivery each wrote the message again.

Revision ID: 0007_outbox_raw
Revises: 0006_journal_raw
Create Date: 2026-11-29 19:15:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007_outbox_raw"
down_revision: str | Sequence[str] | None = "0006_journal_raw"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_raw",
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["outbox.id"],
            name=op.f("fk_outbox_raw_item_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_outbox_raw")),
    )
    op.execute("INSERT INTO outbox_raw (item_id, raw) SELECT id, raw FROM outbox")
    # Both SQLite (3.35 and later) and PostgreSQL drop a plain column in place.
    op.execute("ALTER TABLE outbox DROP COLUMN raw")


def downgrade() -> None:
    op.add_column("outbox", sa.Column("raw", sa.LargeBinary(), nullable=True))
    op.execute("UPDATE outbox SET raw = (SELECT raw FROM outbox_raw WHERE item_id = outbox.id)")
    op.drop_table("outbox_raw")
