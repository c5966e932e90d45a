"""initial schema: owned snapshots, grants, copied sources, journal, runs, leases

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # Stored as UTC; SQLModel's UTCDateTime on the models converts on the way in and out.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "owned_snapshot",
        sa.Column("snapshot_id", sa.String(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("cluster", sa.String(), nullable=False),
        sa.Column("made_for", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=True),
        sa.Column("data_time", _utc(), nullable=True),
        sa.Column("fire_time", _utc(), nullable=True),
        sa.Column("recorded_at", _utc(), nullable=False),
        sa.Column("adopted", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("snapshot_id"),
    )
    op.create_index("ix_owned_snapshot_policy_cluster", "owned_snapshot", ["policy", "cluster"])

    op.create_table(
        "grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.String(), nullable=False),
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("granted_at", _utc(), nullable=True),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_grant_snapshot_account", "grant", ["snapshot_id", "account"])

    op.create_table(
        "copied_source",
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("target_id", sa.String(), nullable=False),
        sa.Column("copied_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("policy", "source_id"),
    )

    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("actions_ok", sa.Integer(), nullable=False),
        sa.Column("actions_failed", sa.Integer(), nullable=False),
        sa.Column("api_calls", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "journal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("cluster", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("snapshot_id", sa.String(), nullable=False),
        sa.Column("account", sa.String(), nullable=True),
        sa.Column("source_id", sa.String(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_journal_key", "journal", ["key"])
    op.create_index("ix_journal_status", "journal", ["status"])
    op.create_index("ix_journal_run_id", "journal", ["run_id"])

    op.create_table(
        "lease",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("acquired_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("lease")
    op.drop_index("ix_journal_run_id", table_name="journal")
    op.drop_index("ix_journal_status", table_name="journal")
    op.drop_index("ix_journal_key", table_name="journal")
    op.drop_table("journal")
    op.drop_table("run")
    op.drop_table("copied_source")
    op.drop_index("ix_grant_snapshot_account", table_name="grant")
    op.drop_table("grant")
    op.drop_index("ix_owned_snapshot_policy_cluster", table_name="owned_snapshot")
    op.drop_table("owned_snapshot")
