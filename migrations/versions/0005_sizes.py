"""sizes: what each policy's kept snapshots occupy, as each run saw them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sizes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("snapshots", sa.Integer(), nullable=False),
        sa.Column("sized", sa.Integer(), nullable=False),
        sa.Column("size_mb", sa.Float(), nullable=True),
        sa.Column("incremental_mb", sa.Float(), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sizes_run_id", "sizes", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_sizes_run_id", table_name="sizes")
    op.drop_table("sizes")
