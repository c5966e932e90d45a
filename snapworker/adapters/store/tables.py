"""The state DB's tables, as SQLModel models.

The schema has one source, these models. The Alembic migrations in ``migrations/`` build it
(never ``create_all`` at run time), and ``tests/test_store.py`` checks with Alembic's
autogenerate comparison that a migrated database is exactly these tables. Every datetime
column is SQLModel's ``UTCDateTime``: writes must be timezone-aware and reads come back aware
UTC, on SQLite too.

Every table but ``lease`` is keyed by the pair it belongs to, ``owner_account`` (the account
owning the snapshots; ``account`` names a grantee where it appears) and ``region``: the same
snapshot id in two accounts or regions is two snapshots (``adapters.store.scope``).

There are no foreign keys on purpose: the journal records an action before the snapshot it
names exists, and a revoke is recorded even for a grant the worker did not make.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

__all__ = [
    "CopiedSourceRow",
    "DriftRow",
    "GrantRow",
    "JournalRow",
    "LeaseRow",
    "OwnedSnapshotRow",
    "RunRow",
    "SizesRow",
    "SnapshotFiguresRow",
    "VerificationRow",
    "metadata",
]

metadata = SQLModel.metadata


class OwnedSnapshotRow(SQLModel, table=True):
    """A manual snapshot the worker made (or adopted from its tags after losing the state DB).

    The row stays after the worker deleted the snapshot (``deleted_at`` set). A snapshot a
    complete listing no longer shows although the worker never deleted it is closed the same
    way, with ``deleted_reason`` (``deleted outside snapworker``) and ``deleted_at`` the time
    a listing first missed it; ``deleted_reason`` is NULL when the worker deleted it.
    """

    __tablename__ = "owned_snapshot"
    __table_args__ = (
        Index("ix_owned_snapshot_policy_cluster", "owner_account", "region", "policy", "cluster"),
    )

    owner_account: str = Field(primary_key=True)
    region: str = Field(primary_key=True)
    snapshot_id: str = Field(primary_key=True)
    policy: str
    cluster: str
    made_for: str  # "create" | "copy"
    source_id: str | None = None
    data_time: datetime | None = None
    fire_time: datetime | None = None
    recorded_at: datetime
    adopted: bool = False
    deleted_at: datetime | None = None
    deleted_reason: str | None = Field(default=None, sa_type=Text)


class GrantRow(SQLModel, table=True):
    """A grant of restore access, open while ``revoked_at`` is NULL.

    ``granted_at`` is NULL for a revoke of a grant the worker has no record of making (made
    by someone else, or before the state DB was lost): the revoke is recorded all the same.
    ``revoked_reason`` is NULL for a revoke of the worker's; else why the grant was closed
    (``revoked outside snapworker``, or its snapshot was deleted outside snapworker), with
    ``revoked_at`` the time a listing first missed it.
    """

    __tablename__ = "grant"
    __table_args__ = (
        Index("ix_grant_snapshot_account", "owner_account", "region", "snapshot_id", "account"),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_account: str
    region: str
    snapshot_id: str
    account: str
    granted_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = Field(default=None, sa_type=Text)


class CopiedSourceRow(SQLModel, table=True):
    """An automated snapshot a policy copied: each is copied at most once, ever, per policy."""

    __tablename__ = "copied_source"

    owner_account: str = Field(primary_key=True)
    region: str = Field(primary_key=True)
    policy: str = Field(primary_key=True)
    source_id: str = Field(primary_key=True)
    target_id: str
    copied_at: datetime


class JournalRow(SQLModel, table=True):
    """One AWS mutation: written ``pending`` before the call, finished after it."""

    __tablename__ = "journal"
    __table_args__ = (
        Index("ix_journal_key", "owner_account", "region", "key"),
        Index("ix_journal_status", "owner_account", "region", "status"),
        Index("ix_journal_run_id", "run_id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_account: str
    region: str
    run_id: int
    key: str
    policy: str
    cluster: str
    kind: str
    snapshot_id: str
    account: str | None = None
    source_id: str | None = None
    reason: str = Field(sa_type=Text)
    status: str  # "pending" | "completed" | "failed" | "superseded"
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = Field(default=None, sa_type=Text)
    attempts: int = 1
    outcome: str | None = None  # e.g. "done", "adopted", "already-absent"
    fence: int | None = None  # the lease's fencing counter when the action was started


class RunRow(SQLModel, table=True):
    """One tick of ``run``, ``daemon`` or ``plan`` on one (target, region) pair. A fleet
    invocation's pair runs share a ``batch``; rows from before 0006 have NULL pair columns."""

    __tablename__ = "run"
    __table_args__ = (
        Index("ix_run_pair", "owner_account", "region"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    mode: str  # "run" | "daemon" | "plan"
    started_at: datetime
    finished_at: datetime | None = None
    status: str  # "running" | "ok" | "failed" | "interrupted"
    actions_ok: int = 0
    actions_failed: int = 0
    api_calls: str = Field(default="{}", sa_type=Text)  # JSON object: operation -> count
    error: str | None = Field(default=None, sa_type=Text)
    pid: int
    target: str | None = None
    owner_account: str | None = None
    region: str | None = None
    batch: str | None = None


class LeaseRow(SQLModel, table=True):
    """A named lease (``policy:<policy>/<target>/<region>``) held by one process until it
    expires. ``fence`` goes up by one each time a holder that did not hold it takes it, and
    never goes down: a released lease keeps its row (expired), so its fence too."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True)
    holder: str
    acquired_at: datetime
    expires_at: datetime
    fence: int = 0


class DriftRow(SQLModel, table=True):
    """A grant to an account the policy does not list (someone shared by hand), as one run saw
    it. ``revoked`` says whether that run's plan revoked it (the policy says
    ``revoke_unlisted: true``); otherwise it is only reported."""

    __tablename__ = "drift"
    __table_args__ = (Index("ix_drift_run_id", "run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_account: str
    region: str
    run_id: int
    policy: str
    cluster: str
    snapshot_id: str
    account: str
    seen_at: datetime
    revoked: bool = False


class SizesRow(SQLModel, table=True):
    """What one policy's kept snapshots occupy, as one run saw them (the sizes AWS reported;
    ``sized`` of ``snapshots`` had one; the sums are NULL when none had), for ``status``."""

    __tablename__ = "sizes"
    __table_args__ = (Index("ix_sizes_run_id", "run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_account: str
    region: str
    run_id: int
    policy: str
    snapshots: int
    sized: int
    size_mb: float | None = None
    incremental_mb: float | None = None
    seen_at: datetime


class VerificationRow(SQLModel, table=True):
    """One restore drill (``snapworker.service.drills``). Written ``pending`` *before* the
    RestoreFromClusterSnapshot call, so a crash leaves a record of the scratch cluster that
    the next run finds and deletes; ``scratch_deleted_at`` is set once the scratch cluster is
    known to be gone. ``detail`` is a JSON object with each check's result (or the error):
    never a credential."""

    __tablename__ = "verification"
    __table_args__ = (
        Index("ix_verification_policy_cluster", "owner_account", "region", "policy", "cluster"),
        Index("ix_verification_snapshot_id", "owner_account", "region", "snapshot_id"),
        Index("ix_verification_scratch_cluster", "owner_account", "region", "scratch_cluster"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_account: str
    region: str
    policy: str
    cluster: str
    snapshot_id: str
    fire_time: datetime
    scratch_cluster: str
    status: str  # "pending" | "passed" | "failed" | "error" | "interrupted"
    started_at: datetime
    finished_at: datetime | None = None
    detail: str = Field(default="{}", sa_type=Text)
    scratch_deleted_at: datetime | None = None


class SnapshotFiguresRow(SQLModel, table=True):
    """Figures (``verify.record_before_snapshot``) read on the live cluster right before the
    worker's CreateClusterSnapshot; a drill of that snapshot compares with them."""

    __tablename__ = "snapshot_figures"

    owner_account: str = Field(primary_key=True)
    region: str = Field(primary_key=True)
    snapshot_id: str = Field(primary_key=True)
    policy: str
    cluster: str
    figures: str = Field(default="{}", sa_type=Text)  # JSON object: figure name -> value
    recorded_at: datetime
