"""The snapshot listing, per cluster in parallel, lists exactly what the account-wide listing
lists: every page of every cluster, and the orphans (manual snapshots of clusters deleted
since), which a listing by cluster alone would miss; in the same order, whatever order the
threads finish in. Against moto with snapworker's extension (paging and filters as on AWS).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from snapworker.adapters.aws import listing
from snapworker.adapters.aws.client import CallStats, instrument
from snapworker.adapters.aws.errors import AwsError
from snapworker.adapters.aws.redshift import RedshiftGateway
from snapworker.config import RetryConfig
from snapworker.core import ids
from snapworker.core.model import OwnedRecord
from snapworker.core.ownership import ownership_tags
from snapworker.sandbox import moto_ext

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
# Snapshots per live cluster: two clusters with more than a page (100) each, one with
# exactly a page, one with a few, one with none.
PER_CLUSTER = {"prod-a": 230, "prod-b": 101, "prod-c": 100, "prod-d": 7, "prod-e": 0}
ORPHANS = {"gone-1": 12, "gone-2": 3}  # clusters deleted since: their manual copies stay


def _client() -> Any:
    return boto3.client("redshift", region_name="us-east-1")


def _create_cluster(client: Any, cid: str) -> None:
    client.create_cluster(
        ClusterIdentifier=cid,
        NodeType="ra3.xlplus",
        MasterUsername="admin",
        MasterUserPassword="Passw0rd-test",
        ClusterType="single-node",
    )


def _owned_copy(be: Any, cid: str, k: int) -> str:
    t = NOW - timedelta(days=40 + k)
    src = f"rs:{cid}-{t:%Y-%m-%d-%H-%M}"
    sid = ids.copy_snapshot_id("prod-nightly", cid, src)
    rec = OwnedRecord(sid, "prod-nightly", cid, "copy", t, source_id=src)
    moto_ext.add_manual_snapshot(be, cid, sid, create_time=t, tags=ownership_tags(rec))
    return sid


@pytest.fixture
def estate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        moto_ext.install()
        client = _client()
        be = moto_ext.backend()
        for cid in [*PER_CLUSTER, *ORPHANS]:
            _create_cluster(client, cid)
        for snap in list(be.snapshots.values()):  # moto's CreateCluster snapshots, dated now
            moto_ext.drop_snapshot(be, snap.snapshot_identifier)
        for cid, n in PER_CLUSTER.items():
            for k in range(n):
                if k % 3 == 0:
                    moto_ext.add_automated_snapshot(
                        be, cid, create_time=NOW - timedelta(hours=5 * k + 1)
                    )
                else:
                    _owned_copy(be, cid, k)
        for cid, n in ORPHANS.items():
            for k in range(n):
                _owned_copy(be, cid, k)
            client.delete_cluster(ClusterIdentifier=cid, SkipFinalClusterSnapshot=True)
        yield client


def _gateway(client: Any, workers: int) -> RedshiftGateway:
    stats = CallStats()
    fresh = boto3.client("redshift", region_name="us-east-1")
    instrument(fresh, stats)
    gw = RedshiftGateway(fresh, RetryConfig())
    gw.stats = stats
    gw.listing_workers = workers
    return gw


def _pages(gw: RedshiftGateway) -> listing.Pages:
    return functools.partial(
        gw._pages, "DescribeClusterSnapshots", "describe_cluster_snapshots", "Snapshots"
    )


def test_the_estate_is_what_the_test_says(estate: Any) -> None:
    be = moto_ext.backend()
    assert sorted(be.clusters) == sorted(PER_CLUSTER)
    assert len(be.snapshots) == sum(PER_CLUSTER.values()) + sum(ORPHANS.values())


@pytest.mark.parametrize("workers", [2, 4, 16])
def test_per_cluster_lists_exactly_what_the_account_wide_listing_lists(
    estate: Any, workers: int
) -> None:
    seq_gw = _gateway(estate, 1)
    seq_gw.list_clusters()
    want = listing.sequential(_pages(seq_gw))
    par_gw = _gateway(estate, workers)
    clusters = par_gw.list_clusters()
    got = listing.per_cluster(_pages(par_gw), list(clusters), workers)

    assert got == want  # the same snapshots, the same content, the same order
    total = sum(PER_CLUSTER.values()) + sum(ORPHANS.values())
    assert len(got) == total
    orphans = [raw for raw in got if raw["ClusterIdentifier"].startswith("gone-")]
    assert len(orphans) == sum(ORPHANS.values())
    # Calls: the account-wide floor, against each cluster's pages plus the orphans' page.
    assert seq_gw.stats.calls["DescribeClusterSnapshots"] == -(-total // 100)
    per_cluster_pages = sum(max(1, -(-n // 100)) for n in PER_CLUSTER.values())
    assert par_gw.stats.calls["DescribeClusterSnapshots"] == per_cluster_pages + 1


def test_a_listing_by_cluster_alone_would_miss_the_orphans(estate: Any) -> None:
    gw = _gateway(estate, 4)
    pages = _pages(gw)
    by_cluster = [raw for cid in gw.list_clusters() for raw in pages(ClusterIdentifier=cid)]
    orphans = list(pages(ClusterExists=False))
    assert len(by_cluster) == sum(PER_CLUSTER.values())
    assert {raw["ClusterIdentifier"] for raw in orphans} == set(ORPHANS)
    assert len(orphans) == sum(ORPHANS.values())


TOTAL = sum(PER_CLUSTER.values()) + sum(ORPHANS.values())
FLOOR = -(-TOTAL // 100)  # account-wide pages


def test_a_big_listing_switches_to_per_cluster_and_gets_the_same_inventory(
    estate: Any,
) -> None:
    seq = _gateway(estate, 1)
    seq.list_clusters()
    want = seq.list_snapshots()
    par = _gateway(estate, 4)
    clusters = par.list_clusters()
    budget = listing.switch_after(len(clusters), 4)
    assert budget is not None and budget < FLOOR  # this estate is big enough to switch
    seen: list[tuple[int, bool]] = []
    got = par.list_snapshots(lambda n, more: seen.append((n, more)))

    assert got == want
    assert list(got) == list(want)
    assert len(got) == TOTAL
    assert seq.stats.calls["DescribeClusterSnapshots"] == FLOOR
    # The account-wide pages read before the switch, each cluster's pages, the orphans' page.
    per_cluster_pages = sum(max(1, -(-n // 100)) for n in PER_CLUSTER.values())
    assert par.stats.calls["DescribeClusterSnapshots"] == budget + per_cluster_pages + 1
    # Progress: running totals that never go back, ending with every snapshot, done.
    counts = [n for n, _ in seen]
    assert counts == sorted(counts)
    assert seen[-1] == (TOTAL, False)
    assert all(more for _, more in seen[:-1])


def test_a_listing_that_ends_before_the_switch_costs_the_floor(estate: Any) -> None:
    gw = _gateway(estate, 8)
    gw.list_clusters()
    # Many clusters (most listing nothing): the switch would come after more pages than
    # this account has, so the account-wide listing just ends.
    gw._cluster_ids |= {f"idle-{i}" for i in range(40)}
    budget = listing.switch_after(len(gw._cluster_ids), 8)
    assert budget is not None and budget > FLOOR
    seen: list[tuple[int, bool]] = []
    got = gw.list_snapshots(lambda n, more: seen.append((n, more)))
    assert len(got) == TOTAL
    assert gw.stats.calls["DescribeClusterSnapshots"] == FLOOR
    assert len(seen) == FLOOR and seen[-1] == (TOTAL, False)


@pytest.mark.parametrize("workers", [1, 8])
def test_one_cluster_or_one_worker_lists_account_wide(estate: Any, workers: int) -> None:
    gw = _gateway(estate, workers)
    gw.list_clusters()
    if workers > 1:
        gw._cluster_ids = {"prod-a"}
    got = gw.list_snapshots()
    assert len(got) == TOTAL
    assert gw.stats.calls["DescribeClusterSnapshots"] == FLOOR


def test_the_switch_point() -> None:
    assert listing.switch_after(1, 8) is None
    assert listing.switch_after(100, 1) is None
    assert listing.switch_after(2, 8) == listing.MIN_PAGES_BEFORE_SWITCH
    assert listing.switch_after(10, 8) == 5  # half the clusters
    assert listing.switch_after(100, 8) == 50
    assert listing.switch_after(1000, 8) == 500
    assert listing.switch_after(10, 2) == 6  # (clusters + 1) / workers


# -- races and failures, on a scripted listing ----------------------------------------------


def _raw(sid: str, cluster: str, minute: int) -> dict[str, Any]:
    return {
        "SnapshotIdentifier": sid,
        "ClusterIdentifier": cluster,
        "SnapshotCreateTime": NOW + timedelta(minutes=minute),
    }


class Scripted:
    """A listing whose answers the test writes: a cluster deleted between DescribeClusters
    and its own listing answers ClusterNotFound, and its snapshots are orphans from then."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deleted: set[str] = set()
        self.orphan_listings = 0
        self.calls: list[dict[str, Any]] = []
        self.snaps = {
            "c1": [_raw("s1", "c1", 1), _raw("s2", "c1", 2)],
            "c2": [_raw("s3", "c2", 3)],
            "gone": [_raw("s0", "gone", 0)],
        }

    def __call__(self, progress: Any = None, **params: Any) -> Iterator[dict[str, Any]]:
        with self.lock:
            self.calls.append(params)
        cid = params.get("ClusterIdentifier")
        if cid is None:
            assert params == {"ClusterExists": False}
            with self.lock:
                self.orphan_listings += 1
                first = self.orphan_listings == 1
                if first:
                    self.deleted.add("c2")  # deleted right after the orphans were read
                gone = ["gone"] if first else ["gone", "c2"]
            items = [raw for c in gone for raw in self.snaps[c]]
        elif cid == "boom":
            raise AwsError("DescribeClusterSnapshots", "AccessDenied", "no")
        else:
            with self.lock:
                if cid in self.deleted:
                    raise AwsError("DescribeClusterSnapshots", "ClusterNotFound", "gone")
            items = self.snaps[cid]
        if progress is not None:
            progress(len(items), False)
        yield from items


def test_a_cluster_deleted_during_the_listing_keeps_its_snapshots() -> None:
    pages = Scripted()
    # One worker: the orphans' listing runs first, then c1, then c2 (deleted by then).
    got = listing.per_cluster(pages, ["c2", "c1"], workers=1)
    assert [raw["SnapshotIdentifier"] for raw in got] == ["s0", "s1", "s2", "s3"]
    assert pages.orphan_listings == 2  # read again, because c2 answered ClusterNotFound


def test_no_cluster_gone_reads_the_orphans_once() -> None:
    pages = Scripted()
    pages.snaps["c2"] = []
    got = listing.per_cluster(pages, ["c1"], workers=4)
    assert [raw["SnapshotIdentifier"] for raw in got] == ["s0", "s1", "s2"]
    assert pages.orphan_listings == 1


def test_any_other_error_fails_the_listing() -> None:
    pages = Scripted()
    with pytest.raises(AwsError, match="AccessDenied"):
        listing.per_cluster(pages, ["c1", "boom"], workers=2)


def test_the_same_snapshot_read_twice_is_listed_once() -> None:
    pages = Scripted()
    pages.snaps["gone"] = [_raw("s1", "c1", 1)]  # c1's, seen as an orphan too (a race)
    got = listing.per_cluster(pages, ["c1"], workers=2)
    assert [raw["SnapshotIdentifier"] for raw in got] == ["s1", "s2"]


# -- the sandbox's ClusterExists, as AWS documents it ------------------------------------------


def test_cluster_exists_filter(estate: Any) -> None:
    def ids_of(**kw: Any) -> set[str]:
        return {
            raw["ClusterIdentifier"]
            for raw in estate.describe_cluster_snapshots(MaxRecords=100, **kw)["Snapshots"]
        }

    assert ids_of(ClusterExists=False) == set(ORPHANS)
    assert ids_of(ClusterExists=False, ClusterIdentifier="gone-1") == {"gone-1"}
    assert ids_of(ClusterExists=False, ClusterIdentifier="prod-d") == set()
    assert ids_of(ClusterExists=True, ClusterIdentifier="prod-d") == {"prod-d"}
    assert ids_of(ClusterExists=True, ClusterIdentifier="gone-1") == set()
    assert ids_of(ClusterIdentifier="gone-2") == {"gone-2"}  # no ClusterExists: any cluster
    with pytest.raises(estate.exceptions.ClientError, match="ClusterIdentifier is required"):
        estate.describe_cluster_snapshots(ClusterExists=True)
