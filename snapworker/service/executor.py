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

Each action kind has one handler: a plain function registered with :func:`handler`, which
also declares the IAM actions it calls (``snapworker.service.iam``; the IAM generator reads
them). The checks that make a delete or an adoption safe are pure (``core.guards``). A restore
drill is not an action of the executor: the tick hands ``verify`` actions to
``snapworker.service.drills`` once the executor is done.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, cast

from snapworker.adapters.aws.redshift import AwsError
from snapworker.core import guards
from snapworker.core.model import (
    TAG_FIRE_TIME,
    Action,
    Inventory,
    OwnedRecord,
    PendingEntry,
    Snapshot,
    State,
)
from snapworker.core.ownership import ownership_tags, parse_utc
from snapworker.errors import SnapworkerError
from snapworker.service.database import record_figures_before_snapshot
from snapworker.service.iam import declare, needs
from snapworker.service.leases import LeaseLost
from snapworker.service.ports import (
    Gateway,
    JournalRepository,
    SnapshotRepository,
    VerificationRepository,
)

if TYPE_CHECKING:
    from snapworker.config import Policy

Clock = Callable[[], datetime]


class ExecutorStore(SnapshotRepository, JournalRepository, VerificationRepository, Protocol):
    """What the executor needs of the state DB: snapshots, grants, the journal, and the
    figures recorded before a snapshot."""


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
    """What a handler works with: the adapters, the run, the policies and the state read at
    the start of the tick."""

    gateway: Gateway
    store: ExecutorStore
    run_id: int
    policies: Mapping[str, Policy]
    state: State
    clock: Clock
    account: str | None = None
    max_concurrency: int = 1
    """Clusters whose actions run at the same time (``aws.max_concurrency``)."""
    fence: Callable[[str], int] | None = None
    """Checks that this process still holds the lease of the action's policy (in its pair),
    with a margin, and returns the lease's fencing counter; raises ``LeaseLost`` when not.
    Called right before each action's AWS mutation (``snapworker.service.leases``)."""

    @property
    def renames(self) -> dict[str, str]:
        """Each former policy name (``formerly``) -> the policy that now owns its snapshots."""
        return {old: p.name for p in self.policies.values() for old in p.formerly}

    def owned_by(self, snap: Snapshot, policy: str) -> bool:
        return guards.owned_by(snap, policy, self.state, self.account, self.renames)

    def fail_safe_days(self, action: Action) -> int | None:
        """The policy's ``retention.fail_safe_days`` (ManualSnapshotRetentionPeriod), if set."""
        policy = self.policies.get(action.policy)
        return policy.retention.fail_safe_days if policy is not None else None

    def run_one(self, action: Action) -> Outcome:
        """Journal, carry out through the kind's handler, journal the outcome."""
        do = HANDLERS[action.kind]
        try:
            fence = self.fence(action.policy) if self.fence is not None else None
        except SnapworkerError as e:  # the lease is lost: not started, nothing journalled
            return Outcome(action, False, "not started", str(e))
        entry = self.store.journal_start(self.run_id, action, self.clock(), fence=fence)
        if self.fence is not None:
            try:  # again: a freeze between the check and the entry leaves a stale entry
                self.fence(action.policy)
            except SnapworkerError as e:  # ours alone (nobody reuses a fresh entry): closed
                message = str(e)
                self.store.journal_finish(entry, "failed", None, message, self.clock())
                return Outcome(action, False, "not started", message)
        try:
            with self._guarded(action):
                outcome = do(self, action)
        except LeaseLost as e:
            # Lost since the check (a freeze): the request was not sent. The entry is left
            # as it is: the replica that took the pair over may have reused it (same key) and
            # finished it, and a holder that lost its lease writes nothing more there; an
            # entry nobody reused is settled by the next tick, as after a crash.
            return Outcome(action, False, "lease lost", str(e))
        except (AwsError, Refused) as e:
            message = str(e)
            self.store.journal_finish(entry, "failed", None, message, self.clock())
            return Outcome(action, False, "failed", message)
        self.store.journal_finish(entry, "completed", outcome, None, self.clock())
        return Outcome(action, True, outcome)

    def _guarded(self, action: Action) -> AbstractContextManager[object]:
        """The lease checked again right before each mutating request of the action goes out
        (the gateway's ``guarded``; a gateway without it, a test's fake: not checked)."""
        fence = self.fence
        guarded = getattr(self.gateway, "guarded", None)
        if fence is None or guarded is None:
            return nullcontext()
        return cast("AbstractContextManager[object]", guarded(lambda: fence(action.policy)))

    def check_deletable(self, action: Action) -> Snapshot | None:
        """Re-read the snapshot and check every delete guard; None: already gone."""
        snap = self.gateway.get_snapshot(action.snapshot, action.cluster)
        if snap is None:
            return None
        policy = self.policies[action.policy]
        why = guards.delete_refusal(
            snap, action.policy, policy.hold_tag, self.state, self.account, self.renames
        )
        if why is not None:
            raise Refused(why)
        return snap


# ----------------------------------------------------------------------- the handlers

Handler = Callable[[Executor, Action], str]
"""Carries out one action; returns its outcome word, raises AwsError or Refused."""

HANDLERS: dict[str, Handler] = {}
"""The executor's action kinds, each with its handler (see :func:`handler`)."""


def handler(kind: str, *, iam: tuple[str, ...]) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``kind``, which calls the IAM
    actions ``iam`` (declared for ``iam-policy``, with the docstring's summary as why)."""

    def register(fn: Handler) -> Handler:
        if kind in HANDLERS:
            raise ValueError(f"two handlers for {kind!r}")
        HANDLERS[kind] = fn
        needs(kind, *iam)(fn)
        return fn

    return register


declare(
    "account",
    ("sts:GetCallerIdentity",),
    "the account id for a snapshot's ARN when tagging, if no listing revealed it",
)


def _record(ex: Executor, action: Action, made_for: str, data_time: datetime | None) -> OwnedRecord:
    rec = OwnedRecord(
        action.snapshot,
        action.policy,
        action.cluster,
        "copy" if made_for == "copy" else "create",
        data_time,
        source_id=action.source,
        fire_time=action.fire_time,
    )
    ex.store.record_owned(rec, at=ex.clock())
    return rec


def _adopt_existing(ex: Executor, action: Action) -> Snapshot:
    """The target id exists already: adopt it only if its tags prove it is ours."""
    snap = ex.gateway.get_snapshot(action.snapshot, action.cluster)
    if snap is None or not guards.may_adopt(snap, action.policy, ex.state, ex.account, ex.renames):
        raise Refused(
            f"{action.kind} {action.snapshot}: the id is taken by a snapshot snapworker "
            "does not own; nothing was changed"
        )
    return snap


@handler("create", iam=("redshift:CreateClusterSnapshot",))
def do_create(ex: Executor, action: Action) -> str:
    """A manual snapshot of a cluster, tagged at birth (create.schedule); an id already
    taken is adopted only if its tags prove it is ours."""
    rec = OwnedRecord(
        action.snapshot,
        action.policy,
        action.cluster,
        "create",
        None,
        fire_time=action.fire_time,
    )
    policy = ex.policies.get(action.policy)
    if policy is not None and policy.verify and policy.verify.record_before_snapshot:
        record_figures_before_snapshot(ex.gateway, ex.store, ex.clock, policy, action)
    try:
        snap = ex.gateway.create_snapshot(
            action.snapshot,
            action.cluster,
            ownership_tags(rec),
            retention_days=ex.fail_safe_days(action),
        )
        outcome = "created"
    except AwsError as e:
        if e.code != "ClusterSnapshotAlreadyExists":
            raise
        snap = _adopt_existing(ex, action)
        outcome = "adopted"
    _record(ex, action, "create", snap.create_time)
    return outcome


@handler("copy", iam=("redshift:CopyClusterSnapshot",))
def do_copy(ex: Executor, action: Action) -> str:
    """An automated snapshot copied to a manual one (copy_automated), then tagged."""
    assert action.source is not None
    try:
        snap = ex.gateway.copy_snapshot(
            action.source,
            action.cluster,
            action.snapshot,
            retention_days=ex.fail_safe_days(action),
        )
        outcome = "copied"
    except AwsError as e:
        if e.code != "ClusterSnapshotAlreadyExists":
            raise
        snap = _adopt_existing(ex, action)
        outcome = "adopted"
    rec = _record(ex, action, "copy", action.data_time)
    ex.store.record_copied_source(action.policy, action.source, action.snapshot, ex.clock())
    if outcome == "copied":
        ex.gateway.tag_snapshot(
            action.snapshot, action.cluster, snap.owner_account, ownership_tags(rec)
        )
    return outcome


@handler("tag", iam=("redshift:CreateTags",))
def do_tag(ex: Executor, action: Action) -> str:
    """The ownership tags on what the worker makes (restoring them after a crash, and
    rewriting a former policy name's to the policy that lists it in formerly)."""
    rec = OwnedRecord(
        action.snapshot,
        action.policy,
        action.cluster,
        "copy" if action.source else "create",
        action.data_time,
        source_id=action.source,
        fire_time=action.fire_time,
    )
    ex.gateway.tag_snapshot(action.snapshot, action.cluster, None, ownership_tags(rec))
    ex.store.record_owned(rec, at=ex.clock())
    return "tagged"


@handler("share", iam=("redshift:AuthorizeSnapshotAccess",))
def do_share(ex: Executor, action: Action) -> str:
    """A grant to an account the policy lists (share.accounts)."""
    assert action.account is not None
    outcome = "shared"
    try:
        ex.gateway.authorize(action.snapshot, action.cluster, action.account)
    except AwsError as e:
        if e.code != "AuthorizationAlreadyExists":
            raise
        outcome = "already-shared"
    ex.store.record_grant(action.snapshot, action.account, ex.clock())
    return outcome


@handler("revoke", iam=("redshift:RevokeSnapshotAccess",))
def do_revoke(ex: Executor, action: Action) -> str:
    """A grant withdrawn: before every delete, at unshare_after, or drift (revoke_unlisted)."""
    assert action.account is not None
    outcome = "revoked"
    try:
        ex.gateway.revoke(action.snapshot, action.cluster, action.account)
    except AwsError as e:
        if e.code not in ("AuthorizationNotFound", "ClusterSnapshotNotFound"):
            raise
        outcome = "already-revoked"
    ex.store.record_revoke(action.snapshot, action.account, ex.clock())
    return outcome


@handler("delete", iam=("redshift:DeleteClusterSnapshot", "redshift:DescribeClusterSnapshots"))
def do_delete(ex: Executor, action: Action) -> str:
    """A snapshot retention no longer keeps, after the re-read and the guards
    (``Executor.check_deletable``, run by :func:`apply` before the journal entry)."""
    try:
        ex.gateway.delete_snapshot(action.snapshot, action.cluster)
        outcome = "deleted"
    except AwsError as e:
        if e.code != "ClusterSnapshotNotFound":
            raise
        outcome = "already-absent"
    ex.store.mark_deleted(action.snapshot, ex.clock())
    return outcome


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
    ``progress`` is called once per outcome, never from two threads at once. Every kind must
    have a handler (a ``verify`` action is a drill: ``service.drills.run_drills``).
    """
    workers = executor.max_concurrency
    unknown = sorted({a.kind for a in actions} - set(HANDLERS))
    if unknown:
        raise ValueError(f"the executor has no handler for {', '.join(unknown)}")
    groups: dict[tuple[str, str], list[int]] = {}
    for i, action in enumerate(actions):
        groups.setdefault((action.policy, action.cluster), []).append(i)
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
        # Imported here, not at the top: only a pool of several workers needs it (start-up).
        from concurrent.futures import ThreadPoolExecutor

        # The AWS calls overlap; the state DB's short write transactions take turns (see
        # _SerialStore), so SQLite's busy timeout is never what arbitrates between them.
        serial = cast("ExecutorStore", _SerialStore(executor.store))
        parallel = dataclasses.replace(executor, store=serial)
        run_group = _bind(run_group_of, parallel)
        with ThreadPoolExecutor(max_workers=min(workers, len(ordered))) as pool:
            for future in [pool.submit(run_group, g) for g in ordered]:
                future.result()  # re-raises what a worker raised (a crash of the store, say)
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
    store: ExecutorStore,
    pending: Sequence[PendingEntry],
    inventory: Inventory,
    now: datetime,
) -> int:
    """Complete the journal entries a crash left pending whose effect AWS already shows
    (``core.guards.effect_visible``), recording that effect in the state DB.

    Entries whose effect is not visible stay pending: the planner plans them again and the
    executor reuses the entry (same key). Returns how many entries were completed.
    """
    done = 0
    for e in pending:
        if not guards.effect_visible(e, inventory.snapshots):
            continue
        snap = inventory.snapshots.get(e.snapshot_id)
        if e.kind == "share" and e.account:
            store.record_grant(e.snapshot_id, e.account, now)
        elif e.kind == "revoke" and e.account:
            store.record_revoke(e.snapshot_id, e.account, now)
        elif e.kind == "delete":
            store.mark_deleted(e.snapshot_id, now)
        elif e.kind in ("create", "copy") and snap is not None:
            _record_made(store, e, snap, inventory, now)
        store.journal_finish(e.entry_id, "completed", "confirmed after interruption", None, now)
        done += 1
    return done


def _record_made(
    store: SnapshotRepository, e: PendingEntry, snap: Snapshot, inventory: Inventory, now: datetime
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
