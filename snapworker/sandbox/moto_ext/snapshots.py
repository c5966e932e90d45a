"""Making, copying, deleting and modifying manual snapshots, as the Redshift API reference
documents them.

CopyClusterSnapshot (moto lacks it)
    The source must exist (else ``ClusterSnapshotNotFound``; a
    ``SourceSnapshotClusterIdentifier`` that is not the source's cluster counts as not found),
    be ``automated`` and ``available`` (else ``InvalidClusterSnapshotState``); the target id
    must follow AWS's identifier rules (else ``InvalidParameterValue``) and be new in the
    account (else ``ClusterSnapshotAlreadyExists``); ``ManualSnapshotRetentionPeriod`` must be
    -1 or 1..3653 (else ``InvalidRetentionPeriodFault``). The copy is a manual snapshot of the
    same cluster with **no tags** whose ``SnapshotCreateTime`` is the time of the copy
    (pessimistic: AWS may report either; the worker must keep the data time itself).
CreateClusterSnapshot (replaced)
    As moto's, plus: identifier rules (``InvalidParameterValue``), a cluster that is not
    ``available`` (e.g. paused) -> ``InvalidClusterState``, ``ManualSnapshotRetentionPeriod``.
DeleteClusterSnapshot (replaced)
    Missing -> ``ClusterSnapshotNotFound``; automated, or in a state other than ``available``,
    ``failed`` or ``cancelled`` (the documented deletable states), or with any account still
    authorized -> ``InvalidClusterSnapshotState``. Returns the snapshot with status ``deleted``.
ModifyClusterSnapshot (moto lacks it)
    ``ManualSnapshotRetentionPeriod`` of a manual, ``available`` snapshot (missing ->
    ``ClusterSnapshotNotFound``; automated or not available -> ``InvalidClusterSnapshotState``;
    not -1 or 1..3653 -> ``InvalidRetentionPeriodFault``). A period that has already passed
    (counted from ``SnapshotCreateTime``) is refused with ``InvalidRetentionPeriodFault``
    unless ``Force`` is true, which deletes the snapshot at once, as documented. AWS lists
    "other accounts are authorized" under ``InvalidClusterSnapshotState`` for this call too;
    that generic wording is not enforced here (an assumption).

Create and Copy start the new snapshot ``creating`` when :mod:`.lifecycle` says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core.responses import ActionResult

from snapworker.sandbox.moto_ext.common import (
    ACCOUNTS,
    DELETABLE_STATES,
    RETENTION,
    RedshiftFault,
    aware_utc,
    invalid,
)
from snapworker.sandbox.moto_ext.lifecycle import start_creating
from snapworker.sandbox.moto_ext.seeding import make_snapshot
from snapworker.sandbox.moto_ext.wire import (
    check_identifier,
    check_retention,
    int_param,
    lookup,
    param,
    snapshot_view,
)


def create_cluster_snapshot(self: Any) -> ActionResult:
    """CreateClusterSnapshot: moto's, plus id rules, cluster state, retention, creating."""
    be = self.redshift_backend
    sid = check_identifier(param(self, "SnapshotIdentifier"), "SnapshotIdentifier")
    cluster_id = param(self, "ClusterIdentifier")
    retention = check_retention(int_param(self, "ManualSnapshotRetentionPeriod"))
    cluster = be.clusters.get(cluster_id)
    if cluster is None:
        raise RedshiftFault("ClusterNotFound", f"Cluster {cluster_id} not found.")
    if cluster.status != "available":
        raise RedshiftFault(
            "InvalidClusterState",
            f"The cluster {cluster_id} is in state {cluster.status}; a snapshot can only be "
            "taken of an available cluster.",
        )
    tags = self._get_param("Tags", []) or []
    snap = make_snapshot(be, cluster, sid, snapshot_type="manual", tags=tags)
    setattr(snap, RETENTION, retention)
    setattr(snap, ACCOUNTS, [])
    start_creating(snap)
    return ActionResult({"Snapshot": snapshot_view(snap)})


def copy_cluster_snapshot(self: Any) -> ActionResult:
    """CopyClusterSnapshot: an available automated snapshot -> a new, untagged manual one."""
    be = self.redshift_backend
    source_id = param(self, "SourceSnapshotIdentifier")
    if not source_id:
        raise invalid("SourceSnapshotIdentifier is required.")
    source = lookup(be, str(source_id), param(self, "SourceSnapshotClusterIdentifier"))
    if source.snapshot_type != "automated" or source.status != "available":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Snapshot {source_id} must be an automated snapshot in the available state to be "
            f"copied (it is {source.snapshot_type}, {source.status}).",
        )
    target_id = check_identifier(
        param(self, "TargetSnapshotIdentifier"), "TargetSnapshotIdentifier"
    )
    retention = check_retention(int_param(self, "ManualSnapshotRetentionPeriod"))
    # The copy's attributes come from the source snapshot; its create time is now.
    snap = make_snapshot(be, source, target_id, snapshot_type="manual", tags=None)
    setattr(snap, RETENTION, retention)
    setattr(snap, ACCOUNTS, [])
    start_creating(snap)
    return ActionResult({"Snapshot": snapshot_view(snap)})


def delete_cluster_snapshot(self: Any) -> ActionResult:
    """DeleteClusterSnapshot: manual, deletable state, and no account authorized."""
    be = self.redshift_backend
    sid = str(param(self, "SnapshotIdentifier", ""))
    snap = lookup(be, sid, param(self, "SnapshotClusterIdentifier"))
    if snap.snapshot_type == "automated":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Cannot delete the snapshot {sid} because only manual snapshots may be deleted",
        )
    if snap.status not in DELETABLE_STATES:
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Cannot delete the snapshot {sid} because it is in state {snap.status}.",
        )
    if getattr(snap, ACCOUNTS, []):
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Cannot delete the snapshot {sid} because other accounts are authorized to "
            "access it; revoke every authorization first.",
        )
    del be.snapshots[sid]
    return ActionResult({"Snapshot": snapshot_view(snap, status="deleted")})


def modify_cluster_snapshot(self: Any) -> ActionResult:
    """ModifyClusterSnapshot: a manual snapshot's ManualSnapshotRetentionPeriod."""
    be = self.redshift_backend
    sid = str(param(self, "SnapshotIdentifier", ""))
    snap = lookup(be, sid, None)
    if snap.snapshot_type != "manual":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Snapshot {sid} is an automated snapshot; only a manual snapshot has a manual "
            "snapshot retention period.",
        )
    if snap.status != "available":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Snapshot {sid} is in state {snap.status}; it must be available.",
        )
    if param(self, "ManualSnapshotRetentionPeriod") is None:
        return ActionResult({"Snapshot": snapshot_view(snap)})
    retention = check_retention(int_param(self, "ManualSnapshotRetentionPeriod"))
    force = str(param(self, "Force", "false")).lower() == "true"
    age = datetime.now(UTC) - aware_utc(snap.create_time)
    if retention != -1 and age > timedelta(days=retention):
        if not force:
            raise RedshiftFault(
                "InvalidRetentionPeriodFault",
                f"The retention period of {retention} days has already passed for snapshot "
                f"{sid}; specify Force to delete it now.",
            )
        del be.snapshots[sid]
        return ActionResult({"Snapshot": snapshot_view(snap, status="deleted")})
    setattr(snap, RETENTION, retention)
    return ActionResult({"Snapshot": snapshot_view(snap)})
