"""The sandbox across accounts and regions: moto's server serves each (account, region) its
own snapshots, the extension's handlers (copy, share, revoke, delete, describe) act in the
request's account and region (an assumed role's account), the same cluster and snapshot ids
live in every pair independently, fault plans can aim at accounts and regions, STS can refuse
a role, and the server counts requests per (account, region, operation, snapshot)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from snapworker.adapters.aws.client import CallStats
from snapworker.adapters.aws.errors import TargetUnavailable
from snapworker.adapters.aws.sessions import Sessions
from snapworker.config.models import AwsConfig
from snapworker.core.targets import Pair
from snapworker.sandbox import moto_ext
from snapworker.sandbox.server import seed_demo
from tests.e2e_support import reset

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOME = "123456789012"
DR_A = "210987654321"
DR_B = "333333333333"
ROLE_A = f"arn:aws:iam::{DR_A}:role/snapworker"
ROLE_B = f"arn:aws:iam::{DR_B}:role/snapworker"
REGIONS = ("us-east-1", "eu-west-1")
AUTO = moto_ext.automated_snapshot_id("prod-a", NOW - timedelta(days=1))
GRANTEE = "999999999999"


def _admin(url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{url}/_snapworker/{path}", data=data, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture
def fleet(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Sessions]]:
    """The demo estate in HOME and DR_A, in both regions (two of them through the seed
    endpoint); sessions whose ``dr-a`` target assumes ROLE_A."""
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "MOTO_ACCOUNT_ID"):
        monkeypatch.delenv(k, raising=False)
    reset(moto_url)
    seed_demo(NOW, "us-east-1", endpoint_url=moto_url, account_id=HOME)
    seed_demo(NOW, "eu-west-1", endpoint_url=moto_url, account_id=HOME)
    for region in REGIONS:
        got = _admin(
            moto_url, "POST", "seed", {"now": NOW.isoformat(), "account": DR_A, "region": region}
        )
        assert got["account"] == DR_A and got["region"] == region
    moto_ext.reset_call_counts()
    moto_ext.clear_faults()
    yield moto_url, Sessions(AwsConfig(region="us-east-1", endpoint_url=moto_url), CallStats())
    reset(moto_url)


def _pair(account: str, region: str) -> Pair:
    if account == HOME:
        return Pair("home", region, account=HOME)
    return Pair("dr-a", region, account=DR_A, role_arn=ROLE_A)


PAIRS = [(a, r) for a in (HOME, DR_A) for r in REGIONS]


def _ids(client: Any) -> dict[str, list[str]]:
    snaps = client.describe_cluster_snapshots()["Snapshots"]
    return {
        s["SnapshotIdentifier"]: sorted(
            g.get("AccountId") or g.get("AccountAlias", "")
            for g in s.get("AccountsWithRestoreAccess", [])
        )
        for s in snaps
    }


def test_every_pair_has_the_same_ids_and_mutations_stay_in_their_pair(
    fleet: tuple[str, Sessions],
) -> None:
    url, sessions = fleet
    clients = {(a, r): sessions.client(_pair(a, r)) for a, r in PAIRS}
    before = {key: _ids(c) for key, c in clients.items()}
    assert AUTO in before[(HOME, "us-east-1")]
    assert all(ids == before[(HOME, "us-east-1")] for ids in before.values())
    for (account, region), c in clients.items():
        owners = {s["OwnerAccount"] for s in c.describe_cluster_snapshots()["Snapshots"]}
        assert owners == {account}
        assert {cl["ClusterIdentifier"] for cl in c.describe_clusters()["Clusters"]} == {
            "prod-a",
            "prod-b",
            "dev-a",
        }
        assert (
            moto_ext.backend(account, region).snapshots.keys() == before[(HOME, "us-east-1")].keys()
        )

    # In DR_A/eu-west-1: copy, share, delete an unowned one.
    x = clients[(DR_A, "eu-west-1")]
    x.copy_cluster_snapshot(SourceSnapshotIdentifier=AUTO, TargetSnapshotIdentifier="sw-copy")
    x.authorize_snapshot_access(SnapshotIdentifier="sw-copy", AccountWithRestoreAccess=GRANTEE)
    x.delete_cluster_snapshot(SnapshotIdentifier="manual-keep-forever")
    # The same id in HOME/eu-west-1 is another snapshot: copied and shared on its own.
    y = clients[(HOME, "eu-west-1")]
    y.copy_cluster_snapshot(SourceSnapshotIdentifier=AUTO, TargetSnapshotIdentifier="sw-copy")
    y.authorize_snapshot_access(SnapshotIdentifier="sw-copy", AccountWithRestoreAccess=DR_B)

    after = {key: _ids(c) for key, c in clients.items()}
    assert after[(DR_A, "eu-west-1")]["sw-copy"] == [GRANTEE]
    assert "manual-keep-forever" not in after[(DR_A, "eu-west-1")]
    assert after[(HOME, "eu-west-1")]["sw-copy"] == [DR_B]
    assert "manual-keep-forever" in after[(HOME, "eu-west-1")]
    for key in ((HOME, "us-east-1"), (DR_A, "us-east-1")):
        assert after[key] == before[key]  # untouched
        with pytest.raises(ClientError) as exc:
            clients[key].describe_cluster_snapshots(SnapshotIdentifier="sw-copy")
        assert exc.value.response["Error"]["Code"] == "ClusterSnapshotNotFound"

    # Revoke and delete in one pair; the same id elsewhere keeps its grant.
    x.revoke_snapshot_access(SnapshotIdentifier="sw-copy", AccountWithRestoreAccess=GRANTEE)
    x.delete_cluster_snapshot(SnapshotIdentifier="sw-copy")
    assert "sw-copy" not in _ids(x)
    assert _ids(y)["sw-copy"] == [DR_B]
    with pytest.raises(ClientError) as exc:  # y's grant still blocks y's delete
        y.delete_cluster_snapshot(SnapshotIdentifier="sw-copy")
    assert exc.value.response["Error"]["Code"] == "InvalidClusterSnapshotState"

    # The server counted each pair's calls apart.
    by_pair = moto_ext.call_counts_by_pair()
    assert by_pair[(DR_A, "eu-west-1", "CopyClusterSnapshot", "sw-copy")] == 1
    assert by_pair[(HOME, "eu-west-1", "CopyClusterSnapshot", "sw-copy")] == 1
    assert by_pair[(DR_A, "eu-west-1", "AuthorizeSnapshotAccess", f"sw-copy {GRANTEE}")] == 1
    assert by_pair[(HOME, "eu-west-1", "AuthorizeSnapshotAccess", f"sw-copy {DR_B}")] == 1
    assert not any(k[2] == "CopyClusterSnapshot" and k[1] == "us-east-1" for k in by_pair)
    assert moto_ext.call_counts(DR_A, "eu-west-1")["CopyClusterSnapshot"] == 1
    assert moto_ext.call_counts()["CopyClusterSnapshot"] == 2
    over_http = {tuple(row[:4]): row[4] for row in _admin(url, "GET", "calls?by=pair")}
    assert over_http == {k: v for k, v in by_pair.items()}
    assert (
        _admin(url, "GET", f"calls?account={DR_A}&region=eu-west-1")["DeleteClusterSnapshot"] == 2
    )
    report = moto_ext.fault_report()
    copies = [r for r in report["requests_by_pair"] if r[2] == "CopyClusterSnapshot"]
    assert copies == [
        [HOME, "eu-west-1", "CopyClusterSnapshot", "sw-copy", 1],
        [DR_A, "eu-west-1", "CopyClusterSnapshot", "sw-copy", 1],
    ]
    assert moto_ext.requests_by_pair(account=DR_A, operation="CopyClusterSnapshot") == {
        (DR_A, "eu-west-1", "CopyClusterSnapshot", "sw-copy"): 1
    }


def test_fault_plans_aim_at_accounts_and_regions(fleet: tuple[str, Sessions]) -> None:
    url, sessions = fleet
    plan = {"rate": 1.0, "kinds": ["access-denied"], "accounts": [DR_A], "regions": ["eu-west-1"]}
    armed = _admin(url, "POST", "faults", plan)["plan"]
    assert armed["accounts"] == [DR_A] and armed["regions"] == ["eu-west-1"]
    with pytest.raises(ClientError) as exc:
        sessions.client(_pair(DR_A, "eu-west-1")).describe_clusters()
    err = exc.value.response["Error"]
    assert err["Code"] == "AccessDenied"
    assert f"arn:aws:iam::{DR_A}:user/snapworker" in err["Message"]
    for account, region in PAIRS:
        if (account, region) != (DR_A, "eu-west-1"):
            assert sessions.client(_pair(account, region)).describe_clusters()["Clusters"]
    assert moto_ext.fault_report()["injected"] == {"access-denied": 1}


def test_sts_refuses_the_listed_roles(fleet: tuple[str, Sessions]) -> None:
    url, sessions = fleet
    _admin(url, "POST", "faults", {"refuse_assume_role": [ROLE_B]})
    with pytest.raises(TargetUnavailable) as exc:
        sessions.client(Pair("dr-b", "us-east-1", account=DR_B, role_arn=ROLE_B))
    assert str(exc.value) == (
        f"cannot assume role {ROLE_B}: AccessDenied: User: arn:aws:iam::{HOME}:user/snapworker "
        f"is not authorized to perform: sts:AssumeRole on resource: {ROLE_B}"
    )
    # another role is assumed as before, and no Redshift call was made for the refused one
    assert sessions.client(_pair(DR_A, "us-east-1")).describe_clusters()["Clusters"]
    report = moto_ext.fault_report()
    assert report["refused_assume_role"] == {ROLE_B: 1}
    assert not any(row[0] == DR_B for row in report["requests_by_pair"])


def test_fault_plan_json_keeps_the_new_keys() -> None:
    plan = moto_ext.FaultPlan.from_json(
        {"accounts": [DR_A], "regions": ["eu-west-1"], "refuse_assume_role": [ROLE_A]}
    )
    assert plan.accounts == frozenset({DR_A})
    assert moto_ext.FaultPlan.from_json(plan.to_json()) == plan
    with pytest.raises(ValueError, match="unknown fault plan keys"):
        moto_ext.FaultPlan.from_json({"account": [DR_A]})
