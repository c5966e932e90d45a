"""fleet: every row keyed by (owner_account, region); runs name their pair; lease fences

Rows already there get owner_account = region = '' (runs: NULL), the legacy scope that
``StateStore.claim_unscoped`` later gives to the first (target, region) pair of the config's
order. The primary keys of owned_snapshot, snapshot_figures and copied_source lead with the
pair, and so do the indexes that look rows up by snapshot, key or status. On SQLite the
tables are rebuilt (Alembic batch mode); on PostgreSQL altered in place.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import SAWarning

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPED = (
    "owned_snapshot",
    "grant",
    "copied_source",
    "journal",
    "drift",
    "sizes",
    "verification",
    "snapshot_figures",
)
PRIMARY_KEYS = {
    "owned_snapshot": ["owner_account", "region", "snapshot_id"],
    "snapshot_figures": ["owner_account", "region", "snapshot_id"],
    "copied_source": ["owner_account", "region", "policy", "source_id"],
}
OLD_PRIMARY_KEYS = {
    "owned_snapshot": ["snapshot_id"],
    "snapshot_figures": ["snapshot_id"],
    "copied_source": ["policy", "source_id"],
}
INDEXES = {  # name: (table, new columns, old columns)
    "ix_owned_snapshot_policy_cluster": (
        "owned_snapshot",
        ["owner_account", "region", "policy", "cluster"],
        ["policy", "cluster"],
    ),
    "ix_grant_snapshot_account": (
        "grant",
        ["owner_account", "region", "snapshot_id", "account"],
        ["snapshot_id", "account"],
    ),
    "ix_journal_key": ("journal", ["owner_account", "region", "key"], ["key"]),
    "ix_journal_status": ("journal", ["owner_account", "region", "status"], ["status"]),
    "ix_verification_policy_cluster": (
        "verification",
        ["owner_account", "region", "policy", "cluster"],
        ["policy", "cluster"],
    ),
    "ix_verification_snapshot_id": (
        "verification",
        ["owner_account", "region", "snapshot_id"],
        ["snapshot_id"],
    ),
    "ix_verification_scratch_cluster": (
        "verification",
        ["owner_account", "region", "scratch_cluster"],
        ["scratch_cluster"],
    ),
}


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    with warnings.catch_warnings():
        # SQLite's batch copy names the old key columns primary first; the new key replaces it.
        warnings.filterwarnings("ignore", r".*specifies columns .* as primary_key=True", SAWarning)
        _upgrade()


def _upgrade() -> None:
    sqlite = _sqlite()
    for name, (table, _new, _old) in INDEXES.items():
        op.drop_index(name, table_name=table)
    for table in SCOPED:
        # The server default fills the rows already there, then goes: every write names them.
        with op.batch_alter_table(table) as batch:
            for column in ("owner_account", "region"):
                batch.add_column(sa.Column(column, sa.String(), nullable=False, server_default=""))
        with op.batch_alter_table(table) as batch:
            for column in ("owner_account", "region"):
                batch.alter_column(column, existing_type=sa.String(), server_default=None)
            if table in PRIMARY_KEYS:
                if not sqlite:
                    batch.drop_constraint(f"{table}_pkey", type_="primary")
                batch.create_primary_key(f"{table}_pkey", PRIMARY_KEYS[table])
    with op.batch_alter_table("journal") as batch:
        batch.add_column(sa.Column("fence", sa.Integer(), nullable=True))
    with op.batch_alter_table("run") as batch:
        for column in ("target", "owner_account", "region", "batch"):
            batch.add_column(sa.Column(column, sa.String(), nullable=True))
    op.create_index("ix_run_pair", "run", ["owner_account", "region"])
    with op.batch_alter_table("lease") as batch:
        batch.add_column(sa.Column("fence", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("lease") as batch:
        batch.alter_column("fence", existing_type=sa.Integer(), server_default=None)
    for name, (table, new, _old) in INDEXES.items():
        op.create_index(name, table, new)


def downgrade() -> None:
    """Back to one account and region: only a DB that never held two pairs comes back whole
    (the old primary keys refuse two rows of one snapshot id)."""
    sqlite = _sqlite()
    for name, (table, _new, _old) in INDEXES.items():
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("lease") as batch:
        batch.drop_column("fence")
    op.drop_index("ix_run_pair", table_name="run")
    with op.batch_alter_table("run") as batch:
        for column in ("batch", "region", "owner_account", "target"):
            batch.drop_column(column)
    with op.batch_alter_table("journal") as batch:
        batch.drop_column("fence")
    for table in SCOPED:
        with op.batch_alter_table(table) as batch:
            if table in PRIMARY_KEYS:
                if not sqlite:
                    batch.drop_constraint(f"{table}_pkey", type_="primary")
                batch.create_primary_key(f"{table}_pkey", OLD_PRIMARY_KEYS[table])
            for column in ("region", "owner_account"):
                batch.drop_column(column)
    for name, (table, _new, old) in INDEXES.items():
        op.create_index(name, table, old)
