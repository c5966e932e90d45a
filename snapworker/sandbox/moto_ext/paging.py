"""The two listings, paged and filtered as on AWS, so that the worker's own paging is tested
(moto returns one page, always, and ignores most filters).

DescribeClusterSnapshots (replaced)
    ``AccountsWithRestoreAccess``, ``Tags``, ``OwnerAccount``, ``ManualSnapshotRetentionPeriod``
    (manual only; see :mod:`.wire`). Honours ``MaxRecords`` (20..100, default 100, else
    ``InvalidParameterValue``), ``Marker`` (opaque; a bad one -> ``InvalidParameterValue``),
    ``SnapshotType``, ``ClusterIdentifier`` (unknown -> empty list),
    ``SnapshotIdentifier``/``SnapshotArn`` (unknown -> ``ClusterSnapshotNotFound``),
    ``ClusterExists`` (``true`` needs a ``ClusterIdentifier``, else ``InvalidParameterValue``,
    and keeps the snapshots of clusters that exist; ``false`` keeps those of clusters that no
    longer do, the orphaned snapshots: all of them without ``ClusterIdentifier``, none for an
    existing cluster), ``TagKeys``/``TagValues`` (a snapshot matches when one of its tags
    has a listed key, or a listed value, or with both given a listed key *and* a listed
    value: "any combination", as documented), ``StartTime``/``EndTime`` (inclusive),
    ``OwnerAccount``. Order: ``SnapshotCreateTime`` then ``SnapshotIdentifier``, ascending,
    so paging is deterministic.
    Times are UTC. Each response moves the ``creating`` snapshots it shows one poll on
    (:mod:`.lifecycle`).
DescribeClusters (paged)
    moto's answer, ordered by ``ClusterIdentifier`` and paged by ``MaxRecords`` (20..100,
    default 100) and an opaque ``Marker``, so that a run's DescribeClusters calls can be
    counted against ceil(clusters / 100). A listing's first page moves restored clusters one
    poll on (:mod:`.lifecycle`).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from moto.core.responses import ActionResult

from snapworker.sandbox.moto_ext.common import aware_utc, invalid, not_found, original
from snapworker.sandbox.moto_ext.lifecycle import advance_restores, shown
from snapworker.sandbox.moto_ext.wire import (
    max_records,
    param,
    snapshot_id_from,
    snapshot_view,
    str_list,
    time_param,
)

if TYPE_CHECKING:
    from moto.redshift.models import Snapshot


def _encode_marker(snap: Snapshot) -> str:
    raw = json.dumps([aware_utc(snap.create_time).isoformat(), snap.snapshot_identifier])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_marker(marker: str) -> tuple[datetime, str]:
    try:
        padded = marker + "=" * (-len(marker) % 4)
        when, sid = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        return datetime.fromisoformat(when), str(sid)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid(f"Invalid marker: {marker}") from exc


def _sort_key(snap: Snapshot) -> tuple[datetime, str]:
    return aware_utc(snap.create_time), snap.snapshot_identifier


def _tag_match(snap: Snapshot, keys: list[str], values: list[str]) -> bool:
    if not keys and not values:
        return True
    return any(
        (not keys or t["Key"] in keys) and (not values or t["Value"] in values) for t in snap.tags
    )


def _bool_param(resp: Any, name: str) -> bool | None:
    value = param(resp, name)
    if value is None or isinstance(value, bool):
        return value
    text = str(value).lower()
    if text not in ("true", "false"):
        raise invalid(f"Invalid value for {name}: {value}")
    return text == "true"


def describe_cluster_snapshots(self: Any) -> ActionResult:
    """DescribeClusterSnapshots with filters, grants, tags and MaxRecords/Marker paging."""
    be = self.redshift_backend
    page_size = max_records(self)
    marker = param(self, "Marker")
    after = _decode_marker(str(marker)) if marker else None

    snapshot_id = param(self, "SnapshotIdentifier")
    if not snapshot_id and param(self, "SnapshotArn"):
        snapshot_id = snapshot_id_from(self)
    if snapshot_id and snapshot_id not in be.snapshots:
        raise not_found(str(snapshot_id))
    cluster_id = param(self, "ClusterIdentifier")
    snapshot_type = param(self, "SnapshotType")
    if snapshot_type and snapshot_type not in ("automated", "manual"):
        raise invalid(f"Invalid snapshot type {snapshot_type}: use automated or manual.")
    owner = param(self, "OwnerAccount")
    start, end = time_param(self, "StartTime"), time_param(self, "EndTime")
    exists = _bool_param(self, "ClusterExists")
    if exists is True and not cluster_id:
        raise invalid("ClusterIdentifier is required when ClusterExists is true.")
    keys = str_list(param(self, "TagKeys"))
    values = str_list(param(self, "TagValues"))

    def wanted(s: Snapshot) -> bool:
        created = aware_utc(s.create_time)
        return (
            (not snapshot_id or s.snapshot_identifier == snapshot_id)
            and (not cluster_id or s.cluster_identifier == cluster_id)
            and (not snapshot_type or s.snapshot_type == snapshot_type)
            and (not owner or s.account_id == owner)
            and (start is None or created >= start)
            and (end is None or created <= end)
            and _tag_match(s, keys, values)
            and (exists is None or (s.cluster_identifier in be.clusters) == exists)
        )

    matched = sorted((s for s in be.snapshots.values() if wanted(s)), key=_sort_key)
    if after is not None:
        after_key = (aware_utc(after[0]), after[1])
        matched = [s for s in matched if _sort_key(s) > after_key]
    page, rest = matched[:page_size], matched[page_size:]

    views = []
    for snap in page:
        views.append(snapshot_view(snap))
        shown(snap)
    result: dict[str, Any] = {"Snapshots": views}
    if rest:
        result["Marker"] = _encode_marker(page[-1])
    return ActionResult(result)


def describe_clusters_paged(self: Any) -> ActionResult:
    """DescribeClusters with MaxRecords/Marker paging (moto returns one page, always), by
    ClusterIdentifier ascending; the marker is opaque, as on AWS. A listing's first page
    (no marker) also advances restored clusters, once per listing whatever its number of
    pages."""
    page_size = max_records(self)
    marker = param(self, "Marker")
    after: str | None = None
    if marker:
        try:
            padded = str(marker) + "=" * (-len(str(marker)) % 4)
            after = base64.urlsafe_b64decode(padded.encode()).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise invalid(f"Invalid marker: {marker}") from exc
    if after is None:
        advance_restores(self.redshift_backend)
    result: ActionResult = original("describe_clusters")(self)
    clusters = sorted(result.result["Clusters"], key=lambda c: c.cluster_identifier)  # type: ignore[index]
    if after is not None:
        clusters = [c for c in clusters if c.cluster_identifier > after]
    page, rest = clusters[:page_size], clusters[page_size:]
    out: dict[str, Any] = {"Clusters": page}
    if rest:
        last = page[-1].cluster_identifier
        out["Marker"] = base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")
    return ActionResult(out)
