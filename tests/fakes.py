"""One in-memory fake per port of the service layer (``snapworker.service.ports``), shared by
every test that needs one: :class:`FakeGateway` (Redshift) and :class:`FakeStore` (the state
DB). mypy checks that they satisfy the Protocols (the assignments at the end of this module).

FakeGateway keeps an estate of snapshots and clusters and changes it as AWS would (a revoke
removes the account, a delete removes the snapshot, a restore makes a cluster that reports
``creating`` for ``polls`` describes). Each by-id read and each mutation is logged in
``calls`` as ``(API operation, ids and arguments...)``, *before* any injected failure is
raised; the account-wide listings are only counted (``listings``), so that a test can assert
exactly what was changed.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from snapworker.adapters.aws.redshift import (
    AwsError,
    CallStats,
    ClusterInfo,
    TemporaryCredentials,
)
from snapworker.adapters.store.repository import DriftItem, Gone, PolicySizes
from snapworker.core.model import (
    DELETED_OUTSIDE,
    REVOKED_OUTSIDE,
    SNAPSHOT_DELETED_OUTSIDE,
    Action,
    Cluster,
    GrantRecord,
    OwnedRecord,
    PendingEntry,
    Snapshot,
    State,
    VerificationRecord,
)
from snapworker.service.ports import Gateway, StateRepository

__all__ = ["PASSWORD", "FakeGateway", "FakeStore"]

PASSWORD = "Temp-Secret-Password-0123456789ab"
"""The temporary password ``get_cluster_credentials`` hands out."""

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeGateway:
    """The Redshift gateway over an in-memory estate (see the module docstring).

    ``fail`` injects errors: keyed by an API operation (every call of it fails) or by
    ``(operation, id)`` (only calls on that snapshot or cluster). ``record_only``: mutations
    are logged but leave the estate as it was (for tests that replay one observation).
    """

    def __init__(
        self,
        snapshots: Iterable[Snapshot] = (),
        clusters: Iterable[Cluster] = (),
        *,
        account: str | None = None,
        polls: int = 0,
        fail: Mapping[str | tuple[str, str], AwsError] | None = None,
        record_only: bool = False,
    ) -> None:
        self.snaps: dict[str, Snapshot] = {s.id: s for s in snapshots}
        self.clusters: dict[str, Cluster] = {c.id: c for c in clusters}
        self.account = account
        self.polls = polls
        """Describes of a restored cluster that still answer ``creating``."""
        self.record_only = record_only
        self.calls: list[tuple[Any, ...]] = []
        self.listings: Counter[str] = Counter()
        self.fail: dict[str | tuple[str, str], AwsError] = dict(fail or {})
        self.restored: set[str] = set()
        """Scratch clusters made by ``restore_cluster`` and not deleted since."""
        self.sleeps: list[float] = []
        self.stats = CallStats()
        self.sleep = self.sleeps.append
        self._lock = threading.Lock()

    def _call(self, op: str, target: str | None, *args: Any) -> None:
        with self._lock:
            self.calls.append((op, *((target,) if target is not None else ()), *args))
        error = self.fail.get((op, target or "")) or self.fail.get(op)
        if error is not None:
            raise error

    def ops(self) -> list[str]:
        """The operations called, in order (``calls`` without their arguments)."""
        return [c[0] for c in self.calls]

    def _change(self, sid: str, **changes: Any) -> None:
        if not self.record_only and sid in self.snaps:
            self.snaps[sid] = replace(self.snaps[sid], **changes)

    # -- reads

    def account_id(self) -> str | None:
        return self.account

    def list_clusters(self) -> dict[str, Cluster]:
        self.listings["DescribeClusters"] += 1
        return dict(self.clusters)

    def list_snapshots(
        self, progress: Callable[[int, bool], None] | None = None
    ) -> dict[str, Snapshot]:
        self.listings["DescribeClusterSnapshots"] += 1
        if progress is not None:
            progress(len(self.snaps), False)  # one page
        return dict(self.snaps)

    def get_snapshot(self, snapshot_id: str, cluster: str) -> Snapshot | None:
        self._call("DescribeClusterSnapshots", snapshot_id)
        return self.snaps.get(snapshot_id)

    # -- snapshot mutations

    def create_snapshot(
        self,
        snapshot_id: str,
        cluster: str,
        tags: dict[str, str],
        retention_days: int | None = None,
    ) -> Snapshot:
        self._call("CreateClusterSnapshot", snapshot_id, cluster)
        if snapshot_id in self.snaps:
            raise AwsError(
                "CreateClusterSnapshot", "ClusterSnapshotAlreadyExists", "taken", snapshot_id
            )
        snap = Snapshot(
            snapshot_id,
            cluster,
            "manual",
            "available",
            EPOCH,
            dict(tags),
            (),
            self.account,
            -1 if retention_days is None else retention_days,
        )
        if not self.record_only:
            self.snaps[snapshot_id] = snap
        return snap

    def copy_snapshot(
        self, source: str, cluster: str, target: str, retention_days: int | None = None
    ) -> Snapshot:
        self._call("CopyClusterSnapshot", source, target)
        if target in self.snaps:
            raise AwsError("CopyClusterSnapshot", "ClusterSnapshotAlreadyExists", "taken", target)
        src = self.snaps[source]
        snap = Snapshot(
            target, cluster, "manual", "available", src.create_time, {}, (), self.account
        )
        if not self.record_only:
            self.snaps[target] = snap
        return snap

    def tag_snapshot(
        self, snapshot_id: str, cluster: str, owner: str | None, tags: dict[str, str]
    ) -> None:
        self._call("CreateTags", snapshot_id, tags)
        if snapshot_id in self.snaps:
            self._change(snapshot_id, tags={**self.snaps[snapshot_id].tags, **tags})

    def untag_snapshot(
        self, snapshot_id: str, cluster: str, owner: str | None, keys: list[str]
    ) -> None:
        self._call("DeleteTags", snapshot_id, keys)
        if snapshot_id in self.snaps:
            kept = {k: v for k, v in self.snaps[snapshot_id].tags.items() if k not in keys}
            self._change(snapshot_id, tags=kept)

    def set_retention(self, snapshot_id: str, days: int) -> None:
        self._call("ModifyClusterSnapshot", snapshot_id, days)
        self._change(snapshot_id, retention_period=days)

    def authorize(self, snapshot_id: str, cluster: str, account: str) -> None:
        self._call("AuthorizeSnapshotAccess", snapshot_id, account)
        snap = self.snaps.get(snapshot_id)
        if snap is not None and account in snap.accounts:
            raise AwsError(
                "AuthorizeSnapshotAccess", "AuthorizationAlreadyExists", "shared", snapshot_id
            )
        if snap is not None:
            self._change(snapshot_id, accounts=tuple(sorted({*snap.accounts, account})))

    def revoke(self, snapshot_id: str, cluster: str, account: str) -> None:
        self._call("RevokeSnapshotAccess", snapshot_id, account)
        snap = self.snaps[snapshot_id]
        self._change(snapshot_id, accounts=tuple(a for a in snap.accounts if a != account))

    def delete_snapshot(self, snapshot_id: str, cluster: str) -> None:
        self._call("DeleteClusterSnapshot", snapshot_id)
        if snapshot_id not in self.snaps:
            raise AwsError("DeleteClusterSnapshot", "ClusterSnapshotNotFound", "gone", snapshot_id)
        if not self.record_only:
            del self.snaps[snapshot_id]

    # -- restore drills and database credentials

    def restore_cluster(self, cluster_id: str, snapshot_id: str, source_cluster: str) -> str:
        self._call("RestoreFromClusterSnapshot", cluster_id, snapshot_id, source_cluster)
        self.restored.add(cluster_id)
        self.clusters[cluster_id] = Cluster(cluster_id, "creating")
        return "creating"

    def tag_cluster(self, cluster_id: str, tags: dict[str, str]) -> None:
        self._call("CreateTags", cluster_id, tags)
        if cluster_id in self.clusters:
            c = self.clusters[cluster_id]
            self.clusters[cluster_id] = replace(c, tags={**c.tags, **tags})

    def describe_cluster(self, cluster_id: str) -> ClusterInfo | None:
        self._call("DescribeClusters", cluster_id)
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            return None
        status = cluster.status
        if cluster_id in self.restored:
            status = "creating" if self.polls > 0 else "available"
            self.polls -= 1
        return ClusterInfo(
            cluster_id, status, f"{cluster_id}.example", 5439, "dev", dict(cluster.tags)
        )

    def get_cluster_credentials(
        self,
        cluster_id: str,
        db_user: str,
        db_name: str,
        duration_seconds: int,
        db_groups: list[str],
        auto_create: bool,
    ) -> TemporaryCredentials:
        self._call("GetClusterCredentials", cluster_id, db_user, db_name, db_groups, auto_create)
        return TemporaryCredentials(f"IAM:{db_user}", PASSWORD)

    def delete_cluster(self, cluster_id: str) -> bool:
        self._call("DeleteCluster", cluster_id)
        self.restored.discard(cluster_id)
        return self.clusters.pop(cluster_id, None) is not None


@dataclass
class JournalRow:
    run_id: int
    action: Action
    status: str = "pending"
    outcome: str | None = None
    error: str | None = None
    fence: int | None = None


@dataclass
class VerificationRow:
    record: VerificationRecord
    detail: Mapping[str, Any] = field(default_factory=dict)
    scratch_deleted_at: datetime | None = None


class FakeStore:
    """The state DB in memory, thread-safe, with the real store's rules where the service
    relies on them: a pending journal entry is reused for the same action key, one open grant
    per (snapshot, account), the first ``deleted_at`` stays, a lease is held until it expires.

    ``deleted`` is every id ``mark_deleted`` was called for, recorded as owned or not."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.owned: dict[str, OwnedRecord] = {}
        self.grants: list[GrantRecord] = []
        self.copied: dict[tuple[str, str], str] = {}
        self.deleted: set[str] = set()
        self.runs: dict[int, dict[str, Any]] = {}
        self.journal: dict[int, JournalRow] = {}
        self.leases: dict[str, tuple[str, datetime]] = {}
        self.fences: dict[str, int] = {}  # a lease's fencing counter: never reset
        self.drift: dict[int, list[DriftItem]] = {}
        self.sizes: dict[int, list[PolicySizes]] = {}
        self.verifications: dict[int, VerificationRow] = {}
        self.figures: dict[str, dict[str, Any]] = {}

    # -- snapshots and grants

    def load_state(self) -> State:
        with self._lock:
            pending = tuple(
                PendingEntry(
                    i,
                    row.action.key,
                    row.action.policy,
                    row.action.kind,
                    row.action.snapshot,
                    row.action.cluster,
                    row.action.account,
                    row.action.source,
                )
                for i, row in self.journal.items()
                if row.status == "pending"
            )
            verifications = tuple(
                dataclasses.replace(v.record, scratch_deleted=v.scratch_deleted_at is not None)
                for v in self.verifications.values()
            )
            return State(dict(self.owned), tuple(self.grants), pending, verifications)

    def record_owned(self, rec: OwnedRecord, adopted: bool = False, *, at: datetime) -> None:
        with self._lock:
            old = self.owned.get(rec.snapshot_id)
            if old is not None:
                rec = replace(
                    rec,
                    source_id=rec.source_id or old.source_id,
                    data_time=rec.data_time or old.data_time,
                    fire_time=rec.fire_time or old.fire_time,
                    deleted_at=rec.deleted_at or old.deleted_at,
                )
            self.owned[rec.snapshot_id] = rec

    def record_copied_source(
        self, policy: str, source_id: str, target_id: str, at: datetime
    ) -> bool:
        with self._lock:
            if (policy, source_id) in self.copied:
                return False
            self.copied[(policy, source_id)] = target_id
            return True

    def mark_deleted(self, snapshot_id: str, at: datetime) -> bool:
        with self._lock:
            self.deleted.add(snapshot_id)
            rec = self.owned.get(snapshot_id)
            if rec is None:
                return False
            if rec.deleted_at is None:
                self.owned[snapshot_id] = replace(rec, deleted_at=at)
            return True

    def _open_grant(self, snapshot_id: str, account: str) -> int | None:
        for i, g in enumerate(self.grants):
            if (g.snapshot_id, g.account, g.revoked_at) == (snapshot_id, account, None):
                return i
        return None

    def record_grant(self, snapshot_id: str, account: str, at: datetime) -> bool:
        with self._lock:
            if self._open_grant(snapshot_id, account) is not None:
                return False
            self.grants.append(GrantRecord(snapshot_id, account, at))
            return True

    def record_revoke(self, snapshot_id: str, account: str, at: datetime) -> bool:
        with self._lock:
            i = self._open_grant(snapshot_id, account)
            if i is not None:
                self.grants[i] = replace(self.grants[i], revoked_at=at)
                return True
            if any((g.snapshot_id, g.account) == (snapshot_id, account) for g in self.grants):
                return False
            # A revoke of a grant snapworker did not make: no grant time is known.
            self.grants.append(GrantRecord(snapshot_id, account, None, at))  # type: ignore[arg-type]
            return True

    def record_gone(
        self, snapshot_ids: Iterable[str], grants: Iterable[tuple[str, str]], at: datetime
    ) -> Gone:
        """The real store's rules: only live records and open grants are closed."""
        with self._lock:
            gone = []
            with_snapshots = 0
            for sid in dict.fromkeys(snapshot_ids):
                rec = self.owned.get(sid)
                if rec is None or rec.deleted_at is not None:
                    continue
                rec = replace(rec, deleted_at=at, deleted_reason=DELETED_OUTSIDE)
                self.owned[sid] = rec
                gone.append(rec)
                for i, g in enumerate(self.grants):
                    if g.snapshot_id == sid and g.revoked_at is None:
                        self.grants[i] = replace(
                            g, revoked_at=at, revoked_reason=SNAPSHOT_DELETED_OUTSIDE
                        )
                        with_snapshots += 1
            closed = []
            for sid, account in dict.fromkeys(grants):
                found = self._open_grant(sid, account)
                if found is not None:
                    self.grants[found] = replace(
                        self.grants[found], revoked_at=at, revoked_reason=REVOKED_OUTSIDE
                    )
                    closed.append((sid, account))
            return Gone(tuple(gone), tuple(closed), with_snapshots)

    def record_listed_again(self, snapshot_ids: Iterable[str]) -> list[str]:
        with self._lock:
            out = []
            for sid in dict.fromkeys(snapshot_ids):
                rec = self.owned.get(sid)
                if rec is not None and rec.deleted_reason == DELETED_OUTSIDE:
                    self.owned[sid] = replace(rec, deleted_at=None, deleted_reason=None)
                    out.append(sid)
            return out

    # -- runs and the journal

    def begin_run(
        self,
        mode: str,
        pid: int,
        at: datetime,
        holder: str | None = None,
        lease_expires: datetime | None = None,
    ) -> int:
        with self._lock:
            run_id = len(self.runs) + 1
            self.runs[run_id] = {"mode": mode, "pid": pid, "started_at": at, "status": "running"}
            return run_id

    def interrupt_gone_runs(self, at: datetime, now: datetime | None = None) -> int:
        return 0  # one process: no run of another is ever gone

    def finish_run(
        self,
        run_id: int,
        status: str,
        actions_ok: int,
        actions_failed: int,
        api_calls: Mapping[str, int],
        error: str | None,
        at: datetime,
    ) -> None:
        with self._lock:
            self.runs[run_id].update(
                status=status,
                ok=actions_ok,
                failed=actions_failed,
                api_calls=dict(api_calls),
                error=error,
                finished_at=at,
            )

    def journal_start(
        self, run_id: int, action: Action, at: datetime, fence: int | None = None
    ) -> int:
        with self._lock:
            for i, row in self.journal.items():
                if row.status == "pending" and row.action.key == action.key:
                    row.fence = fence
                    return i  # the same idempotency key: the entry is reused
            entry = len(self.journal) + 1
            self.journal[entry] = JournalRow(run_id, action, fence=fence)
            return entry

    def journal_finish(
        self,
        entry_id: int,
        status: str,
        outcome: str | None,
        error: str | None,
        at: datetime,
    ) -> None:
        with self._lock:
            row = self.journal[entry_id]
            row.status, row.outcome, row.error = status, outcome, error

    def supersede(self, entry_id: int, at: datetime) -> None:
        with self._lock:
            self.journal[entry_id].status = "superseded"

    # -- leases

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        with self._lock:
            held = self.leases.get(name)
            if held is not None and held[0] != holder and held[1] > at:
                return False
            if held is None or held[0] != holder or held[1] <= at:
                self.fences[name] = self.fences.get(name, 0) + 1  # a new holder
            self.leases[name] = (holder, at + ttl)
            return True

    def renew_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        with self._lock:
            held = self.leases.get(name)
            if held is None or held[0] != holder:
                return False
            self.leases[name] = (holder, at + ttl)
            return True

    def release_lease(self, name: str, holder: str) -> bool:
        with self._lock:
            held = self.leases.get(name)
            if held is None or held[0] != holder:
                return False
            del self.leases[name]
            return True

    def lease_holder(self, name: str) -> str | None:
        with self._lock:
            held = self.leases.get(name)
            return held[0] if held is not None else None

    def lease_fence(
        self, name: str, holder: str, at: datetime, margin: timedelta = timedelta(0)
    ) -> int | None:
        with self._lock:
            held = self.leases.get(name)
            if held is None or held[0] != holder or held[1] <= at + margin:
                return None
            return self.fences[name]

    # -- drift

    def record_drift(self, run_id: int, items: Iterable[DriftItem], at: datetime) -> int:
        with self._lock:
            self.drift[run_id] = list(items)
            return len(self.drift[run_id])

    def record_sizes(self, run_id: int, items: Iterable[PolicySizes], at: datetime) -> int:
        with self._lock:
            self.sizes[run_id] = list(items)
            return len(self.sizes[run_id])

    # -- restore drills and figures

    def start_verification(
        self,
        policy: str,
        cluster: str,
        snapshot_id: str,
        fire_time: datetime,
        scratch_cluster: str,
        at: datetime,
    ) -> int:
        with self._lock:
            vid = len(self.verifications) + 1
            record = VerificationRecord(
                policy, cluster, snapshot_id, fire_time, scratch_cluster, "pending"
            )
            self.verifications[vid] = VerificationRow(record)
            return vid

    def finish_verification(
        self, verification_id: int, status: str, detail: Mapping[str, Any], at: datetime
    ) -> None:
        with self._lock:
            row = self.verifications[verification_id]
            row.record = replace(row.record, status=status)  # type: ignore[arg-type]
            row.detail = dict(detail)

    def mark_scratch_deleted(self, scratch_cluster: str, at: datetime) -> int:
        with self._lock:
            n = 0
            for row in self.verifications.values():
                if row.record.scratch_cluster == scratch_cluster and row.scratch_deleted_at is None:
                    row.scratch_deleted_at = at
                    n += 1
            return n

    def record_figures(
        self,
        snapshot_id: str,
        policy: str,
        cluster: str,
        figures: Mapping[str, Any],
        at: datetime,
    ) -> None:
        with self._lock:
            self.figures[snapshot_id] = dict(figures)

    def figures_for(self, snapshot_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self.figures.get(snapshot_id)


# mypy checks here that each fake satisfies its port.
_gateway: Gateway = FakeGateway()
_store: StateRepository = FakeStore()


class FakeTargets:
    """The fleet's port (``service.fleet.Targets``) over fakes: each pair has its own
    FakeGateway and FakeStore. ``refused``: targets whose role cannot be assumed (the
    account lookup fails as STS would); ``failures``: the runs recorded for failed pairs;
    ``claims``: the legacy-row claims made."""

    def __init__(
        self,
        config: Any,
        estates: Mapping[Any, FakeGateway],
        *,
        refused: Mapping[str, Exception] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.estates = dict(estates)
        self.stores: dict[Any, FakeStore] = {p: FakeStore() for p in estates}
        self.refused = dict(refused or {})
        self.clock = clock or (lambda: datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
        self.failures: list[tuple[Any, str, str]] = []
        self.claims: list[tuple[str, str]] = []
        self.worked: list[Any] = []
        self._lock = threading.Lock()

    def pairs(self) -> list[Any]:
        return list(self.estates)

    def account_of(self, pair: Any) -> str:
        error = self.refused.get(pair.target)
        if error is not None:
            raise error
        return pair.account or self.estates[pair].account or ""

    def runtime_for(
        self, pair: Any, account: str, batch: str | None = None, with_legacy: bool = False
    ) -> Any:
        from snapworker.service.tick import Runtime

        with self._lock:
            self.worked.append(pair)
        return Runtime(self.config, self.estates[pair], self.stores[pair], self.clock, _Quiet())

    def claim_unscoped(self, pair: Any, account: str) -> int:
        self.claims.append((account, pair.region))
        return 0

    def record_failure(self, pair: Any, error: str, mode: str, batch: str) -> None:
        with self._lock:
            self.failures.append((pair, error, mode))


class _Quiet:
    def bind(self, **_: Any) -> _Quiet:
        return self

    def __getattr__(self, _: str) -> Callable[..., None]:
        return lambda *a, **k: None
