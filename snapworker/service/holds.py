"""``snapworker hold`` / ``release``: set or clear a policy's hold tag on a snapshot it owns.

A hold is a tag on the snapshot itself (``hold_tag``, default ``snapworker:hold``, its value
the reason), not a row in the state DB: it lives with the snapshot, so it survives the loss
of the state DB, it is visible in the console, and anyone with CreateTags can set one in an
emergency. The planner reads it on every tick: a held snapshot is never revoked (retention,
``unshare_after``, drift) nor deleted; the executor re-checks it before every delete.

These commands only ever change a snapshot snapworker owns (tags, state DB or journal prove
it: :func:`snapworker.core.planner.owned_snapshots`). The hold tag key is per policy, so the
owning policy (named by the snapshot's ownership tags, else the state DB) decides which key
is written. An unknown snapshot, one the worker does not own, or one owned by a policy the
config no longer has is refused with :class:`HoldRefused` before any AWS mutation.

Fail-safe expiry (``retention.fail_safe_days``): AWS deletes a manual snapshot once its
ManualSnapshotRetentionPeriod passed, whatever its tags say. So when the owning policy sets
``fail_safe_days`` (or the snapshot carries a period anyway), ``hold`` also sets its
retention to -1 (indefinite) with ModifyClusterSnapshot, and ``release`` puts the policy's
``fail_safe_days`` back (with none set the period stays -1), unless that period has
already passed for this snapshot (AWS would refuse it without ``Force``, and with ``Force``
delete the snapshot at once): then the retention stays indefinite and the worker's own rules
decide, which the release message says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from snapworker.adapters.aws.redshift import AwsError
from snapworker.core.model import Inventory, OwnedRecord, Snapshot, State
from snapworker.core.planner import owned_snapshots
from snapworker.errors import SnapworkerError, UsageError
from snapworker.service.iam import needs
from snapworker.service.ports import StateRepository
from snapworker.service.tick import Runtime, observe

if TYPE_CHECKING:
    from snapworker.config import Policy

__all__ = [
    "MAX_REASON",
    "HoldIncomplete",
    "HoldRefused",
    "HoldTarget",
    "find_target",
    "hold",
    "release",
]

MAX_REASON = 256
"""AWS's limit on a tag value (the reason is the hold tag's value)."""


class HoldRefused(UsageError):
    """The snapshot cannot be held or released (unknown, not owned, bad reason): exit 2."""


class HoldIncomplete(SnapworkerError):
    """The hold tag is set but AWS's own expiry could not be suspended (exit 1); the message
    says what was done and what was not."""


@dataclass(frozen=True)
class HoldTarget:
    """An owned snapshot and the policy whose hold tag applies to it."""

    snapshot: Snapshot
    record: OwnedRecord
    policy: Policy

    @property
    def tag(self) -> str:
        return self.policy.hold_tag

    @property
    def current_reason(self) -> str | None:
        return self.snapshot.tags.get(self.tag)


def find_target(
    snapshot_id: str,
    policies: list[Policy],
    inventory: Inventory,
    state: State,
    account: str | None,
) -> HoldTarget:
    """The owned snapshot ``snapshot_id`` and its policy (pure), or :class:`HoldRefused`."""
    snap = inventory.snapshots.get(snapshot_id)
    if snap is None:
        raise HoldRefused(f"no snapshot {snapshot_id!r} in this account and region")
    if snap.type != "manual":
        raise HoldRefused(
            f"{snapshot_id} is an automated snapshot: snapworker never owns or deletes those, "
            "so there is nothing to hold"
        )
    rec = owned_snapshots([p.core for p in policies], inventory, state, account).get(snapshot_id)
    if rec is None:
        raise HoldRefused(
            f"{snapshot_id} is not owned by snapworker (no ownership tags matching its id, "
            "no state DB record): snapworker never changes it, tags included"
        )
    by_name = {p.name: p for p in policies}
    policy = by_name.get(rec.policy)
    if policy is None:
        raise HoldRefused(
            f"{snapshot_id} is owned by policy {rec.policy!r}, which the config does not have: "
            "its hold tag is unknown"
        )
    return HoldTarget(snap, rec, policy)


def _check_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise HoldRefused("--reason must not be empty: say why the snapshot is held")
    if len(text) > MAX_REASON:
        raise HoldRefused(
            f"--reason is {len(text)} characters; a tag value holds at most {MAX_REASON}"
        )
    return text


def _target(rt: Runtime[StateRepository], snapshot_id: str) -> HoldTarget:
    inv = observe(rt)
    return find_target(
        snapshot_id,
        list(rt.config.policies),
        inv,
        rt.store.load_state(),
        rt.gateway.account_id(),
    )


def _fail_safe(policy: Policy) -> int | None:
    return policy.retention.fail_safe_days


@needs("hold", "redshift:CreateTags", "redshift:ModifyClusterSnapshot")
def hold(rt: Runtime[StateRepository], snapshot_id: str, reason: str) -> str:
    """snapworker hold/release: the hold tag, and the manual retention period set to
    indefinite while held.

    Sets the hold tag (value: the reason) on an owned snapshot; returns what was done."""
    text = _check_reason(reason)
    t = _target(rt, snapshot_id)
    snap = t.snapshot
    lines = []
    if t.current_reason == text:
        lines.append(f"{snapshot_id} is already held ({t.tag}={text}); nothing changed")
    else:
        rt.gateway.tag_snapshot(snap.id, snap.cluster, snap.owner_account, {t.tag: text})
        was = f" (was: {t.current_reason})" if t.current_reason is not None else ""
        lines.append(f"held {snapshot_id} (policy {t.policy.name}): {t.tag}={text}{was}")
        rt.log.info("hold", snapshot=snapshot_id, policy=t.policy.name, tag=t.tag, reason=text)
    days = _fail_safe(t.policy)
    period = snap.retention_period
    if days is not None or (period is not None and period != -1):
        # AWS's own expiry ignores tags: a hold must stop it too.
        try:
            rt.gateway.set_retention(snap.id, -1)
        except AwsError as e:
            lines.append(
                f"but AWS's own expiry is NOT suspended: ModifyClusterSnapshot failed ({e}); "
                "AWS may still delete it: run `snapworker hold` again"
            )
            raise HoldIncomplete("\n".join(lines)) from e
        after = f"release restores {days} days" if days is not None else "release leaves it"
        lines.append(
            "fail-safe expiry suspended: ManualSnapshotRetentionPeriod set to -1 "
            f"(indefinite) while held; {after}"
        )
    return "\n".join(lines)


@needs("hold", "redshift:DeleteTags", "redshift:ModifyClusterSnapshot")
def release(rt: Runtime[StateRepository], snapshot_id: str) -> str:
    """Clear the hold tag of an owned snapshot, and restore the fail-safe retention period;
    returns what was done."""
    t = _target(rt, snapshot_id)
    snap = t.snapshot
    lines = []
    if t.current_reason is None:
        lines.append(f"{snapshot_id} is not held ({t.tag} not set); nothing changed")
    else:
        rt.gateway.untag_snapshot(snap.id, snap.cluster, snap.owner_account, [t.tag])
        lines.append(
            f"released {snapshot_id} (policy {t.policy.name}): removed {t.tag}="
            f"{t.current_reason}; the policy's rules decide from the next run"
        )
        rt.log.info("release", snapshot=snapshot_id, policy=t.policy.name, tag=t.tag)
    days = _fail_safe(t.policy)
    if days is not None and t.current_reason is not None:
        try:
            lines.append(_restore_fail_safe(rt, snap, days, rt.clock()))
        except AwsError as e:
            lines.append(
                f"but fail-safe expiry is NOT restored: ModifyClusterSnapshot failed ({e}); "
                "the period stays -1: AWS keeps it, snapworker's rules still decide"
            )
            raise HoldIncomplete("\n".join(lines)) from e
    return "\n".join(lines)


def _restore_fail_safe(
    rt: Runtime[StateRepository], snap: Snapshot, days: int, now: datetime
) -> str:
    age_days = (now - snap.create_time).total_seconds() / 86400
    if age_days >= days:
        return (
            f"fail-safe expiry left indefinite: the snapshot is {age_days:.0f} days old, past "
            f"fail_safe_days {days} (AWS would delete it at once); the worker's rules decide"
        )
    rt.gateway.set_retention(snap.id, days)
    return f"fail-safe expiry restored: ManualSnapshotRetentionPeriod {days} days"
