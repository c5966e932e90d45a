"""verification: restore drills and the figures recorded before a snapshot

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # Stored as UTC; SQLModel's UTCDateTime on the models converts on the way in and out.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "verification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("cluster", sa.String(), nullable=False),
        sa.Column("snapshot_id", sa.String(), nullable=False),
        sa.Column("fire_time", _utc(), nullable=False),
        sa.Column("scratch_cluster", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("scratch_deleted_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_verification_policy_cluster", "verification", ["policy", "cluster"])
    op.create_index("ix_verification_snapshot_id", "verification", ["snapshot_id"])
    op.create_index("ix_verification_scratch_cluster", "verification", ["scratch_cluster"])

    op.create_table(
        "snapshot_figures",
        sa.Column("snapshot_id", sa.String(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("cluster", sa.String(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("recorded_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id"),
    )


def downgrade() -> None:
    op.drop_table("snapshot_figures")
    op.drop_index("ix_verification_scratch_cluster", table_name="verification")
    op.drop_index("ix_verification_snapshot_id", table_name="verification")
    op.drop_index("ix_verification_policy_cluster", table_name="verification")
    op.drop_table("verification")
