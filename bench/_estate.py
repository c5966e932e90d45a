"""A synthetic estate for the benchmarks: plain data (for the planner) or seeded into moto.

Each cluster holds its share of the snapshots, one every ``spacing`` (9 hours by default,
about AWS's automated cadence), newest first: the newest is an automated snapshot not yet
copied, the next two automated snapshots already copied, and every older one a manual copy
the worker owns (tagged, recorded in the state DB, shared with one account). With the policy
below (``max_age_days 35``, ``keep_last 3``) a run copies the newest automated snapshot of
each cluster, takes the day's scheduled snapshot, and revokes then deletes the copies older
than 35 days.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from snapworker.core import ids
from snapworker.core.model import Cluster, Inventory, OwnedRecord, Snapshot, State
from snapworker.core.ownership import ownership_tags

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = "prod-nightly"
SHARE = "111122223333"
ACCOUNT = "123456789012"
SPACING = timedelta(hours=9)


def policy_data(max_deletes: int = 10_000) -> dict[str, Any]:
    return {
        "name": POLICY,
        "select": {"clusters": ["prod-*"]},
        "create": {"schedule": "0 3 * * *", "timezone": "UTC"},
        "copy_automated": True,
        "share": {"accounts": [SHARE]},
        "retention": {"max_age_days": 35, "keep_last": 3},
        "limits": {"max_deletes_per_run": max_deletes},
    }


def cluster_ids(n: int) -> list[str]:
    return [f"prod-{i:04d}" for i in range(n)]


def source_id(cid: str, t: datetime) -> str:
    return f"rs:{cid}-{t:%Y-%m-%d-%H-%M}"


Item = tuple[str, str, str, datetime]


def layout(
    clusters: int, snapshots: int, now: datetime = NOW, spacing: timedelta = SPACING
) -> list[Item]:
    """(cluster, kind, snapshot id, data time) for every snapshot, ``kind`` being
    ``automated`` (not copied), ``copied`` (automated, already copied) or ``copy``."""
    per, extra = divmod(snapshots, clusters)
    out: list[Item] = []
    for i, cid in enumerate(cluster_ids(clusters)):
        n = per + (1 if i < extra else 0)
        slots = [now - timedelta(hours=2) - k * spacing for k in range(n + 2)]
        kinds = ["automated", "copied", "copied"][: min(3, n)]
        for k, kind in enumerate(kinds):
            out.append((cid, kind, source_id(cid, slots[k]), slots[k]))
        # Copies of the two "copied" sources, then of older ones (their sources are gone).
        for k in range(1, n - len(kinds) + 1):
            t = slots[k]
            out.append((cid, "copy", ids.copy_snapshot_id(POLICY, cid, source_id(cid, t)), t))
    return out


def copy_record(cid: str, t: datetime) -> OwnedRecord:
    src = source_id(cid, t)
    return OwnedRecord(
        ids.copy_snapshot_id(POLICY, cid, src), POLICY, cid, "copy", t, source_id=src
    )


def plain(clusters: int, snapshots: int) -> tuple[Inventory, State]:
    """The estate as the planner sees it (inventory and a state DB that knows every copy)."""
    snaps: dict[str, Snapshot] = {}
    owned: dict[str, OwnedRecord] = {}
    for cid, kind, sid, t in layout(clusters, snapshots):
        if kind != "copy":
            snaps[sid] = Snapshot(sid, cid, "automated", "available", t, owner_account=ACCOUNT)
            continue
        rec = copy_record(cid, t)
        owned[sid] = rec
        tags = ownership_tags(rec)
        made = t + timedelta(minutes=5)
        snaps[sid] = Snapshot(sid, cid, "manual", "available", made, tags, (SHARE,), ACCOUNT)
    inv = Inventory({c: Cluster(c, "available", {}) for c in cluster_ids(clusters)}, snaps)
    return inv, State(owned=owned)


def seed_moto(
    be: Any, clusters: int, snapshots: int, now: datetime, spacing: timedelta = SPACING
) -> None:
    """Seed moto's Redshift backend (no API calls) with :func:`layout`'s estate, times
    relative to ``now`` (the worker's clock when it runs)."""
    from snapworker.sandbox import moto_ext

    for cid in cluster_ids(clusters):
        be.create_cluster(
            cluster_identifier=cid,
            node_type="ra3.xlplus",
            master_username="admin",
            master_user_password="Passw0rd-bench",
            db_name="dev",
            cluster_type="single-node",
            cluster_security_groups=[],
            vpc_security_group_ids=[],
            cluster_subnet_group_name=None,
            availability_zone=None,
            preferred_maintenance_window=None,
            cluster_parameter_group_name=None,
            automated_snapshot_retention_period=1,
            port=5439,
            cluster_version="1.0",
            allow_version_upgrade=True,
            number_of_nodes=1,
            publicly_accessible=False,
            encrypted=False,
            region_name=be.region_name,
            tags=[{"Key": "env", "Value": "prod"}],
        )
    for sid in [s for s, snap in be.snapshots.items() if snap.snapshot_type == "automated"]:
        moto_ext.drop_snapshot(be, sid)  # moto's own snapshot at CreateCluster
    for cid, kind, sid, t in layout(clusters, snapshots, now=now, spacing=spacing):
        if kind != "copy":
            moto_ext.add_automated_snapshot(be, cid, create_time=t, snapshot_id=sid)
            continue
        rec = copy_record(cid, t)
        moto_ext.add_manual_snapshot(
            be,
            cid,
            sid,
            create_time=t + timedelta(minutes=5),
            tags=ownership_tags(rec),
            accounts=[SHARE],
        )
