"""The executor: carries out a plan's actions in a safe order, journalling each one.

For every action: the journal entry is written (and committed) *before* the AWS call and
completed after it, so a crash at any point leaves a pending entry that the next run
reconciles (``reconcile_pending``) or completes (the same idempotency key is reused).

Order and guards, which make deletion safe:

- actions run in the plan's order: per (policy, cluster) tag, create, copy, share, revoke,
  delete; so every revoke of a snapshot precedes its delete. The actions of one (policy,
  cluster) are strictly sequential; different clusters run on a small thread pool
  (``aws.max_concurrency``), their mutating calls under one shared rate limit;
- a delete runs only if every revoke of that snapshot in this run succeeded, and only after
  re-reading the snapshot from AWS: it must still be manual, ``available``, owned by the
  policy (tags or state), not held, and authorized to no account at all;
- answers that mean "already done" (AuthorizationAlreadyExists, AuthorizationNotFound,
  ClusterSnapshotNotFound on delete) complete the action; ClusterSnapshotAlreadyExists on a
  create or copy is adopted only when the existing snapshot's tags prove it is ours.

A permanent failure on one action is recorded (journal, outcome) and the others go on.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

from snapworker.adapters.aws.redshift import AwsError, RedshiftGateway
from snapworker.core.model import (
    TAG_FIRE_TIME,
    TAG_POLICY,
    Action,
    Inventory,
    OwnedRecord,
    PendingEntry,
    Snapshot,
    State,
)
from snapworker.core.ownership import owner_of, ownership_tags, parse_utc
from snapworker.errors import SnapworkerError

if TYPE_CHECKING:
    from snapworker.adapters.store.repository import StateStore
    from snapworker.config import Policy

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Outcome:
    """What became of one action."""

    action: Action
    ok: bool
    outcome: str
    error: str | None = None


class Refused(SnapworkerError):
    """A guard refused the action (not an AWS error): recorded as a failure, never retried."""


@dataclass
class Executor:
    gateway: RedshiftGateway
    store: StateStore
    run_id: int
    policies: Mapping[str, Policy]
    state: State
    clock: Clock
    account: str | None = None
    max_concurrency: int = 1
    """Clusters whose actions run at the same time (``aws.max_concurrency``)."""

    def _pending_made(self) -> dict[str, PendingEntry]:
        return {e.snapshot_id: e for e in self.state.pending if e.kind in ("create", "copy")}

    def _owned_by(self, snap: Snapshot, policy: str) -> OwnedRecord | None:
        own = owner_of(snap, self.state, self._pending_made(), self.account)
        if own is None or own.record.policy != policy:
            return None
        return own.record

    def _fail_safe_days(self, action: Action) -> int | None:
        """The policy's ``retention.fail_safe_days`` (ManualSnapshotRetentionPeriod), if set."""
        policy = self.policies.get(action.policy)
        return policy.retention.fail_safe_days if policy is not None else None

    # -- one action ---------------------------------------------------------------------

    def run_one(self, action: Action) -> Outcome:
        entry = self.store.journal_start(self.run_id, action, self.clock())
        try:
            outcome = getattr(self, f"_do_{action.kind}")(action)
        except (AwsError, Refused) as e:
            message = str(e)
            self.store.journal_finish(entry, "failed", None, message, self.clock())
            return Outcome(action, False, "failed", message)
        self.store.journal_finish(entry, "completed", outcome, None, self.clock())
        return Outcome(action, True, outcome)

    def _record(self, action: Action, made_for: str, data_time: datetime | None) -> OwnedRecord:
        rec = OwnedRecord(
            action.snapshot,
            action.policy,
            action.cluster,
            "copy" if made_for == "copy" else "create",
            data_time,
            source_id=action.source,
            fire_time=action.fire_time,
        )
        self.store.record_owned(rec, at=self.clock())
        return rec

    def _adopt_existing(self, action: Action) -> Snapshot:
        """The target id exists already: adopt it only if its tags prove it is ours."""
        snap = self.gateway.get_snapshot(action.snapshot, action.cluster)
        if snap is None or snap.tags == {} or self._owned_by(snap, action.policy) is None:
            raise Refused(
                f"{action.kind} {action.snapshot}: the id is taken by a snapshot snapworker "
                "does not own; nothing was changed"
            )
        return snap

    def _do_create(self, action: Action) -> str:
        rec = OwnedRecord(
            action.snapshot,
            action.policy,
            action.cluster,
            "create",
            None,
            fire_time=action.fire_time,
        )
        policy = self.policies.get(action.policy)
        if policy is not None and policy.verify and policy.verify.record_before_snapshot:
            from snapworker.service.drills import record_figures_before_snapshot

            record_figures_before_snapshot(self, policy, action)
        try:
            snap = self.gateway.create_snapshot(
                action.snapshot,
                action.cluster,
                ownership_tags(rec),
                retention_days=self._fail_safe_days(action),
            )
            outcome = "created"
        except AwsError as e:
            if e.code != "ClusterSnapshotAlreadyExists":
                raise
            snap = self._adopt_existing(action)
            outcome = "adopted"
        self._record(action, "create", snap.create_time)
        return outcome

    def _do_copy(self, action: Action) -> str:
        assert action.source is not None
        try:
            snap = self.gateway.copy_snapshot(
                action.source,
                action.cluster,
                action.snapshot,
                retention_days=self._fail_safe_days(action),
            )
            outcome = "copied"
        except AwsError as e:
            if e.code != "ClusterSnapshotAlreadyExists":
                raise
            snap = self._adopt_existing(action)
            outcome = "adopted"
        rec = self._record(action, "copy", action.data_time)
        self.store.record_copied_source(action.policy, action.source, action.snapshot, self.clock())
        if outcome == "copied":
            self.gateway.tag_snapshot(
                action.snapshot, action.cluster, snap.owner_account, ownership_tags(rec)
            )
        return outcome

    def _do_tag(self, action: Action) -> str:
        rec = OwnedRecord(
            action.snapshot,
            action.policy,
            action.cluster,
            "copy" if action.source else "create",
            action.data_time,
            source_id=action.source,
            fire_time=action.fire_time,
        )
        self.gateway.tag_snapshot(action.snapshot, action.cluster, None, ownership_tags(rec))
        self.store.record_owned(rec, at=self.clock())
        return "tagged"

    def _do_share(self, action: Action) -> str:
        assert action.account is not None
        outcome = "shared"
        try:
            self.gateway.authorize(action.snapshot, action.cluster, action.account)
        except AwsError as e:
            if e.code != "AuthorizationAlreadyExists":
                raise
            outcome = "already-shared"
        self.store.record_grant(action.snapshot, action.account, self.clock())
        return outcome

    def _do_revoke(self, action: Action) -> str:
        assert action.account is not None
        outcome = "revoked"
        try:
            self.gateway.revoke(action.snapshot, action.cluster, action.account)
        except AwsError as e:
            if e.code not in ("AuthorizationNotFound", "ClusterSnapshotNotFound"):
                raise
            outcome = "already-revoked"
        self.store.record_revoke(action.snapshot, action.account, self.clock())
        return outcome

    def check_deletable(self, action: Action) -> Snapshot | None:
        """Re-read the snapshot and check every delete guard; None: already gone."""
        snap = self.gateway.get_snapshot(action.snapshot, action.cluster)
        if snap is None:
            return None
        policy = self.policies[action.policy]
        if snap.type != "manual":
            raise Refused(f"not deleted: {snap.id} is an automated snapshot")
        if self._owned_by(snap, action.policy) is None:
            raise Refused(f"not deleted: {snap.id} is not owned by policy {action.policy}")
        if policy.hold_tag in snap.tags:
            raise Refused(f"not deleted: {snap.id} is held ({policy.hold_tag})")
        if snap.accounts:
            raise Refused(
                f"not deleted: {snap.id} is still authorized for {', '.join(snap.accounts)}"
            )
        if not snap.available:
            raise Refused(f"not deleted: {snap.id} is '{snap.status}', not available")
        return snap

    def _do_delete(self, action: Action) -> str:
        # The guards ran in ``apply`` before the journal entry; the call itself:
        try:
            self.gateway.delete_snapshot(action.snapshot, action.cluster)
            outcome = "deleted"
        except AwsError as e:
            if e.code != "ClusterSnapshotNotFound":
                raise
            outcome = "already-absent"
        self.store.mark_deleted(action.snapshot, self.clock())
        return outcome

    def _do_verify(self, action: Action) -> str:
        """A restore drill (``snapworker.service.drills``); a failed or erroring drill raises
        ``VerificationFailed`` (a ``Refused``): recorded as a failed action."""
        from snapworker.service.drills import run_drill

        return run_drill(self, action)


PARALLEL_KINDS = frozenset({"tag", "create", "copy", "share", "revoke", "delete"})
"""Kinds run on the thread pool; anything else (a restore drill) runs afterwards, alone."""


def apply(
    actions: Sequence[Action],
    executor: Executor,
    progress: Callable[[Outcome], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[Outcome]:
    """Carry out ``actions``; returns one outcome per action attempted, in plan order.

    The actions of one (policy, cluster) run strictly one after the other, in plan order
    (so every revoke of a snapshot precedes its delete, and a delete sees whether they
    succeeded). Different clusters run side by side on ``executor.max_concurrency`` threads;
    the gateway's shared rate limiter keeps the whole under the account's API budget.
    ``should_stop`` is asked before each action (the actions in flight finish);
    ``progress`` is called once per outcome, never from two threads at once.
    """
    workers = executor.max_concurrency
    groups: dict[tuple[str, str], list[int]] = {}
    later: list[int] = []
    for i, action in enumerate(actions):
        if action.kind in PARALLEL_KINDS:
            groups.setdefault((action.policy, action.cluster), []).append(i)
        else:
            later.append(i)
    results: dict[int, Outcome] = {}
    revoke_failed: set[str] = set()
    lock = threading.Lock()

    def run_group_of(ex: Executor, indexes: list[int]) -> None:
        for i in indexes:
            if should_stop():
                return
            action = actions[i]
            if action.kind == "delete":
                with lock:
                    failed = action.snapshot in revoke_failed
                result = _guarded_delete(action, ex, failed)
            else:
                result = ex.run_one(action)
            with lock:
                if action.kind == "revoke" and not result.ok:
                    revoke_failed.add(action.snapshot)
                results[i] = result
                if progress is not None:
                    progress(result)

    ordered = sorted(groups.values())  # by each group's first action: plan order
    if workers <= 1 or len(ordered) <= 1:
        for indexes in ordered:
            run_group_of(executor, indexes)
    else:
        from concurrent.futures import ThreadPoolExecutor

        # The AWS calls overlap; the state DB's short write transactions take turns (see
        # _SerialStore), so SQLite's busy timeout is never what arbitrates between them.
        serial = cast("StateStore", _SerialStore(executor.store))
        parallel = dataclasses.replace(executor, store=serial)
        run_group = _bind(run_group_of, parallel)
        with ThreadPoolExecutor(max_workers=min(workers, len(ordered))) as pool:
            for future in [pool.submit(run_group, g) for g in ordered]:
                future.result()  # re-raises what a worker raised (a crash of the store, say)
    run_group_of(executor, later)
    return [results[i] for i in sorted(results)]


def _bind(fn: Callable[[Executor, list[int]], None], ex: Executor) -> Callable[[list[int]], None]:
    return lambda indexes: fn(ex, indexes)


class _SerialStore:
    """The state store with its methods taking turns, for the worker threads of one process.

    Each store method is one short transaction; SQLite lets one writer in at a time and
    makes the others poll until its busy timeout, which under load lets a thread starve
    and fail ("database is locked"). A lock in the process makes them queue fairly instead
    (and costs nothing: the DB took one writer at a time anyway). Other processes (a second
    worker) still meet SQLite's own locking and busy timeout.
    """

    def __init__(self, store: object) -> None:
        self._store = store
        self._lock = threading.RLock()

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def locked(*args: object, **kwargs: object) -> object:
            with self._lock:
                return attr(*args, **kwargs)

        return locked


def _guarded_delete(action: Action, executor: Executor, revoke_failed: bool) -> Outcome:
    if revoke_failed:
        return Outcome(action, False, "skipped", "not deleted: a revoke of this snapshot failed")
    try:
        snap = executor.check_deletable(action)
    except (AwsError, Refused) as e:
        return Outcome(action, False, "refused", str(e))
    if snap is None:
        executor.store.mark_deleted(action.snapshot, executor.clock())
        return Outcome(action, True, "already-absent")
    return executor.run_one(action)


def reconcile_pending(
    store: StateStore, pending: Sequence[PendingEntry], inventory: Inventory, now: datetime
) -> int:
    """Complete the journal entries a crash left pending whose effect AWS already shows.

    Entries whose effect is not visible stay pending: the planner plans them again and the
    executor reuses the entry (same key). Returns how many entries were completed.
    """
    done = 0
    for e in pending:
        snap = inventory.snapshots.get(e.snapshot_id)
        effect = False
        if e.kind in ("create", "copy"):
            effect = snap is not None and snap.type == "manual" and snap.cluster == e.cluster
        elif e.kind == "share":
            effect = snap is not None and e.account in snap.accounts
            if effect and e.account:
                store.record_grant(e.snapshot_id, e.account, now)
        elif e.kind == "revoke":
            effect = snap is None or e.account not in snap.accounts
            if effect and e.account:
                store.record_revoke(e.snapshot_id, e.account, now)
        elif e.kind == "delete":
            effect = snap is None
            if effect:
                store.mark_deleted(e.snapshot_id, now)
        elif e.kind == "tag":
            effect = snap is not None and TAG_POLICY in snap.tags
        if effect and e.kind in ("create", "copy") and snap is not None:
            _record_made(store, e, snap, inventory, now)
        if effect:
            store.journal_finish(e.entry_id, "completed", "confirmed after interruption", None, now)
            done += 1
    return done


def _record_made(
    store: StateStore, e: PendingEntry, snap: Snapshot, inventory: Inventory, now: datetime
) -> None:
    """Record a snapshot whose create/copy call succeeded before a crash cut the run short."""
    if e.kind == "copy":
        source = inventory.snapshots.get(e.source_id or "")
        rec = OwnedRecord(
            e.snapshot_id,
            e.policy,
            e.cluster,
            "copy",
            source.create_time if source is not None else None,
            source_id=e.source_id,
        )
        if e.source_id:
            store.record_copied_source(e.policy, e.source_id, e.snapshot_id, now)
    else:
        rec = OwnedRecord(
            e.snapshot_id,
            e.policy,
            e.cluster,
            "create",
            snap.create_time,
            fire_time=parse_utc(snap.tags.get(TAG_FIRE_TIME)),
        )
    store.record_owned(rec, at=now)
