"""agent_profiles: what agents set for themselves on their profile page

One row per agent who changed a setting on /profile; a column left None falls back
to the agent's ``[[agents]]`` entry in the config. The first setting is the
signature added to their replies.

Revision ID: 0014_agent_profiles
Revises: 0013_canned_replies
Create Date: 2026-12-02 12:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0014_agent_profiles"
down_revision: str | Sequence[str] | None = "0013_canned_replies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_profiles",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_agent_profiles")),
    )


def downgrade() -> None:
    op.drop_table("agent_profiles")
