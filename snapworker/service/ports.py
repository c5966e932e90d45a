"""The ports of the service layer: what it needs of AWS and of the state DB, as Protocols.

The executor, the drills, the holds, the leases and the tick are typed on these, not on the
concrete ``adapters.aws.redshift.RedshiftGateway`` and ``adapters.store.repository.StateStore``:
so the tests give them the in-memory fakes of ``tests/fakes.py`` (mypy checks that those
satisfy the same Protocols), and another store or gateway needs only these methods.

The state DB's port is split by concern; :class:`StateRepository` is all of them together,
what the tick and the daemon hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from snapworker.core.model import Action, Cluster, OwnedRecord, Snapshot, State

ListingProgress = Callable[[int, bool], None]
"""Told after each page of a listing: how many items so far, and whether more pages follow
(the CLI draws a progress bar from it on a terminal)."""

if TYPE_CHECKING:
    from snapworker.adapters.aws.redshift import CallStats, ClusterInfo, TemporaryCredentials
    from snapworker.adapters.store.repository import DriftItem, Gone, PolicySizes

__all__ = [
    "DriftRepository",
    "Gateway",
    "JournalRepository",
    "LeaseRepository",
    "SnapshotRepository",
    "StateRepository",
    "VerificationRepository",
]


class Gateway(Protocol):
    """Every Redshift call the service layer makes (``RedshiftGateway``)."""

    stats: CallStats
    sleep: Callable[[float], None]

    # -- reads
    def account_id(self) -> str | None: ...
    def list_clusters(self) -> dict[str, Cluster]: ...
    def list_snapshots(self, progress: ListingProgress | None = None) -> dict[str, Snapshot]: ...
    def get_snapshot(self, snapshot_id: str, cluster: str) -> Snapshot | None: ...

    # -- snapshot mutations
    def create_snapshot(
        self,
        snapshot_id: str,
        cluster: str,
        tags: dict[str, str],
        retention_days: int | None = None,
    ) -> Snapshot: ...
    def copy_snapshot(
        self, source: str, cluster: str, target: str, retention_days: int | None = None
    ) -> Snapshot: ...
    def tag_snapshot(
        self, snapshot_id: str, cluster: str, owner: str | None, tags: dict[str, str]
    ) -> None: ...
    def untag_snapshot(
        self, snapshot_id: str, cluster: str, owner: str | None, keys: list[str]
    ) -> None: ...
    def set_retention(self, snapshot_id: str, days: int) -> None: ...
    def authorize(self, snapshot_id: str, cluster: str, account: str) -> None: ...
    def revoke(self, snapshot_id: str, cluster: str, account: str) -> None: ...
    def delete_snapshot(self, snapshot_id: str, cluster: str) -> None: ...

    # -- restore drills and database credentials
    def restore_cluster(self, cluster_id: str, snapshot_id: str, source_cluster: str) -> str: ...
    def tag_cluster(self, cluster_id: str, tags: dict[str, str]) -> None: ...
    def describe_cluster(self, cluster_id: str) -> ClusterInfo | None: ...
    def get_cluster_credentials(
        self,
        cluster_id: str,
        db_user: str,
        db_name: str,
        duration_seconds: int,
        db_groups: list[str],
        auto_create: bool,
    ) -> TemporaryCredentials: ...
    def delete_cluster(self, cluster_id: str) -> bool: ...


class SnapshotRepository(Protocol):
    """Owned snapshots, their grants and the automated snapshots already copied."""

    def load_state(self) -> State: ...
    def record_owned(self, rec: OwnedRecord, adopted: bool = False, *, at: datetime) -> None: ...
    def record_copied_source(
        self, policy: str, source_id: str, target_id: str, at: datetime
    ) -> bool: ...
    def mark_deleted(self, snapshot_id: str, at: datetime) -> bool: ...
    def record_grant(self, snapshot_id: str, account: str, at: datetime) -> bool: ...
    def record_revoke(self, snapshot_id: str, account: str, at: datetime) -> bool: ...
    def record_gone(
        self, snapshot_ids: Iterable[str], grants: Iterable[tuple[str, str]], at: datetime
    ) -> Gone: ...
    def record_listed_again(self, snapshot_ids: Iterable[str]) -> list[str]: ...


class JournalRepository(Protocol):
    """Runs and the journal of their actions (written before each AWS call)."""

    def begin_run(
        self,
        mode: str,
        pid: int,
        at: datetime,
        holder: str | None = None,
        lease_expires: datetime | None = None,
    ) -> int: ...
    def interrupt_gone_runs(self, at: datetime, now: datetime | None = None) -> int: ...
    def finish_run(
        self,
        run_id: int,
        status: str,
        actions_ok: int,
        actions_failed: int,
        api_calls: Mapping[str, int],
        error: str | None,
        at: datetime,
    ) -> None: ...
    def journal_start(
        self, run_id: int, action: Action, at: datetime, fence: int | None = None
    ) -> int: ...
    def journal_finish(
        self,
        entry_id: int,
        status: str,
        outcome: str | None,
        error: str | None,
        at: datetime,
    ) -> None: ...
    def supersede(self, entry_id: int, at: datetime) -> None: ...


class LeaseRepository(Protocol):
    """One worker at a time per policy and pair (``snapworker.service.leases``); a release
    keeps the lease's fencing counter, which :meth:`lease_fence` reads."""

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool: ...
    def renew_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool: ...
    def release_lease(self, name: str, holder: str) -> bool: ...
    def lease_holder(self, name: str) -> str | None: ...
    def lease_fence(
        self, name: str, holder: str, at: datetime, margin: timedelta = ...
    ) -> int | None: ...


class DriftRepository(Protocol):
    """The drift a run saw, for ``status``."""

    def record_drift(self, run_id: int, items: Iterable[DriftItem], at: datetime) -> int: ...
    def record_sizes(self, run_id: int, items: Iterable[PolicySizes], at: datetime) -> int: ...


class VerificationRepository(Protocol):
    """Restore drills and the figures recorded before a snapshot."""

    def start_verification(
        self,
        policy: str,
        cluster: str,
        snapshot_id: str,
        fire_time: datetime,
        scratch_cluster: str,
        at: datetime,
    ) -> int: ...
    def finish_verification(
        self, verification_id: int, status: str, detail: Mapping[str, Any], at: datetime
    ) -> None: ...
    def mark_scratch_deleted(self, scratch_cluster: str, at: datetime) -> int: ...
    def record_figures(
        self,
        snapshot_id: str,
        policy: str,
        cluster: str,
        figures: Mapping[str, Any],
        at: datetime,
    ) -> None: ...
    def figures_for(self, snapshot_id: str) -> dict[str, Any] | None: ...


class StateRepository(
    SnapshotRepository,
    JournalRepository,
    LeaseRepository,
    DriftRepository,
    VerificationRepository,
    Protocol,
):
    """The whole state DB, as the tick uses it."""
