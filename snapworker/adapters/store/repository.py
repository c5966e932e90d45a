"""The state DB: what the worker made, the grants it gave, the journal of its actions, its runs,
its leases, the drift it saw and its restore drills.

The store records; the planner decides. :class:`StateStore` is the one object the service and
the views hold: the same methods as always, each delegated to the repository of its concern
(:mod:`~snapworker.adapters.store.snapshots`, :mod:`~snapworker.adapters.store.runs`,
:mod:`~snapworker.adapters.store.leases`, :mod:`~snapworker.adapters.store.drift`,
:mod:`~snapworker.adapters.store.verifications`). Each runs SQLModel sessions over the tables
of :mod:`snapworker.adapters.store.tables`, the same code on SQLite and PostgreSQL; every
method is one short transaction, committed before it returns (see
:mod:`snapworker.adapters.store.engine` for the transaction rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from snapworker.adapters.store.drift import DriftItem, DriftReport, DriftRepository, drift_items
from snapworker.adapters.store.engine import DEFAULT_BUSY_TIMEOUT_MS, Database, open_database
from snapworker.adapters.store.errors import StateStoreError
from snapworker.adapters.store.leases import LeaseRepository
from snapworker.adapters.store.runs import JournalStatus, RunRepository, RunStatus, pending_entries
from snapworker.adapters.store.schema import check_schema, ensure_schema, is_empty
from snapworker.adapters.store.scope import LEGACY, Scope, claim_unscoped
from snapworker.adapters.store.sizes import PolicySizes, SizesReport, SizesRepository, sizes_items
from snapworker.adapters.store.snapshots import (
    Gone,
    SnapshotRepository,
    grants_made,
    owned_records,
)
from snapworker.adapters.store.verifications import VerificationRepository, verification_records
from snapworker.adapters.store.views import (
    GrantView,
    JournalView,
    OwnedSummary,
    OwnedView,
    RunView,
    VerificationView,
)
from snapworker.config.urls import sqlite_file
from snapworker.core.model import Action, OwnedRecord, PendingEntry, State

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "DriftItem",
    "DriftReport",
    "Gone",
    "GrantView",
    "JournalStatus",
    "JournalView",
    "OwnedSummary",
    "OwnedView",
    "PolicySizes",
    "RunStatus",
    "RunView",
    "Scope",
    "ScopedStore",
    "SizesReport",
    "StateStore",
    "StateStoreError",
    "VerificationView",
    "drift_items",
    "open_store",
    "sizes_items",
]


def open_store(
    url: str,
    *,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    create: bool = True,
    read_only_fallback: bool = False,
) -> StateStore:
    """Open the state DB at a SQLAlchemy URL, creating or upgrading its schema.

    SQLite: no folder is created (a missing one is an error naming it); a missing file is
    created empty with mode 0600 before anything is written to it when ``create``, else
    refused (``no state DB at PATH``: ``status`` and ``plan --explain`` never make one); every
    connection runs in WAL mode with a busy timeout and foreign keys on. A database in a
    folder where SQLite cannot make its ``-wal``/``-shm`` files is refused, naming the
    folder, unless ``read_only_fallback`` (``status``): it is then read read-only, if its
    schema is current (``StateStore.read_only``). Raises :class:`StateStoreError` (URL
    shown, password masked).
    """
    db = open_database(url, busy_timeout_ms, create=create, read_only_fallback=read_only_fallback)
    try:
        if db.read_only:
            check_schema(db)
        else:
            if not create and is_empty(db):
                # A file (or database) nothing was ever written to: not made into one here.
                where = path if (path := sqlite_file(url)) is not None else db.url
                raise StateStoreError(f"state DB {db.url}: no state DB at {where} (no tables)")
            ensure_schema(db)
    except BaseException:
        db.close()
        raise
    return StateStore(db)


class StateStore:
    """Typed access to the state DB, one method per question or record, each its own
    transaction.

    The store :func:`open_store` returns is *unscoped*: it reads and writes the legacy scope
    (``owner_account`` = ``region`` = ``''``: the rows of a DB from before migration 0006,
    and what a one-pair tick on this store writes until it is switched to a scoped store),
    while its reads for ``status`` (:meth:`owned_summary`, :meth:`recent_runs`,
    :meth:`journal`, :meth:`latest_drift`, :meth:`latest_sizes`, :meth:`verifications`,
    :meth:`pair_runs`) show every pair's rows, each view naming its pair. :meth:`scoped`
    gives the store of one (target, region) pair: its every read and write limited to that
    pair's account and region.
    """

    scope: Scope = LEGACY

    def __init__(self, db: Database, scope: Scope | None = None) -> None:
        self._db = db
        self.url = db.url
        self.read_only = db.read_only
        everything = scope is None
        self.scope = LEGACY if scope is None else scope
        self.snapshots = SnapshotRepository(db, self.scope, global_reads=everything)
        self.runs = RunRepository(db, self.scope, global_reads=everything)
        self.leases = LeaseRepository(db)
        self.drift = DriftRepository(db, self.scope, global_reads=everything)
        self.sizes = SizesRepository(db, self.scope, global_reads=everything)
        self.drills = VerificationRepository(db, self.scope, global_reads=everything)

    def scoped(
        self,
        target: str,
        account: str,
        region: str,
        batch: str | None = None,
        *,
        with_legacy: bool = False,
    ) -> ScopedStore:
        """The store of the pair (``target``, ``region``) whose account is ``account``: every
        read and write limited to (``account``, ``region``); the runs it begins name
        ``target``, the account, the region and ``batch`` (one fleet invocation's id, shared by
        its pair runs). Shares this store's database (closing it closes nothing).
        ``with_legacy``: read the unclaimed rows from before the fleet too (a dry run of the
        first pair, which cannot claim them: ``Scope.with_legacy``)."""
        if not account or not region:
            raise ValueError("a scoped store needs an account and a region")
        return ScopedStore(self._db, Scope(account, region, target, batch, with_legacy))

    def claim_unscoped(self, account: str, region: str, target: str | None = None) -> int:
        """Give every row of the legacy scope (``owner_account`` ``''``: from before migration
        0006, or written by an unscoped store) to (``account``, ``region``), in one
        transaction; runs without a pair get ``target`` too. Returns how many rows moved (0
        the second time). A legacy row whose key the pair already has is left where it is."""
        return claim_unscoped(self._db, account, region, target)

    @property
    def database(self) -> Database:
        return self._db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- what the planner needs

    def load_state(self) -> State:
        """Owned records (deleted ones too), the grants the worker made, pending entries and
        the drills, read in one transaction."""
        with self._db.session("load state", write=False) as s:
            return State(
                owned=owned_records(s, self.scope),
                grants=grants_made(s, self.scope),
                pending=tuple(pending_entries(s, self.scope)),
                verifications=verification_records(s, self.scope),
            )

    # -- owned snapshots, copied sources, grants

    def copied_sources(self, policy: str) -> set[str]:
        return self.snapshots.copied_sources(policy)

    def record_copied_source(
        self, policy: str, source_id: str, target_id: str, at: datetime
    ) -> bool:
        return self.snapshots.record_copied_source(policy, source_id, target_id, at)

    def record_owned(self, rec: OwnedRecord, adopted: bool = False, *, at: datetime) -> None:
        self.snapshots.record_owned(rec, adopted, at=at)

    def mark_deleted(self, snapshot_id: str, at: datetime) -> bool:
        return self.snapshots.mark_deleted(snapshot_id, at)

    def record_grant(self, snapshot_id: str, account: str, at: datetime) -> bool:
        return self.snapshots.record_grant(snapshot_id, account, at)

    def record_revoke(self, snapshot_id: str, account: str, at: datetime) -> bool:
        return self.snapshots.record_revoke(snapshot_id, account, at)

    def owned_summary(self) -> OwnedSummary:
        return self.snapshots.owned_summary()

    def record_gone(
        self, snapshot_ids: Iterable[str], grants: Iterable[tuple[str, str]], at: datetime
    ) -> Gone:
        return self.snapshots.record_gone(snapshot_ids, grants, at)

    def record_listed_again(self, snapshot_ids: Iterable[str]) -> list[str]:
        return self.snapshots.record_listed_again(snapshot_ids)

    # -- drift

    def record_drift(self, run_id: int, items: Iterable[DriftItem], at: datetime) -> int:
        return self.drift.record_drift(run_id, items, at)

    def latest_drift(self) -> DriftReport | None:
        return self.drift.latest_drift()

    def latest_drift_by_pair(self) -> list[DriftReport]:
        return self.drift.latest_drift_by_pair()

    # -- sizes

    def record_sizes(self, run_id: int, items: Iterable[PolicySizes], at: datetime) -> int:
        return self.sizes.record_sizes(run_id, items, at)

    def latest_sizes(self) -> SizesReport | None:
        return self.sizes.latest_sizes()

    def latest_sizes_by_pair(self) -> list[SizesReport]:
        return self.sizes.latest_sizes_by_pair()

    # -- runs and the journal

    def begin_run(
        self,
        mode: str,
        pid: int,
        at: datetime,
        holder: str | None = None,
        lease_expires: datetime | None = None,
    ) -> int:
        return self.runs.begin_run(mode, pid, at, holder, lease_expires)

    def interrupt_gone_runs(self, at: datetime, now: datetime | None = None) -> int:
        return self.runs.interrupt_gone_runs(at, now)

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
        self.runs.finish_run(run_id, status, actions_ok, actions_failed, api_calls, error, at)

    def journal_start(
        self, run_id: int, action: Action, at: datetime, fence: int | None = None
    ) -> int:
        return self.runs.journal_start(run_id, action, at, fence)

    def journal_finish(
        self,
        entry_id: int,
        status: str,
        outcome: str | None,
        error: str | None,
        at: datetime,
    ) -> None:
        self.runs.journal_finish(entry_id, status, outcome, error, at)

    def supersede(self, entry_id: int, at: datetime) -> None:
        self.runs.supersede(entry_id, at)

    def pending_entries(self) -> list[PendingEntry]:
        return self.runs.pending_entries()

    def prune(self, before: datetime) -> int:
        return self.runs.prune(before) + self.sizes.prune(before)

    def journal(self, limit: int = 50, run_id: int | None = None) -> list[JournalView]:
        return self.runs.journal(limit, run_id)

    def recent_runs(self, limit: int = 10, now: datetime | None = None) -> list[RunView]:
        return self.runs.recent_runs(limit, now)

    def pair_runs(self, now: datetime | None = None) -> list[RunView]:
        return self.runs.pair_runs(now)

    # -- leases

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        return self.leases.acquire_lease(name, holder, ttl, at)

    def renew_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        return self.leases.renew_lease(name, holder, ttl, at)

    def release_lease(self, name: str, holder: str) -> bool:
        return self.leases.release_lease(name, holder)

    def lease_holder(self, name: str) -> str | None:
        return self.leases.lease_holder(name)

    def lease_fence(
        self, name: str, holder: str, at: datetime, margin: timedelta = timedelta(0)
    ) -> int | None:
        return self.leases.lease_fence(name, holder, at, margin)

    # -- restore drills (snapworker.service.drills) and snapshot figures

    def start_verification(
        self,
        policy: str,
        cluster: str,
        snapshot_id: str,
        fire_time: datetime,
        scratch_cluster: str,
        at: datetime,
    ) -> int:
        return self.drills.start_verification(
            policy, cluster, snapshot_id, fire_time, scratch_cluster, at
        )

    def finish_verification(
        self, verification_id: int, status: str, detail: Mapping[str, Any], at: datetime
    ) -> None:
        self.drills.finish_verification(verification_id, status, detail, at)

    def mark_scratch_deleted(self, scratch_cluster: str, at: datetime) -> int:
        return self.drills.mark_scratch_deleted(scratch_cluster, at)

    def verifications(self, limit: int | None = None) -> list[VerificationView]:
        return self.drills.verifications(limit)

    def record_figures(
        self,
        snapshot_id: str,
        policy: str,
        cluster: str,
        figures: Mapping[str, Any],
        at: datetime,
    ) -> None:
        self.drills.record_figures(snapshot_id, policy, cluster, figures, at)

    def figures_for(self, snapshot_id: str) -> dict[str, Any] | None:
        return self.drills.figures_for(snapshot_id)


class ScopedStore(StateStore):
    """The store of one (target, region) pair (:meth:`StateStore.scoped`): the same methods,
    every read and write limited to the pair's account and region. It borrows its parent's
    database: closing it closes nothing."""

    def __init__(self, db: Database, scope: Scope) -> None:
        super().__init__(db, scope)

    @property
    def target(self) -> str | None:
        return self.scope.target

    @property
    def account(self) -> str:
        return self.scope.account

    @property
    def region(self) -> str:
        return self.scope.region

    def close(self) -> None:
        """Nothing: the database is the parent store's."""
