"""nodes: a heartbeat per process that claims work; the outcome of a failed delivery

A crashed node's claims were taken back only after a fixed ten minutes; with a
heartbeat they are taken over once it has been silent for node_timeout_seconds.

Revision ID: 0008_nodes
Revises: 0007_outbox_raw
Create Date: 2026-12-02 04:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008_nodes"
down_revision: str | Sequence[str] | None = "0007_outbox_raw"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process", sa.String(length=64), nullable=False),
        sa.Column("started_at", moment, nullable=False),
        sa.Column("beat_at", moment, nullable=True),
        sa.Column("progress_at", moment, nullable=True),
        sa.Column("failing_since", moment, nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("failures_total", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_column("outcome")
    op.drop_table("nodes")
