"""journal_raw: a journal entry's bytes apart from its state

SQLite rewrites a whole row on UPDATE, so every state change of an entry (claimed,
done) wrote its message again; this moves the bytes to a table written once.

Revision ID: 0006_journal_raw
Revises: 0005_message_id_index
Create Date: 2026-11-29 16:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006_journal_raw"
down_revision: str | Sequence[str] | None = "0005_message_id_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "journal_raw",
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_journal_raw_entry_id_journal_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_journal_raw")),
    )
    op.execute("INSERT INTO journal_raw (entry_id, raw) SELECT id, raw FROM journal_entries")
    # Both SQLite (3.35 and later) and PostgreSQL drop a plain column in place.
    op.execute("ALTER TABLE journal_entries DROP COLUMN raw")


def downgrade() -> None:
    op.add_column("journal_entries", sa.Column("raw", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE journal_entries SET raw = "
        "(SELECT raw FROM journal_raw WHERE journal_raw.entry_id = journal_entries.id)"
    )
    op.drop_table("journal_raw")
