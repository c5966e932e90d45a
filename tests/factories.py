"""Plain-data builders for planner tests: clusters, snapshots (owned or not), policies."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from snapworker.config import Policy
from snapworker.core import ids
from snapworker.core.model import Cluster, Inventory, OwnedRecord, Snapshot, State
from snapworker.core.ownership import ownership_tags

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def days_ago(d: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=d)


def policy(name: str = "prod-nightly", **over: Any) -> Policy:
    """The config's policy model, which the service (executor, holds, drills) takes. The core
    takes its ``.core`` view (``snapworker.core.policy``), which has the same attributes with
    the same values (``tests/test_config.py`` pins that), so a planner test may hand either."""
    data: dict[str, Any] = {
        "name": name,
        "select": {"clusters": ["prod-*"]},
        "copy_automated": True,
        "share": {"accounts": ["111122223333", "amazon-redshift-support"]},
        "retention": {"max_age_days": 35, "keep_last": 3},
        "limits": {"max_deletes_per_run": 20},
    }
    data.update(over)
    return Policy.model_validate(data)


def cluster(cid: str = "prod-a", status: str = "available", **tags: str) -> Cluster:
    return Cluster(cid, status, tags)


def automated(cluster_id: str, t: datetime, status: str = "available") -> Snapshot:
    sid = f"rs:{cluster_id}-{t:%Y-%m-%d-%H-%M}"
    return Snapshot(sid, cluster_id, "automated", status, t)


def unowned(sid: str, cluster_id: str, t: datetime, **tags: str) -> Snapshot:
    return Snapshot(sid, cluster_id, "manual", "available", t, tags)


def owned_copy(
    pol: str,
    src: Snapshot,
    accounts: Iterable[str] = (),
    status: str = "available",
    extra_tags: dict[str, str] | None = None,
    copy_time: datetime | None = None,
) -> Snapshot:
    sid = ids.copy_snapshot_id(pol, src.cluster, src.id)
    rec = OwnedRecord(sid, pol, src.cluster, "copy", src.create_time, source_id=src.id)
    tags = ownership_tags(rec) | (extra_tags or {})
    return Snapshot(
        sid, src.cluster, "manual", status, copy_time or NOW, tags, tuple(sorted(accounts))
    )


def owned_create(
    pol: str, cluster_id: str, fire: datetime, accounts: Iterable[str] = (), **extra: str
) -> Snapshot:
    sid = ids.create_snapshot_id(pol, cluster_id, fire)
    rec = OwnedRecord(sid, pol, cluster_id, "create", fire, fire_time=fire)
    return Snapshot(
        sid,
        cluster_id,
        "manual",
        "available",
        fire,
        ownership_tags(rec) | extra,
        tuple(sorted(accounts)),
    )


def inventory(clusters: Iterable[Cluster], snapshots: Iterable[Snapshot]) -> Inventory:
    return Inventory({c.id: c for c in clusters}, {s.id: s for s in snapshots})


EMPTY = State()
