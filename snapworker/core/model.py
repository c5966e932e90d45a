"""The domain as plain, immutable data: what AWS holds, what the state DB remembers, what to do.

Nothing here does I/O or reads the clock. The gateway (``snapworker.adapters.aws``) turns AWS
answers into these types; the store (``snapworker.adapters.store``) turns rows into them; the
planner turns them into a :class:`Plan`. Every datetime is timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from snapworker.core.accounts import SUPPORT_ALIAS as SUPPORT_ALIAS

# Tags the worker writes on the snapshots it owns. The ownership tag is the source of truth
# for ownership (it survives the loss of the state DB); see ``snapworker.core.ownership``.
TAG_POLICY = "snapworker:policy"
TAG_CLUSTER = "snapworker:cluster"
TAG_KIND = "snapworker:kind"  # "create" or "copy"
TAG_SOURCE = "snapworker:source"  # copies: the automated snapshot copied
TAG_SOURCE_TIME = "snapworker:source-time"  # copies: its SnapshotCreateTime, ISO 8601 UTC
TAG_FIRE_TIME = "snapworker:fire-time"  # creates: the schedule fire time, ISO 8601 UTC

SnapshotType = Literal["manual", "automated"]
MadeFor = Literal["create", "copy"]
TAG_SCRATCH = "snapworker:scratch"  # clusters: a restore drill's scratch cluster ("true")
ActionKind = Literal["tag", "create", "copy", "share", "revoke", "delete", "verify"]
"""``tag`` restores the ownership tags of a copy whose CreateTags a crash interrupted.
``verify`` is a restore drill (see ``snapworker.core.verify``); it goes last, after the
snapshot work of the tick."""
ACTION_ORDER: tuple[ActionKind, ...] = (
    "tag",
    "create",
    "copy",
    "share",
    "revoke",
    "delete",
    "verify",
)


@dataclass(frozen=True)
class Cluster:
    """A Redshift cluster as DescribeClusters reports it."""

    id: str
    status: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """A cluster snapshot as DescribeClusterSnapshots reports it.

    ``accounts`` holds every entry of AccountsWithRestoreAccess, AccountId and AccountAlias
    alike (the support alias appears as :data:`SUPPORT_ALIAS`).
    """

    id: str
    cluster: str
    type: SnapshotType
    status: str
    create_time: datetime
    tags: Mapping[str, str] = field(default_factory=dict)
    accounts: tuple[str, ...] = ()
    owner_account: str | None = None
    retention_period: int | None = None
    """ManualSnapshotRetentionPeriod (days; -1: indefinite; None: not reported): AWS deletes
    a manual snapshot that many days after its create time (fail-safe expiry)."""
    size_mb: float | None = None
    """TotalBackupSizeInMegaBytes: the whole backup, blocks shared with other snapshots
    included (None: not reported)."""
    incremental_mb: float | None = None
    """ActualIncrementalBackupSizeInMegaBytes: what this snapshot adds over the one before it,
    about what deleting it frees (None: not reported)."""

    @property
    def available(self) -> bool:
        return self.status == "available"


@dataclass(frozen=True)
class Inventory:
    """One observation of the account: every cluster and every snapshot, by id."""

    clusters: Mapping[str, Cluster]
    snapshots: Mapping[str, Snapshot]


DELETED_OUTSIDE = "deleted outside snapworker"
"""``OwnedRecord.deleted_reason`` of an owned snapshot a complete listing no longer showed."""
REVOKED_OUTSIDE = "revoked outside snapworker"
"""``GrantRecord.revoked_reason`` of a grant AWS no longer listed on a snapshot still there."""
SNAPSHOT_DELETED_OUTSIDE = "snapshot deleted outside snapworker"
"""``GrantRecord.revoked_reason`` of an open grant of a snapshot deleted outside snapworker."""


@dataclass(frozen=True)
class OwnedRecord:
    """What the state DB remembers of a snapshot the worker made (or adopted from its tags).

    ``data_time`` is the point in time the snapshot's data holds: its own create time for a
    snapshot the worker created, the source's create time for a copy. ``deleted_at`` is set
    once the worker deleted it; the record stays so that a copy is never made twice. A
    snapshot that a complete listing no longer showed, although the worker never deleted it,
    is closed the same way: ``deleted_reason`` says so (``deleted outside snapworker``) and
    ``deleted_at`` is when a listing first missed it. Either way the record is not live: it
    proves no ownership and counts for no rule.
    """

    snapshot_id: str
    policy: str
    cluster: str
    made_for: MadeFor
    data_time: datetime | None
    source_id: str | None = None
    fire_time: datetime | None = None
    deleted_at: datetime | None = None
    deleted_reason: str | None = None


@dataclass(frozen=True)
class GrantRecord:
    """A grant the worker made: when, and when (if ever) it was closed. ``revoked_reason``
    is None when the worker revoked it; else why the record was closed without the worker
    (``revoked outside snapworker``, or its snapshot was deleted outside snapworker)."""

    snapshot_id: str
    account: str
    granted_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None


@dataclass(frozen=True)
class PendingEntry:
    """A journal entry written before its AWS call and never completed (a crash, a kill)."""

    entry_id: int
    key: str
    policy: str
    kind: ActionKind
    snapshot_id: str
    cluster: str
    account: str | None = None
    source_id: str | None = None


VerificationStatus = Literal["pending", "passed", "failed", "error", "interrupted"]


@dataclass(frozen=True)
class VerificationRecord:
    """One restore drill, as the state DB remembers it (``snapworker.core.verify``).

    ``pending`` is written before the restore call; ``passed``/``failed``/``error`` when the
    drill ends; ``interrupted`` when a crash cut it short and a later drill replaced it.
    ``scratch_deleted`` tells whether the scratch cluster is known to be gone.
    """

    policy: str
    cluster: str
    snapshot_id: str
    fire_time: datetime
    scratch_cluster: str
    status: VerificationStatus
    scratch_deleted: bool = False


@dataclass(frozen=True)
class State:
    """What the state DB holds, as the planner needs it."""

    owned: Mapping[str, OwnedRecord] = field(default_factory=dict)
    grants: tuple[GrantRecord, ...] = ()
    pending: tuple[PendingEntry, ...] = ()
    verifications: tuple[VerificationRecord, ...] = ()


# Action and Kept are made once per action and per kept snapshot (93,000 Kept at 100,000
# snapshots): slotted, so each is small. An exec-generated one-store ``__init__`` made the
# planner only ~5 % faster at 100k (bench/planner.py, docs/design.md), not worth the code.
@dataclass(frozen=True, slots=True)
class Action:
    """One AWS mutation the plan asks for, with the reason a person can read.

    ``key`` identifies the action across runs (the journal's idempotency key), so a rerun
    after a crash completes the entry it started instead of writing a second one.
    """

    policy: str
    cluster: str
    kind: ActionKind
    snapshot: str
    reason: str
    source: str | None = None
    account: str | None = None
    data_time: datetime | None = None
    fire_time: datetime | None = None

    @property
    def key(self) -> str:
        parts = [self.policy, self.kind, self.snapshot]
        if self.account is not None:
            parts.append(self.account)
        return "|".join(parts)


@dataclass(frozen=True, slots=True)
class Kept:
    """An owned snapshot the plan keeps, with every rule that keeps it."""

    policy: str
    cluster: str
    snapshot: str
    reason: str
    data_time: datetime | None = None
    held: bool = False


@dataclass(frozen=True)
class Note:
    """Something the operator should know that is neither an action nor a kept snapshot."""

    policy: str
    cluster: str | None
    message: str
    snapshot: str | None = None
    level: Literal["info", "warning"] = "info"


@dataclass(frozen=True, slots=True)
class Sizes:
    """A snapshot's sizes in MB, as DescribeClusterSnapshots reports them (see
    :class:`Snapshot`); None when AWS did not report one."""

    total: float | None = None
    incremental: float | None = None


@dataclass(frozen=True)
class Plan:
    """What a tick would do now, and why. The dry-run report is this, rendered."""

    generated_at: datetime
    actions: tuple[Action, ...] = ()
    kept: tuple[Kept, ...] = ()
    notes: tuple[Note, ...] = ()
    drift: tuple[Action, ...] = ()
    sizes: Mapping[str, Sizes] = field(default_factory=dict)
    """Snapshot id -> its sizes, for every kept or acted-on snapshot AWS reported a size of
    (the reports show them, ``views.sizes`` totals them)."""
    account: str | None = None
    """The AWS account planned for, when known (the reports total the sizes per account)."""
