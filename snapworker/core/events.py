"""Domain events: what observing the account revealed, and the handlers that answer them.

The planner compares what it observes with the policies and raises one event per change
that calls for work (a new automated snapshot, a schedule that came due, an owned snapshot
that is available but not yet shared, a grant that lapsed or drifted, a snapshot that fell
out of retention). Each event type has one handler: a plain function from the event to the
actions that answer it, registered by type with :func:`on`. That is the whole message flow;
the daemon and ``run`` share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from snapworker.core.model import Action, OwnedRecord


@dataclass(frozen=True)
class AutomatedSnapshotSeen:
    """An available automated snapshot of a selected cluster that the policy never copied."""

    policy: str
    cluster: str
    source: str
    source_time: datetime
    target: str


@dataclass(frozen=True)
class ScheduleDue:
    """A fire time of the policy's schedule passed since its last snapshot of the cluster."""

    policy: str
    cluster: str
    fire_time: datetime
    snapshot: str
    schedule: str


@dataclass(frozen=True)
class OwnershipTagsMissing:
    """An owned snapshot without its tags (a crash between CopyClusterSnapshot and CreateTags),
    or whose tags name a former name of its policy (``former``: that name; ``formerly``)."""

    record: OwnedRecord
    proof: str
    former: str | None = None


@dataclass(frozen=True)
class SnapshotNeedsShare:
    """An owned, available snapshot not yet shared with an account the policy lists."""

    policy: str
    cluster: str
    snapshot: str
    account: str


@dataclass(frozen=True)
class GrantLapsed:
    """A grant the worker made is older than ``unshare_after``."""

    policy: str
    cluster: str
    snapshot: str
    account: str
    granted_at: datetime
    after: str


@dataclass(frozen=True)
class GrantDrifted:
    """A grant on an owned snapshot to an account the policy does not list."""

    policy: str
    cluster: str
    snapshot: str
    account: str
    revoke: bool


@dataclass(frozen=True)
class SnapshotExpired:
    """An owned snapshot retention no longer keeps, within this run's deletion cap."""

    policy: str
    cluster: str
    snapshot: str
    data_time: datetime
    accounts: tuple[str, ...]
    reason: str


Event = (
    AutomatedSnapshotSeen
    | ScheduleDue
    | OwnershipTagsMissing
    | SnapshotNeedsShare
    | GrantLapsed
    | GrantDrifted
    | SnapshotExpired
)


EventHandler = Callable[[Any], list[Action]]

HANDLERS: dict[type, EventHandler] = {}
"""Each event type's handler, registered with :func:`on` (one per type)."""

E = TypeVar("E")


def on(event_type: type[E]) -> Callable[[Callable[[E], list[Action]]], Callable[[E], list[Action]]]:
    """Register the decorated function as the handler of ``event_type`` (the executor keeps
    its ``{kind: handler}`` registry the same way)."""

    def register(fn: Callable[[E], list[Action]]) -> Callable[[E], list[Action]]:
        if event_type in HANDLERS:
            raise ValueError(f"two handlers for {event_type.__name__}")
        HANDLERS[event_type] = fn
        return fn

    return register


@on(AutomatedSnapshotSeen)
def on_automated(e: AutomatedSnapshotSeen) -> list[Action]:
    # The source is the action's own field, its time the data time: the reason names neither
    # (the table prints "from <source>: <reason>" next to the data time).
    reason = "automated snapshot not yet copied"
    return [
        Action(
            e.policy, e.cluster, "copy", e.target, reason, source=e.source, data_time=e.source_time
        )
    ]


@on(ScheduleDue)
def on_schedule_due(e: ScheduleDue) -> list[Action]:
    reason = f"schedule '{e.schedule}' fired at {e.fire_time:%Y-%m-%d %H:%M}Z"
    return [Action(e.policy, e.cluster, "create", e.snapshot, reason, fire_time=e.fire_time)]


@on(OwnershipTagsMissing)
def on_tags_missing(e: OwnershipTagsMissing) -> list[Action]:
    r = e.record
    if e.former is not None:
        reason = (
            f"ownership tags name policy {e.former}, which {r.policy} lists in formerly; "
            f"rewriting them to {r.policy}"
        )
    else:
        reason = f"ownership tags missing (owned per {e.proof}); restoring them"
    return [
        Action(
            r.policy,
            r.cluster,
            "tag",
            r.snapshot_id,
            reason,
            source=r.source_id,
            data_time=r.data_time,
            fire_time=r.fire_time,
        )
    ]


@on(SnapshotNeedsShare)
def on_needs_share(e: SnapshotNeedsShare) -> list[Action]:
    reason = f"available and not yet shared with {e.account}"
    return [Action(e.policy, e.cluster, "share", e.snapshot, reason, account=e.account)]


@on(GrantLapsed)
def on_grant_lapsed(e: GrantLapsed) -> list[Action]:
    reason = f"unshare_after {e.after}: granted {e.granted_at:%Y-%m-%d %H:%M}Z"
    return [Action(e.policy, e.cluster, "revoke", e.snapshot, reason, account=e.account)]


@on(GrantDrifted)
def on_grant_drifted(e: GrantDrifted) -> list[Action]:
    if not e.revoke:
        return []
    reason = f"drift: {e.account} is not listed by the policy (revoke_unlisted: true)"
    return [Action(e.policy, e.cluster, "revoke", e.snapshot, reason, account=e.account)]


@on(SnapshotExpired)
def on_expired(e: SnapshotExpired) -> list[Action]:
    actions = [
        Action(
            e.policy,
            e.cluster,
            "revoke",
            e.snapshot,
            f"before delete: {e.reason}",
            account=account,
            data_time=e.data_time,
        )
        for account in sorted(e.accounts)
    ]
    actions.append(
        Action(e.policy, e.cluster, "delete", e.snapshot, e.reason, data_time=e.data_time)
    )
    return actions


def handle(event: Event) -> list[Action]:
    """The actions that answer ``event``."""
    return HANDLERS[type(event)](event)
