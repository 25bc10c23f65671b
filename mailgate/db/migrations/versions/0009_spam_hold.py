"""tickets.spam, messages.spam_check and spam_verdict: mail held back as spam

A ticket rspamd calls spam is kept out of the inbox, unacknowledged, until an agent
says "not spam"; each customer message keeps the verdict of its spam check.

Revision ID: 0009_spam_hold
Revises: 0008_nodes
Create Date: 2026-12-02 07:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009_spam_hold"
down_revision: str | Sequence[str] | None = "0008_nodes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("spam", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("spam_check", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("spam_verdict", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("spam_verdict")
        batch.drop_column("spam_check")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("spam")
