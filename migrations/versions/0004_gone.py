"""gone: snapshots deleted and grants revoked outside snapworker

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: snapworker deleted it (revoked it) itself; else why the record was closed, e.g.
    # "deleted outside snapworker", with deleted_at (revoked_at) when a listing first missed it.
    with op.batch_alter_table("owned_snapshot") as batch:
        batch.add_column(sa.Column("deleted_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("grant") as batch:
        batch.add_column(sa.Column("revoked_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("grant") as batch:
        batch.drop_column("revoked_reason")
    with op.batch_alter_table("owned_snapshot") as batch:
        batch.drop_column("deleted_reason")
