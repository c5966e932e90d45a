"""The call floor: what one `plan` and one `run` cost in AWS calls, counted by moto's server.

A run reads the inventory in ceil(snapshots/100) DescribeClusterSnapshots pages and
ceil(clusters/100) DescribeClusters pages, makes one call per mutation (plus CreateTags
after a copy), and one more DescribeClusterSnapshots per delete: the re-read docs/design.md's
invariant 2 requires ("revoke first, re-read, then delete"), counted apart by the worker as
``DescribeClusterSnapshots (by id)``. Plus one sts:GetCallerIdentity per command for a
target on the worker's own credentials: the state DB keys every row by account and region
(the fleet), and the account must be known before the run's first row, before the
inventory is read. A role target's account is its ARN's: no call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from snapworker.core import ids
from snapworker.core.model import OwnedRecord
from snapworker.core.ownership import ownership_tags
from snapworker.sandbox import moto_ext
from tests.e2e_support import Sandbox

pytestmark = pytest.mark.e2e

POLICY = "prod-nightly"
ACC, ALIAS = "111122223333", "amazon-redshift-support"
CLUSTERS = [f"prod-{i:03d}" for i in range(120)]
NOW = datetime.now(UTC).replace(microsecond=0)


def owned_copy(box: Sandbox, cid: str, source: str, age: float, shared: bool = True) -> None:
    t = NOW - timedelta(days=age)
    sid = ids.copy_snapshot_id(POLICY, cid, source)
    rec = OwnedRecord(sid, POLICY, cid, "copy", t, source_id=source)
    moto_ext.add_manual_snapshot(
        box.backend(),
        cid,
        sid,
        create_time=t,
        tags=ownership_tags(rec),
        accounts=[ACC, ALIAS] if shared else [],
    )


def seed(box: Sandbox) -> int:
    """250 snapshots over 120 clusters; returns the number of snapshots.

    Steady state everywhere (each cluster: an automated snapshot, already copied, the copy
    shared with both accounts), plus exactly this to do: 3 new automated snapshots to copy
    (prod-000..002), and 2 expired copies shared with both accounts (prod-003, prod-004,
    each with two newer copies so keep_last 3 does not hold it) to revoke then delete.
    """
    be = box.backend()
    for cid in CLUSTERS:
        box.cluster(cid, env="prod")
        src = moto_ext.add_automated_snapshot(be, cid, create_time=NOW - timedelta(days=2))
        owned_copy(box, cid, src.snapshot_identifier, 2)
    for cid in CLUSTERS[:3]:
        moto_ext.add_automated_snapshot(be, cid, create_time=NOW - timedelta(days=1))
    for cid in CLUSTERS[3:5]:
        owned_copy(box, cid, f"rs:{cid}-old-3", 3)
        owned_copy(box, cid, f"rs:{cid}-old-4", 4)
        owned_copy(box, cid, f"rs:{cid}-old-60", 60)
    box.manual("someone-elses", CLUSTERS[5], 400)
    return len(be.snapshots)


@pytest.fixture
def sts_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """sts:GetCallerIdentity calls that reach moto's server (it runs in this process)."""
    from moto.sts.responses import TokenResponse

    calls: list[str] = []
    original = TokenResponse.get_caller_identity

    def counting(self: Any) -> Any:
        calls.append("GetCallerIdentity")
        return original(self)

    monkeypatch.setattr(TokenResponse, "get_caller_identity", counting)
    yield calls


def floor(snapshots: int, clusters: int) -> dict[str, int]:
    return {
        "DescribeClusterSnapshots": math.ceil(snapshots / 100),
        "DescribeClusters": math.ceil(clusters / 100),
    }


def last_run_calls(box: Sandbox) -> dict[str, int]:
    r = box.cli("status", "--format", "json")
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout)["runs"][0]["api_calls"])


def test_plan_and_run_make_exactly_the_floor_of_calls(sandbox: Sandbox, sts_calls: list[str]):
    snapshots = seed(sandbox)
    assert snapshots == 250
    moto_ext.reset_call_counts()

    r = sandbox.cli("plan", "--format", "json")
    assert r.returncode == 0, r.stderr
    kinds = sorted(a["action"] for a in json.loads(r.stdout)["actions"])
    assert kinds == ["copy"] * 3 + ["delete"] * 2 + ["revoke"] * 4
    assert moto_ext.call_counts() == floor(250, 120)  # {"...Snapshots": 3, "...Clusters": 2}

    moto_ext.reset_call_counts()
    r = sandbox.cli("run")
    assert r.returncode == 0, r.stdout + r.stderr
    mutations = {
        "CopyClusterSnapshot": 3,
        "CreateTags": 3,  # the ownership tags after each copy
        "RevokeSnapshotAccess": 4,
        "DeleteClusterSnapshot": 2,
    }
    server = moto_ext.call_counts()
    expected = floor(250, 120) | mutations
    # On the wire the safety re-reads are DescribeClusterSnapshots too: one per delete.
    expected["DescribeClusterSnapshots"] += 2
    assert server == expected
    # The worker counts them apart, in the state DB, and `status` shows them by operation.
    assert last_run_calls(sandbox) == floor(250, 120) | mutations | {
        "DescribeClusterSnapshots (by id)": 2
    }
    table = sandbox.cli("status").stdout
    assert "DescribeClusterSnapshots (by id) 2" in table
    assert "DescribeClusters 2" in table

    # Next run: the 3 copies (now listed, 251 snapshots) are shared with both accounts.
    moto_ext.reset_call_counts()
    r = sandbox.cli("run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert moto_ext.call_counts() == floor(251, 120) | {"AuthorizeSnapshotAccess": 6}
    # One GetCallerIdentity per command (plan, run, run), outside the Redshift floor.
    assert sts_calls == ["GetCallerIdentity"] * 3
