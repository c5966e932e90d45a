"""What restore drills call: restoring a snapshot into a new cluster, and temporary database
credentials for it.

RestoreFromClusterSnapshot (wrapped)
    Refused with ``InvalidClusterSnapshotState`` unless the snapshot is ``available``; a
    ``ClusterIdentifier`` breaking AWS's rules (1..63 lowercase letters, digits, hyphens;
    first a letter; no ``--``, no trailing hyphen) -> ``InvalidParameterValue``. The API takes
    no tags, so the new cluster starts untagged (moto copied the snapshot's tags). It is
    ``creating`` for a while (:func:`.lifecycle.set_restore_polls`), then ``available``.
GetClusterCredentials (wrapped)
    As moto's (``IAM:``/``IAMA:`` prefix, DurationSeconds 900..3600), plus
    ``InvalidClusterState`` for a cluster that is not ``available``. Every password issued is
    remembered (:func:`.counters.issued_passwords`) so that tests can search logs, reports and
    the state DB for it.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult

from snapworker.sandbox.moto_ext.common import RedshiftFault, original
from snapworker.sandbox.moto_ext.counters import remember_password
from snapworker.sandbox.moto_ext.lifecycle import start_restoring
from snapworker.sandbox.moto_ext.wire import (
    CLUSTER_IDENTIFIER,
    lookup,
    param,
    snapshot_id_from,
)


def restore_from_cluster_snapshot(self: Any) -> ActionResult:
    """RestoreFromClusterSnapshot: refused unless the snapshot is available."""
    be = self.redshift_backend
    sid = str(param(self, "SnapshotIdentifier", "")) or snapshot_id_from(self)
    snap = lookup(be, sid, param(self, "SnapshotClusterIdentifier"))
    if snap.status != "available":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Snapshot {sid} is in state {snap.status}; only an available snapshot can be "
            "restored.",
        )
    cluster_id = str(param(self, "ClusterIdentifier", ""))
    if not CLUSTER_IDENTIFIER.match(cluster_id):
        raise RedshiftFault(
            "InvalidParameterValue",
            "ClusterIdentifier must contain from 1 to 63 lowercase alphanumeric characters or "
            "hyphens, begin with a letter, and cannot end with a hyphen or contain two "
            f"consecutive hyphens: {cluster_id!r}",
        )
    result: ActionResult = original("restore_from_cluster_snapshot")(self)
    cluster = be.clusters.get(cluster_id)
    if cluster is not None:
        # RestoreFromClusterSnapshot takes no Tags: the new cluster starts untagged (moto
        # copied the snapshot's tags), then is `creating` until the restore completes.
        cluster.tags = []
        start_restoring(cluster)
    return result


def get_cluster_credentials(self: Any) -> ActionResult:
    """GetClusterCredentials: as moto's (IAM:/IAMA: prefix, DurationSeconds 900..3600), plus
    AWS's refusal on a cluster that is not ``available``; remembers each password issued."""
    be = self.redshift_backend
    cluster_id = str(param(self, "ClusterIdentifier", ""))
    cluster = be.clusters.get(cluster_id)
    if cluster is not None and cluster.status != "available":
        raise RedshiftFault(
            "InvalidClusterState",
            f"The cluster {cluster_id} is in state {cluster.status}; credentials can only be "
            "issued for an available cluster.",
        )
    result: ActionResult = original("get_cluster_credentials")(self)
    data = result.result if isinstance(result, ActionResult) else None
    password = data.get("DbPassword") if isinstance(data, dict) else None
    if isinstance(password, str):
        remember_password(password)
    return result
