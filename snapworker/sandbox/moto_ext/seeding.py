"""Helpers that work on moto's backend directly: seed (back-dated, tagged, shared) snapshots,
set states, read grants. No API call, so nothing here is counted.

Also the backend fix ``install()`` applies: ``RedshiftBackend.describe_cluster_snapshots``
filters exactly (moto returned every snapshot for a cluster without snapshots, so
DeleteCluster could drop *all* automated snapshots of the account).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from snapworker.sandbox.moto_ext.common import (
    ACCOUNTS,
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    LOCK,
    POLLS_LEFT,
    RETENTION,
    SIZES,
    RedshiftFault,
    aware_utc,
    clock_shift,
    not_found,
    to_naive_utc,
)

if TYPE_CHECKING:
    from moto.redshift.models import RedshiftBackend, Snapshot


def backend(account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> RedshiftBackend:
    """moto's Redshift backend for an account and region (what the API calls act on)."""
    from moto.redshift.models import redshift_backends

    return redshift_backends[account_id][region]


def all_backends() -> Iterator[RedshiftBackend]:
    from moto.redshift.models import redshift_backends

    for regions in list(redshift_backends.values()):
        yield from list(regions.values())


def automated_snapshot_id(cluster_id: str, create_time: datetime) -> str:
    """AWS's automated snapshot id, ``rs:<cluster>-YYYY-MM-DD-HH-MM`` (UTC)."""
    return f"rs:{cluster_id}-{aware_utc(create_time).strftime('%Y-%m-%d-%H-%M')}"


def make_snapshot(
    be: RedshiftBackend,
    source: Any,
    snapshot_id: str,
    *,
    snapshot_type: str,
    tags: Sequence[dict[str, str]] | None,
) -> Snapshot:
    """A new snapshot of *source* (a cluster, or a snapshot for a copy) in the backend;
    ``ClusterSnapshotAlreadyExists`` if the id is taken in the account."""
    from moto.redshift.models import Snapshot

    if snapshot_id in be.snapshots:
        raise RedshiftFault(
            "ClusterSnapshotAlreadyExists",
            "Cannot create the snapshot because a snapshot with the identifier "
            f"{snapshot_id} already exists",
        )
    snap = Snapshot(
        source,
        snapshot_id,
        be.account_id,
        be.region_name,
        [dict(t) for t in tags] if tags else None,
        snapshot_type=snapshot_type,
    )
    snap.create_time = snap.create_time + clock_shift()  # moto stamps the wall clock
    be.snapshots[snapshot_id] = snap
    return snap


def _cluster_or_standin(be: RedshiftBackend, cluster_id: str) -> Any:
    cluster = be.clusters.get(cluster_id)
    if cluster is not None:
        return cluster
    # A manual snapshot can outlive its cluster: describe it with plausible defaults.
    return SimpleNamespace(
        cluster_identifier=cluster_id,
        port=5439,
        availability_zone=f"{be.region_name}a",
        master_username="admin",
        master_user_password="",
        cluster_version="1.0",
        node_type="ra3.xlplus",
        number_of_nodes=1,
        db_name="dev",
        enhanced_vpc_routing=False,
        encrypted=False,
    )


def _tag_list(tags: dict[str, str] | Sequence[dict[str, str]] | None) -> list[dict[str, str]]:
    if not tags:
        return []
    if isinstance(tags, dict):
        return [{"Key": k, "Value": v} for k, v in tags.items()]
    return [dict(t) for t in tags]


def add_automated_snapshot(
    be: RedshiftBackend,
    cluster_id: str,
    *,
    create_time: datetime,
    snapshot_id: str | None = None,
    status: str = "available",
) -> Snapshot:
    """Add an (optionally back-dated) automated snapshot of an existing cluster.

    The id defaults to ``rs:<cluster>-YYYY-MM-DD-HH-MM`` from *create_time* (aware, or naive
    taken as UTC). Raises ``RedshiftFault`` for an unknown cluster or a duplicate id.
    """
    with LOCK:
        cluster = be.clusters.get(cluster_id)
        if cluster is None:
            raise RedshiftFault("ClusterNotFound", f"Cluster {cluster_id} not found.")
        sid = snapshot_id or automated_snapshot_id(cluster_id, create_time)
        snap = make_snapshot(be, cluster, sid, snapshot_type="automated", tags=None)
        snap.create_time = to_naive_utc(create_time)
        snap.status = status
        return snap


def add_manual_snapshot(
    be: RedshiftBackend,
    cluster_id: str,
    snapshot_id: str,
    *,
    create_time: datetime | None = None,
    tags: dict[str, str] | Sequence[dict[str, str]] | None = None,
    status: str = "available",
    accounts: Iterable[str] = (),
    retention_period: int = -1,
) -> Snapshot:
    """Add an (optionally back-dated, tagged, shared) manual snapshot.

    *tags* is a ``{key: value}`` dict or a list of ``{"Key", "Value"}``. The cluster need not
    exist (manual snapshots outlive their cluster). *accounts* are granted restore access.
    """
    with LOCK:
        source = _cluster_or_standin(be, cluster_id)
        snap = make_snapshot(be, source, snapshot_id, snapshot_type="manual", tags=_tag_list(tags))
        if create_time is not None:
            snap.create_time = to_naive_utc(create_time)
        snap.status = status
        setattr(snap, RETENTION, retention_period)
        setattr(snap, ACCOUNTS, list(dict.fromkeys(accounts)))
        return snap


def set_cluster_status(be: RedshiftBackend, cluster_id: str, status: str) -> None:
    """Set a cluster's ``ClusterStatus`` (e.g. ``paused``, ``modifying``)."""
    with LOCK:
        be.clusters[cluster_id].status = status


def set_snapshot_status(be: RedshiftBackend, snapshot_id: str, status: str) -> None:
    """Set a snapshot's ``Status`` (``creating``, ``available``, ``failed``, ...)."""
    with LOCK:
        snap = be.snapshots[snapshot_id]
        snap.status = status
        if status != "creating":
            setattr(snap, POLLS_LEFT, 0)


def set_snapshot_sizes(
    be: RedshiftBackend, snapshot_id: str, total_mb: float, incremental_mb: float
) -> None:
    """Set the sizes DescribeClusterSnapshots reports (``TotalBackupSizeInMegaBytes``,
    ``ActualIncrementalBackupSizeInMegaBytes``); without it they derive from the ids."""
    with LOCK:
        setattr(be.snapshots[snapshot_id], SIZES, (float(total_mb), float(incremental_mb)))


def authorized_accounts(be: RedshiftBackend, snapshot_id: str) -> list[str]:
    """Accounts (and the support alias) granted restore access to a snapshot, in grant order."""
    with LOCK:
        return list(getattr(be.snapshots[snapshot_id], ACCOUNTS, []))


def drop_snapshot(be: RedshiftBackend, snapshot_id: str) -> None:
    """Remove a snapshot as AWS itself would (e.g. an automated one past its retention)."""
    with LOCK:
        be.snapshots.pop(snapshot_id, None)


def fixed_backend_describe(
    self: Any,
    cluster_identifier: str | None = None,
    snapshot_identifier: str | None = None,
    snapshot_type: str | None = None,
) -> list[Snapshot]:
    """``RedshiftBackend.describe_cluster_snapshots``, filtering exactly (moto returned every
    snapshot for a cluster with none of its own)."""
    if snapshot_identifier and snapshot_identifier not in self.snapshots:
        raise not_found(snapshot_identifier)
    return [
        s
        for s in self.snapshots.values()
        if (not cluster_identifier or s.cluster_identifier == cluster_identifier)
        and (not snapshot_identifier or s.snapshot_identifier == snapshot_identifier)
        and (not snapshot_type or s.snapshot_type == snapshot_type)
    ]
