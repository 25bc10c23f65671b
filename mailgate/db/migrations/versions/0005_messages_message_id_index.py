"""messages: drop ix_messages_message_id, which the unique (message_id, content_sha256)
index already serves (its leading column)

Every new message paid for a second B-tree over random Message-IDs: about a page per
message in a large database, and the biggest share of a pipeline batch's commit.

Revision ID: 0005_message_id_index
Revises: 0004_web
Create Date: 2026-11-29 16:00:00

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005_message_id_index"
down_revision: str | Sequence[str] | None = "0004_web"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_messages_message_id", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_message_id", "messages", ["message_id"], unique=False)
