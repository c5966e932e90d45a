"""Mutations across clusters on a thread pool, under one shared rate limit (apply + gateway).

The real executor, gateway and rate limiter run against a fake boto3 client that records
every call with the time of a *virtual* clock: each worker thread has its own virtual time,
which only the rate limiter's sleeps move, so no test sleeps for real and the timings are
exact. The state DB is the shared in-memory fake (``tests/fakes.py``); a small test runs the
same pool over a real SQLite state DB.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from snapworker.adapters.aws.ratelimit import RateLimiter
from snapworker.adapters.aws.redshift import RedshiftGateway
from snapworker.config import RetryConfig
from snapworker.core import ids
from snapworker.core.model import Action, OwnedRecord, State
from snapworker.core.ownership import ownership_tags
from snapworker.service.executor import Executor, ExecutorStore, apply
from tests.factories import policy
from tests.fakes import FakeStore

POLICY = "prod-nightly"
ACCOUNT = "123456789012"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class VirtualTime:
    """Per-thread virtual seconds: ``sleep`` moves only the calling thread's clock."""

    def __init__(self) -> None:
        self._local = threading.local()

    def clock(self) -> float:
        return float(getattr(self._local, "t", 0.0))

    def sleep(self, seconds: float) -> None:
        self._local.t = self.clock() + seconds


class FakeRedshift:
    """Just enough of boto3's Redshift client; records (virtual time, operation, cluster,
    snapshot) per call, and can fail chosen calls or hold the first call of some clusters
    at a barrier (to prove that they are in flight at the same time)."""

    def __init__(self, vt: VirtualTime, fail: dict[tuple[str, str], str] | None = None) -> None:
        self.vt = vt
        self.meta = SimpleNamespace(region_name="us-east-1", endpoint_url=None)
        self.calls: list[tuple[float, str, str, str]] = []
        self.fail = dict(fail or {})
        self.barrier: threading.Barrier | None = None
        self.barrier_clusters: set[str] = set()
        self.in_flight: dict[str, int] = defaultdict(int)
        self.overlaps: list[str] = []
        self.tags: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def _record(self, op: str, cluster: str, snapshot: str) -> None:
        with self._lock:
            first = cluster in self.barrier_clusters
            self.barrier_clusters.discard(cluster)
            self.in_flight[cluster] += 1
            if self.in_flight[cluster] > 1:
                self.overlaps.append(cluster)
            self.calls.append((self.vt.clock(), op, cluster, snapshot))
        try:
            if first and self.barrier is not None:
                self.barrier.wait(timeout=30)
            code = self.fail.pop((op, snapshot), None)
            if code is not None:
                raise ClientError({"Error": {"Code": code, "Message": "injected"}}, op)
        finally:
            with self._lock:
                self.in_flight[cluster] -= 1

    def _snapshot(self, sid: str, cluster: str, **extra: Any) -> dict[str, Any]:
        return {
            "SnapshotIdentifier": sid,
            "ClusterIdentifier": cluster,
            "SnapshotType": "manual",
            "Status": "available",
            "SnapshotCreateTime": T0,
            "OwnerAccount": ACCOUNT,
            **extra,
        }

    def copy_cluster_snapshot(self, **kw: Any) -> dict[str, Any]:
        cluster, target = kw["SourceSnapshotClusterIdentifier"], kw["TargetSnapshotIdentifier"]
        self._record("CopyClusterSnapshot", cluster, target)
        return {"Snapshot": self._snapshot(target, cluster)}

    def create_tags(self, ResourceName: str, Tags: list[dict[str, str]]) -> dict[str, Any]:
        cluster, sid = ResourceName.rsplit(":", 1)[1].split("/")
        self._record("CreateTags", cluster, sid)
        with self._lock:
            self.tags[sid] = {t["Key"]: t["Value"] for t in Tags}
        return {}

    def revoke_snapshot_access(self, **kw: Any) -> dict[str, Any]:
        sid = kw["SnapshotIdentifier"]
        self._record("RevokeSnapshotAccess", kw["SnapshotClusterIdentifier"], sid)
        return {}

    def describe_cluster_snapshots(self, **kw: Any) -> dict[str, Any]:
        sid, cluster = kw["SnapshotIdentifier"], kw["ClusterIdentifier"]
        self._record("DescribeClusterSnapshots", cluster, sid)
        tags = [{"Key": k, "Value": v} for k, v in self.tags.get(sid, {}).items()]
        return {"Snapshots": [self._snapshot(sid, cluster, Tags=tags)]}

    def delete_cluster_snapshot(self, **kw: Any) -> dict[str, Any]:
        self._record(
            "DeleteClusterSnapshot", kw["SnapshotClusterIdentifier"], kw["SnapshotIdentifier"]
        )
        return {}


def executor(
    client: FakeRedshift, store: ExecutorStore, vt: VirtualTime, rate: float, workers: int
) -> tuple[Executor, RateLimiter]:
    limiter = RateLimiter(rate, clock=vt.clock, sleep=vt.sleep)
    retry = RetryConfig(attempts=3, wait_initial_seconds=0, wait_max_seconds=0)
    gateway = RedshiftGateway(client, retry, sleep=vt.sleep, limiter=limiter)
    ex = Executor(
        gateway=gateway,
        store=store,
        run_id=1,
        policies={POLICY: policy(POLICY)},
        state=State(),
        clock=lambda: T0,
        account=ACCOUNT,
        max_concurrency=workers,
    )
    return ex, limiter


def copies(clusters: int, per_cluster: int) -> list[Action]:
    out = []
    for c in range(clusters):
        cid = f"prod-{c:03d}"
        for k in range(per_cluster):
            src = f"rs:{cid}-2026-11-{k + 1:02d}-03-00"
            target = ids.copy_snapshot_id(POLICY, cid, src)
            out.append(
                Action(POLICY, cid, "copy", target, "new", source=src, data_time=T0 - timedelta(k))
            )
    return sorted(out, key=lambda a: (a.cluster, a.snapshot))  # the planner's order


def test_a_thousand_copies_over_a_hundred_clusters_go_as_fast_as_the_rate_allows():
    vt = VirtualTime()
    client = FakeRedshift(vt)
    client.barrier = threading.Barrier(4)
    client.barrier_clusters = {f"prod-{c:03d}" for c in range(4)}  # the first 4 groups
    ex, limiter = executor(client, FakeStore(), vt, rate=5, workers=4)
    actions = copies(100, 10)

    outcomes = apply(actions, ex)

    # Every action, in plan order, all copied (and then tagged).
    assert [o.action for o in outcomes] == actions
    assert {o.outcome for o in outcomes} == {"copied"}
    assert len(client.calls) == 2000  # 1,000 CopyClusterSnapshot + 1,000 CreateTags
    # Four clusters were in flight at once (else the barrier would have broken), and no
    # cluster ever had two calls in flight.
    assert not client.barrier.broken
    assert client.overlaps == []
    # Per cluster: strictly the plan's order, each copy followed by its tag.
    by_cluster: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for _, op, cluster, sid in client.calls:  # per cluster, the order they were made
        by_cluster[cluster].append((op, sid))
    for cluster, seq in by_cluster.items():
        planned = [a.snapshot for a in actions if a.cluster == cluster]
        assert seq == [(op, s) for s in planned for op in ("CopyClusterSnapshot", "CreateTags")]
    # The rate: never two calls closer than 1/5 s, and done in the minimal time, 1,999
    # intervals of 0.2 s: the limit, not the pool or one-at-a-time, sets the pace.
    times = sorted(t for t, *_ in client.calls)
    assert min(b - a for a, b in pairwise(times)) == pytest.approx(0.2)
    assert times[-1] == pytest.approx(1999 * 0.2)
    assert limiter.stats().acquired == 2000


def test_one_worker_keeps_the_plan_order_across_clusters():
    vt = VirtualTime()
    client = FakeRedshift(vt)
    ex, _ = executor(client, FakeStore(), vt, rate=10, workers=1)
    actions = copies(5, 3)
    apply(actions, ex)
    copied = [sid for _, op, _, sid in client.calls if op == "CopyClusterSnapshot"]
    assert copied == [a.snapshot for a in actions]


def owned_expired(cid: str) -> tuple[OwnedRecord, list[Action]]:
    src = f"rs:{cid}-old"
    sid = ids.copy_snapshot_id(POLICY, cid, src)
    rec = OwnedRecord(sid, POLICY, cid, "copy", T0 - timedelta(days=60), source_id=src)
    acts = [
        Action(POLICY, cid, "revoke", sid, "expired", account=acc)
        for acc in ("111122223333", "amazon-redshift-support")
    ]
    return rec, [*acts, Action(POLICY, cid, "delete", sid, "expired")]


def test_revokes_precede_each_delete_and_a_failed_revoke_blocks_only_its_delete():
    vt = VirtualTime()
    recs, actions = [], []
    for c in range(20):
        rec, acts = owned_expired(f"prod-{c:03d}")
        recs.append(rec)
        actions.extend(acts)
    bad = recs[7].snapshot_id
    client = FakeRedshift(vt, fail={("RevokeSnapshotAccess", bad): "UnauthorizedOperation"})
    client.tags = {r.snapshot_id: ownership_tags(r) for r in recs}
    store = FakeStore()
    ex, _ = executor(client, store, vt, rate=50, workers=4)

    outcomes = apply(actions, ex)

    assert [o.action for o in outcomes] == actions
    assert store.deleted == {r.snapshot_id for r in recs} - {bad}
    skipped = [o for o in outcomes if o.action.kind == "delete" and not o.ok]
    assert [(o.action.snapshot, o.outcome) for o in skipped] == [(bad, "skipped")]
    for rec in recs:
        ops = [op for _, op, _, sid in client.calls if sid == rec.snapshot_id]
        if rec.snapshot_id == bad:
            assert "DeleteClusterSnapshot" not in ops
        else:
            assert ops == [
                "RevokeSnapshotAccess",
                "RevokeSnapshotAccess",
                "DescribeClusterSnapshots",  # the safety re-read
                "DeleteClusterSnapshot",
            ]


def test_the_re_read_before_each_delete_is_paced_like_the_delete():
    vt = VirtualTime()
    recs, actions = [], []
    for c in range(30):
        rec, acts = owned_expired(f"prod-{c:03d}")
        recs.append(rec)
        actions.extend(acts)
    client = FakeRedshift(vt)
    client.tags = {r.snapshot_id: ownership_tags(r) for r in recs}
    store = FakeStore()
    ex, limiter = executor(client, store, vt, rate=5, workers=4)

    apply(actions, ex)

    assert store.deleted == {r.snapshot_id for r in recs}
    reads = [c for c in client.calls if c[1] == "DescribeClusterSnapshots"]
    assert len(reads) == 30
    # Every call took a token, the 30 re-reads included: 60 revokes + 30 reads + 30 deletes,
    # never two closer than 1/5 s, whichever thread made them.
    assert limiter.stats().acquired == 120
    times = sorted(t for t, *_ in client.calls)
    assert len(times) == 120
    assert min(b - a for a, b in pairwise(times)) == pytest.approx(0.2)


def test_stop_is_honoured_by_every_worker():
    vt = VirtualTime()
    client = FakeRedshift(vt)
    ex, _ = executor(client, FakeStore(), vt, rate=100, workers=4)
    actions = copies(40, 5)
    done: list[object] = []
    outcomes = apply(actions, ex, progress=done.append, should_stop=lambda: len(done) >= 30)
    # Once 30 outcomes are in, no new action starts; at most the 3 others in flight finish.
    assert 30 <= len(outcomes) <= 33
    assert len(done) == len(outcomes)
    assert [o.action for o in outcomes] == [a for a in actions if a in {o.action for o in outcomes}]


def test_a_throttle_halves_the_rate_of_every_thread():
    vt = VirtualTime()
    actions = copies(1, 6)
    client = FakeRedshift(vt, fail={("CopyClusterSnapshot", actions[2].snapshot): "Throttling"})
    ex, limiter = executor(client, FakeStore(), vt, rate=4, workers=4)
    outcomes = apply(actions, ex)
    assert all(o.ok for o in outcomes)
    st = limiter.stats()
    assert st.throttles == 1
    # 12 calls (6 copies, 6 tags) plus the retried copy; after the throttle the spacing is
    # 1/2 s, then shrinks as each success adds 4/20 back.
    times = [t for t, *_ in client.calls]
    gaps = [round(b - a, 6) for a, b in pairwise(times)]
    assert gaps[:4] == [0.25] * 4  # copy, tag, copy, tag at 4/s; then the throttled copy
    # Its retry: the slot already due (0.25 s) plus one interval at the halved rate (0.5 s).
    assert gaps[4] == pytest.approx(0.75)
    assert gaps[-1] < 0.5


def test_the_pool_shares_a_real_sqlite_state_db(tmp_path: Path):
    from snapworker.adapters.store.repository import open_store

    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        run_id = store.begin_run("run", 1, T0)
        vt = VirtualTime()
        client = FakeRedshift(vt)
        ex, _ = executor(client, store, vt, rate=100, workers=4)
        ex.run_id = run_id
        actions = copies(12, 4)
        outcomes = apply(actions, ex)
        assert all(o.ok for o in outcomes)
        journal = store.journal(limit=1000, run_id=run_id)
        assert sorted(j.snapshot_id for j in journal) == sorted(a.snapshot for a in actions)
        assert {j.status for j in journal} == {"completed"}
        owned = store.load_state().owned
        assert {a.snapshot for a in actions} <= set(owned)
    finally:
        store.close()
