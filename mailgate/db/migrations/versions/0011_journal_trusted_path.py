"""journal_entries.trusted_path: whether mail came by a path declared trusted

Authentication-Results headers are believed only for mail that came by one of
[auth] trusted_paths (a listener only the MTA can reach). Intake records it on the
entry, so the pipeline decides from what is stored, on reprocessing too. Entries
stored before have no such record and count as untrusted.

Revision ID: 0011_journal_trusted_path
Revises: 0010_satisfaction_ratings
Create Date: 2026-12-02 09:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011_journal_trusted_path"
down_revision: str | Sequence[str] | None = "0010_satisfaction_ratings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # In place on both databases: a batch (copy-and-rename) on SQLite would drop the
    # old table and, with it, every journal_raw row by ON DELETE CASCADE.
    op.add_column(
        "journal_entries",
        sa.Column("trusted_path", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("journal_entries", "trusted_path")
