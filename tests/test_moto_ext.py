"""The moto extension and the sandbox, as a boto3 client observes them."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.server import ThreadedMotoServer

from snapworker.sandbox import moto_ext
from snapworker.sandbox.server import (
    AUTOMATED_AGES_DAYS,
    DEMO_CLUSTERS,
    UNOWNED_SNAPSHOTS,
    embedded,
    seed_demo,
    serve,
)

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
ACCOUNT_A = "111122223333"
SUPPORT = "amazon-redshift-support"


def _client(endpoint_url: str | None = None) -> Any:
    return boto3.client(
        "redshift",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _create_cluster(client: Any, cluster_id: str, tags: dict[str, str] | None = None) -> None:
    client.create_cluster(
        ClusterIdentifier=cluster_id,
        NodeType="ra3.xlplus",
        ClusterType="single-node",
        MasterUsername="admin",
        MasterUserPassword="Passw0rd-test",
        Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    )


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def _describe_one(client: Any, snapshot_id: str) -> dict[str, Any]:
    snaps = client.describe_cluster_snapshots(SnapshotIdentifier=snapshot_id)["Snapshots"]
    assert len(snaps) == 1
    return dict(snaps[0])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """mock_aws with the extension, one cluster ``c1`` and one back-dated automated snapshot."""
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv(moto_ext.ENV_CREATING_POLLS, raising=False)
    with mock_aws():
        moto_ext.install()
        moto_ext.set_creating_polls(0)
        client = _client()
        _create_cluster(client, "c1", {"env": "prod"})
        be = moto_ext.backend()
        for snap in list(be.snapshots.values()):  # moto's CreateCluster snapshot, dated now
            moto_ext.drop_snapshot(be, snap.snapshot_identifier)
        moto_ext.add_automated_snapshot(be, "c1", create_time=NOW - timedelta(days=3))
        moto_ext.reset_call_counts()
        yield client
    moto_ext.set_creating_polls(0)


AUTO_ID = moto_ext.automated_snapshot_id("c1", NOW - timedelta(days=3))


# --- install ---------------------------------------------------------------------------------


def test_import_does_not_install_and_install_is_idempotent() -> None:
    code = (
        "import snapworker.sandbox.moto_ext as m\n"
        "from moto.redshift.responses import RedshiftResponse as R\n"
        "assert not hasattr(R, 'copy_cluster_snapshot') and not m.is_installed()\n"
        "m.install(); m.install()\n"
        "assert R.copy_cluster_snapshot and m.is_installed()\n"
        "m.uninstall()\n"
        "assert not hasattr(R, 'copy_cluster_snapshot')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_the_package_keeps_every_public_name() -> None:
    """moto_ext became a package of small modules: what tests and the sandbox import from it
    is still there, and nothing public is missing from ``__all__``."""
    assert all(hasattr(moto_ext, name) for name in moto_ext.__all__)
    assert {"install", "uninstall", "backend", "FaultPlan", "admin_middleware"} <= set(
        moto_ext.__all__
    )


def test_install_reads_creating_polls_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(moto_ext.ENV_CREATING_POLLS, "3")
    try:
        moto_ext.install()
        assert moto_ext.get_creating_polls() == 3
        monkeypatch.setenv(moto_ext.ENV_CREATING_POLLS, "x")
        with pytest.raises(ValueError):
            moto_ext.install()
    finally:
        moto_ext.set_creating_polls(0)


def test_helpers_backdate_and_name_automated_snapshots(aws: Any) -> None:
    snap = _describe_one(aws, AUTO_ID)
    assert AUTO_ID == "rs:c1-2026-11-24-03-00"
    assert snap["SnapshotType"] == "automated"
    assert snap["SnapshotCreateTime"] == NOW - timedelta(days=3)
    assert snap["SnapshotCreateTime"].utcoffset() == timedelta(0)
    assert snap["OwnerAccount"] == moto_ext.DEFAULT_ACCOUNT
    assert "AccountsWithRestoreAccess" not in snap


# --- CopyClusterSnapshot ---------------------------------------------------------------------


def test_copy_makes_untagged_manual_snapshot_with_its_own_time(aws: Any) -> None:
    before = datetime.now(UTC)
    out = aws.copy_cluster_snapshot(
        SourceSnapshotIdentifier=AUTO_ID,
        SourceSnapshotClusterIdentifier="c1",
        TargetSnapshotIdentifier="copy-1",
    )["Snapshot"]
    after = datetime.now(UTC)
    assert out["SnapshotIdentifier"] == "copy-1"
    assert out["Status"] == "available"
    copy = _describe_one(aws, "copy-1")
    assert copy["SnapshotType"] == "manual"
    assert copy["ClusterIdentifier"] == "c1"
    assert copy["Tags"] == []
    assert copy["ManualSnapshotRetentionPeriod"] == -1
    assert before - timedelta(seconds=1) <= copy["SnapshotCreateTime"] <= after
    assert copy["SnapshotCreateTime"] > NOW - timedelta(days=3)
    assert _describe_one(aws, AUTO_ID)["SnapshotType"] == "automated"  # source untouched


def test_copy_errors(aws: Any) -> None:
    be = moto_ext.backend()
    moto_ext.add_manual_snapshot(be, "c1", "manual-1")
    with pytest.raises(aws.exceptions.ClusterSnapshotNotFoundFault) as nf:
        aws.copy_cluster_snapshot(SourceSnapshotIdentifier="rs:nope", TargetSnapshotIdentifier="t")
    assert (_code(nf), _status(nf)) == ("ClusterSnapshotNotFound", 404)
    with pytest.raises(aws.exceptions.ClusterSnapshotNotFoundFault):
        aws.copy_cluster_snapshot(
            SourceSnapshotIdentifier=AUTO_ID,
            SourceSnapshotClusterIdentifier="other",
            TargetSnapshotIdentifier="t",
        )
    with pytest.raises(aws.exceptions.InvalidClusterSnapshotStateFault) as manual:
        aws.copy_cluster_snapshot(SourceSnapshotIdentifier="manual-1", TargetSnapshotIdentifier="t")
    assert _code(manual) == "InvalidClusterSnapshotState"
    creating = moto_ext.add_automated_snapshot(
        be, "c1", create_time=NOW - timedelta(hours=1), status="creating"
    )
    with pytest.raises(aws.exceptions.InvalidClusterSnapshotStateFault):
        aws.copy_cluster_snapshot(
            SourceSnapshotIdentifier=creating.snapshot_identifier, TargetSnapshotIdentifier="t"
        )
    with pytest.raises(aws.exceptions.ClusterSnapshotAlreadyExistsFault) as dup:
        aws.copy_cluster_snapshot(
            SourceSnapshotIdentifier=AUTO_ID, TargetSnapshotIdentifier="manual-1"
        )
    assert _code(dup) == "ClusterSnapshotAlreadyExists"
    for bad in ("1abc", "a--b", "a-", "a:b", "x" * 256):
        with pytest.raises(ClientError) as inv:
            aws.copy_cluster_snapshot(
                SourceSnapshotIdentifier=AUTO_ID, TargetSnapshotIdentifier=bad
            )
        assert _code(inv) == "InvalidParameterValue", bad
    with pytest.raises(aws.exceptions.InvalidRetentionPeriodFault):
        aws.copy_cluster_snapshot(
            SourceSnapshotIdentifier=AUTO_ID,
            TargetSnapshotIdentifier="t",
            ManualSnapshotRetentionPeriod=0,
        )
    assert "t" not in be.snapshots


# --- Authorize / Revoke ----------------------------------------------------------------------


def test_authorize_returns_account_id_and_alias(aws: Any) -> None:
    moto_ext.add_manual_snapshot(moto_ext.backend(), "c1", "m1")
    out = aws.authorize_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=ACCOUNT_A)
    assert out["Snapshot"]["AccountsWithRestoreAccess"] == [{"AccountId": ACCOUNT_A}]
    arn = _describe_one(aws, "m1")["SnapshotArn"]
    aws.authorize_snapshot_access(SnapshotArn=arn, AccountWithRestoreAccess=SUPPORT)
    assert _describe_one(aws, "m1")["AccountsWithRestoreAccess"] == [
        {"AccountId": ACCOUNT_A},
        {"AccountAlias": SUPPORT},
    ]
    assert moto_ext.authorized_accounts(moto_ext.backend(), "m1") == [ACCOUNT_A, SUPPORT]


def test_authorize_errors(aws: Any) -> None:
    be = moto_ext.backend()
    moto_ext.add_manual_snapshot(be, "c1", "m1", accounts=[ACCOUNT_A])
    with pytest.raises(aws.exceptions.AuthorizationAlreadyExistsFault) as dup:
        aws.authorize_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=ACCOUNT_A)
    assert _code(dup) == "AuthorizationAlreadyExists"
    with pytest.raises(aws.exceptions.ClusterSnapshotNotFoundFault) as nf:
        aws.authorize_snapshot_access(SnapshotIdentifier="nope", AccountWithRestoreAccess=ACCOUNT_A)
    assert _code(nf) == "ClusterSnapshotNotFound"
    with pytest.raises(aws.exceptions.ClusterSnapshotNotFoundFault):
        aws.authorize_snapshot_access(
            SnapshotIdentifier="m1",
            SnapshotClusterIdentifier="c2",
            AccountWithRestoreAccess=SUPPORT,
        )
    moto_ext.add_manual_snapshot(be, "c1", "m-creating", status="creating")
    with pytest.raises(aws.exceptions.InvalidClusterSnapshotStateFault) as state:
        aws.authorize_snapshot_access(
            SnapshotIdentifier="m-creating", AccountWithRestoreAccess=ACCOUNT_A
        )
    assert _code(state) == "InvalidClusterSnapshotState"
    with pytest.raises(aws.exceptions.UnsupportedOperationFault):
        aws.authorize_snapshot_access(
            SnapshotIdentifier=AUTO_ID, AccountWithRestoreAccess=ACCOUNT_A
        )
    for bad in ("12345", "someone", moto_ext.DEFAULT_ACCOUNT):
        with pytest.raises(ClientError) as inv:
            aws.authorize_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=bad)
        assert _code(inv) == "InvalidParameterValue"


def test_authorize_quota_is_20_accounts(aws: Any) -> None:
    moto_ext.add_manual_snapshot(moto_ext.backend(), "c1", "m1")
    accounts = [f"{100000000000 + i}" for i in range(19)] + [SUPPORT]
    for account in accounts:
        aws.authorize_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=account)
    with pytest.raises(aws.exceptions.AuthorizationQuotaExceededFault) as quota:
        aws.authorize_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=ACCOUNT_A)
    assert _code(quota) == "AuthorizationQuotaExceeded"
    assert len(_describe_one(aws, "m1")["AccountsWithRestoreAccess"]) == 20


def test_revoke(aws: Any) -> None:
    moto_ext.add_manual_snapshot(moto_ext.backend(), "c1", "m1", accounts=[ACCOUNT_A, SUPPORT])
    out = aws.revoke_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=SUPPORT)
    assert out["Snapshot"]["AccountsWithRestoreAccess"] == [{"AccountId": ACCOUNT_A}]
    with pytest.raises(aws.exceptions.AuthorizationNotFoundFault) as anf:
        aws.revoke_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=SUPPORT)
    assert (_code(anf), _status(anf)) == ("AuthorizationNotFound", 404)
    with pytest.raises(aws.exceptions.ClusterSnapshotNotFoundFault):
        aws.revoke_snapshot_access(SnapshotIdentifier="nope", AccountWithRestoreAccess=ACCOUNT_A)
    aws.revoke_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=ACCOUNT_A)
    assert "AccountsWithRestoreAccess" not in _describe_one(aws, "m1")


# --- DeleteClusterSnapshot -------------------------------------------------------------------


def test_delete_refused_while_shared_then_allowed(aws: Any) -> None:
    moto_ext.add_manual_snapshot(moto_ext.backend(), "c1", "m1", accounts=[SUPPORT])
    with pytest.raises(aws.exceptions.InvalidClusterSnapshotStateFault) as shared:
        aws.delete_cluster_snapshot(SnapshotIdentifier="m1")
    assert (_code(shared), _status(shared)) == ("InvalidClusterSnapshotState", 400)
    assert _describe_one(aws, "m1")["Status"] == "available"
    aws.revoke_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=SUPPORT)
    out = aws.delete_cluster_snapshot(SnapshotIdentifier="m1", SnapshotClusterIdentifier="c1")
    assert out["Snapshot"]["Status"] == "deleted"
    with pytest.raises(aws.exceptions.ClusterSnapshotNotFoundFault):
        aws.describe_cluster_snapshots(SnapshotIdentifier="m1")


def test_delete_errors(aws: Any) -> None:
    be = moto_ext.backend()
    with pytest.raises(aws.exceptions.InvalidClusterSnapshotStateFault):
        aws.delete_cluster_snapshot(SnapshotIdentifier=AUTO_ID)
    with pytest.raises(aws.exceptions.ClusterSnapshotNotFoundFault) as nf:
        aws.delete_cluster_snapshot(SnapshotIdentifier="nope")
    assert _status(nf) == 404
    moto_ext.add_manual_snapshot(be, "c1", "m-creating", status="creating")
    with pytest.raises(aws.exceptions.InvalidClusterSnapshotStateFault):
        aws.delete_cluster_snapshot(SnapshotIdentifier="m-creating")
    moto_ext.add_manual_snapshot(be, "c1", "m-failed", status="failed")
    aws.delete_cluster_snapshot(SnapshotIdentifier="m-failed")  # documented as deletable
    assert AUTO_ID in be.snapshots


# --- DescribeClusterSnapshots ----------------------------------------------------------------


def test_paging_returns_every_snapshot_once(aws: Any) -> None:
    be = moto_ext.backend()
    for i in range(44):  # plus the fixture's automated snapshot: 45
        moto_ext.add_manual_snapshot(be, "c1", f"m-{i:02d}", create_time=NOW - timedelta(hours=i))
    seen: list[str] = []
    markers = []
    kwargs: dict[str, Any] = {"MaxRecords": 20}
    while True:
        page = aws.describe_cluster_snapshots(**kwargs)
        seen += [s["SnapshotIdentifier"] for s in page["Snapshots"]]
        markers.append(page.get("Marker"))
        if not page.get("Marker"):
            break
        kwargs["Marker"] = page["Marker"]
    assert [len(x) for x in (seen,)] == [45]
    assert len(set(seen)) == 45
    assert markers[:-1] and all(markers[:-1]) and markers[-1] is None
    assert len(markers) == 3
    # oldest first, so the order is stable
    times = [_describe_one(aws, sid)["SnapshotCreateTime"] for sid in seen]
    assert times == sorted(times)
    # boto3's paginator agrees
    paginator = aws.get_paginator("describe_cluster_snapshots")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 20}))
    assert [len(p["Snapshots"]) for p in pages] == [20, 20, 5]
    assert [s["SnapshotIdentifier"] for p in pages for s in p["Snapshots"]] == seen
    # default page size is 100
    assert "Marker" not in aws.describe_cluster_snapshots()


def test_paging_parameter_errors(aws: Any) -> None:
    for bad in (19, 101):
        with pytest.raises(ClientError) as exc:
            aws.describe_cluster_snapshots(MaxRecords=bad)
        assert _code(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as marker:
        aws.describe_cluster_snapshots(Marker="not-a-marker")
    assert _code(marker) == "InvalidParameterValue"


def test_describe_filters(aws: Any) -> None:
    be = moto_ext.backend()
    _create_cluster(aws, "c2")
    for snap in list(be.snapshots.values()):
        if snap.cluster_identifier == "c2":
            moto_ext.drop_snapshot(be, snap.snapshot_identifier)
    moto_ext.add_manual_snapshot(
        be, "c1", "m-owner", create_time=NOW - timedelta(days=1), tags={"owner": "me"}
    )
    moto_ext.add_manual_snapshot(
        be, "c2", "m-env", create_time=NOW - timedelta(days=2), tags={"env": "test"}
    )
    moto_ext.add_manual_snapshot(
        be, "c2", "m-both", create_time=NOW - timedelta(days=5), tags={"owner": "test"}
    )

    def ids(**kw: Any) -> list[str]:
        return [s["SnapshotIdentifier"] for s in aws.describe_cluster_snapshots(**kw)["Snapshots"]]

    assert ids(SnapshotType="automated") == [AUTO_ID]
    assert ids(SnapshotType="manual") == ["m-both", "m-env", "m-owner"]
    assert ids(ClusterIdentifier="c2") == ["m-both", "m-env"]
    assert ids(ClusterIdentifier="c1", SnapshotType="manual") == ["m-owner"]
    assert ids(ClusterIdentifier="no-such-cluster") == []
    assert ids(SnapshotIdentifier="m-env") == ["m-env"]
    with pytest.raises(aws.exceptions.ClusterSnapshotNotFoundFault):
        aws.describe_cluster_snapshots(SnapshotIdentifier="no-such-snapshot")
    # tags: any of the keys, any of the values, any (key, value) combination of both
    assert ids(TagKeys=["owner"]) == ["m-both", "m-owner"]
    assert ids(TagKeys=["owner", "env"]) == ["m-both", "m-env", "m-owner"]
    assert ids(TagValues=["test"]) == ["m-both", "m-env"]
    assert ids(TagKeys=["owner"], TagValues=["test"]) == ["m-both"]
    assert ids(TagKeys=["owner", "env"], TagValues=["me", "test"]) == ["m-both", "m-env", "m-owner"]
    assert ids(TagKeys=["nobody"]) == []
    # time window, inclusive
    assert ids(StartTime=NOW - timedelta(days=2), EndTime=NOW) == ["m-env", "m-owner"]
    assert ids(EndTime=NOW - timedelta(days=3)) == ["m-both", AUTO_ID]
    assert ids(OwnerAccount="999999999999") == []
    assert len(ids(OwnerAccount=moto_ext.DEFAULT_ACCOUNT)) == 4


def test_describe_times_are_utc_on_the_wire(aws: Any) -> None:
    raw: list[bytes] = []
    aws.meta.events.register(
        "after-call.redshift.DescribeClusterSnapshots",
        lambda http_response, **_: raw.append(http_response.content),
    )
    snap = _describe_one(aws, AUTO_ID)
    assert b"<SnapshotCreateTime>2026-11-24T03:00:00Z</SnapshotCreateTime>" in raw[0]
    assert snap["SnapshotCreateTime"].astimezone(UTC) == NOW - timedelta(days=3)


def test_describe_clusters_returns_tags(aws: Any) -> None:
    cluster = aws.describe_clusters(ClusterIdentifier="c1")["Clusters"][0]
    assert cluster["Tags"] == [{"Key": "env", "Value": "prod"}]


def test_delete_cluster_keeps_other_clusters_automated_snapshots(aws: Any) -> None:
    _create_cluster(aws, "c2")
    be = moto_ext.backend()
    for snap in list(be.snapshots.values()):
        if snap.cluster_identifier == "c2":
            moto_ext.drop_snapshot(be, snap.snapshot_identifier)
    aws.delete_cluster(ClusterIdentifier="c2", SkipFinalClusterSnapshot=True)
    assert AUTO_ID in be.snapshots


# --- CreateClusterSnapshot, creating state ---------------------------------------------------


def test_create_snapshot_keeps_tags_and_refuses_unavailable_cluster(aws: Any) -> None:
    out = aws.create_cluster_snapshot(
        ClusterIdentifier="c1", SnapshotIdentifier="m1", Tags=[{"Key": "k", "Value": "v"}]
    )["Snapshot"]
    assert out["Tags"] == [{"Key": "k", "Value": "v"}]
    with pytest.raises(aws.exceptions.ClusterSnapshotAlreadyExistsFault):
        aws.create_cluster_snapshot(ClusterIdentifier="c1", SnapshotIdentifier="m1")
    with pytest.raises(aws.exceptions.ClusterNotFoundFault):
        aws.create_cluster_snapshot(ClusterIdentifier="nope", SnapshotIdentifier="m2")
    moto_ext.set_cluster_status(moto_ext.backend(), "c1", "paused")
    with pytest.raises(aws.exceptions.InvalidClusterStateFault) as exc:
        aws.create_cluster_snapshot(ClusterIdentifier="c1", SnapshotIdentifier="m2")
    assert _code(exc) == "InvalidClusterState"


def test_creating_turns_available_after_n_describes(aws: Any) -> None:
    moto_ext.set_creating_polls(2)
    made = aws.create_cluster_snapshot(ClusterIdentifier="c1", SnapshotIdentifier="m1")
    assert made["Snapshot"]["Status"] == "creating"
    copied = aws.copy_cluster_snapshot(
        SourceSnapshotIdentifier=AUTO_ID, TargetSnapshotIdentifier="c"
    )
    assert copied["Snapshot"]["Status"] == "creating"
    with pytest.raises(aws.exceptions.InvalidClusterSnapshotStateFault):
        aws.authorize_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=ACCOUNT_A)
    with pytest.raises(aws.exceptions.InvalidClusterSnapshotStateFault):
        aws.delete_cluster_snapshot(SnapshotIdentifier="m1")
    assert _describe_one(aws, "m1")["Status"] == "creating"
    # a describe that does not return "c" does not count for it
    assert _describe_one(aws, "m1")["Status"] == "creating"
    assert _describe_one(aws, "m1")["Status"] == "available"
    statuses = {
        s["SnapshotIdentifier"]: s["Status"]
        for s in aws.describe_cluster_snapshots(SnapshotType="manual")["Snapshots"]
    }
    assert statuses == {"m1": "available", "c": "creating"}
    assert _describe_one(aws, "c")["Status"] == "creating"
    assert _describe_one(aws, "c")["Status"] == "available"
    aws.authorize_snapshot_access(SnapshotIdentifier="m1", AccountWithRestoreAccess=ACCOUNT_A)


def test_settle_all(aws: Any) -> None:
    moto_ext.set_creating_polls(5)
    aws.create_cluster_snapshot(ClusterIdentifier="c1", SnapshotIdentifier="m1")
    moto_ext.settle_all()
    assert _describe_one(aws, "m1")["Status"] == "available"


def test_restore_refused_until_available(aws: Any) -> None:
    moto_ext.set_creating_polls(1)
    aws.create_cluster_snapshot(ClusterIdentifier="c1", SnapshotIdentifier="m1")
    with pytest.raises(aws.exceptions.InvalidClusterSnapshotStateFault):
        aws.restore_from_cluster_snapshot(ClusterIdentifier="r1", SnapshotIdentifier="m1")
    moto_ext.settle_all()
    out = aws.restore_from_cluster_snapshot(ClusterIdentifier="r1", SnapshotIdentifier="m1")
    assert out["Cluster"]["ClusterIdentifier"] == "r1"


# --- call counting ---------------------------------------------------------------------------


def test_call_counts(aws: Any) -> None:
    assert moto_ext.call_counts() == {}
    aws.describe_cluster_snapshots()
    aws.describe_cluster_snapshots(SnapshotType="manual")
    with pytest.raises(ClientError):
        aws.delete_cluster_snapshot(SnapshotIdentifier="nope")
    aws.describe_clusters()
    assert moto_ext.call_counts() == {
        "DescribeClusterSnapshots": 2,
        "DeleteClusterSnapshot": 1,
        "DescribeClusters": 1,
    }
    moto_ext.reset_call_counts()
    assert moto_ext.call_counts() == {}


# --- server mode -----------------------------------------------------------------------------


def _http(url: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, method=method, data=b"" if method != "GET" else None)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def test_plain_threaded_moto_server_after_install() -> None:
    moto_ext.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
        client = _client(url)
        _create_cluster(client, "s1")
        be = moto_ext.backend()
        for i in range(25):
            moto_ext.add_automated_snapshot(be, "s1", create_time=NOW - timedelta(days=i))
        pages = list(
            client.get_paginator("describe_cluster_snapshots").paginate(
                SnapshotType="automated", PaginationConfig={"PageSize": 20}
            )
        )
        assert [len(p["Snapshots"]) for p in pages] == [20, 6]
        client.copy_cluster_snapshot(
            SourceSnapshotIdentifier=moto_ext.automated_snapshot_id("s1", NOW),
            TargetSnapshotIdentifier="copy-1",
        )
        client.authorize_snapshot_access(
            SnapshotIdentifier="copy-1", AccountWithRestoreAccess=SUPPORT
        )
        snap = client.describe_cluster_snapshots(SnapshotIdentifier="copy-1")["Snapshots"][0]
        assert snap["AccountsWithRestoreAccess"] == [{"AccountAlias": SUPPORT}]
        assert snap["Tags"] == []
        with pytest.raises(client.exceptions.InvalidClusterSnapshotStateFault):
            client.delete_cluster_snapshot(SnapshotIdentifier="copy-1")
        with pytest.raises(client.exceptions.AuthorizationNotFoundFault) as anf:
            client.revoke_snapshot_access(
                SnapshotIdentifier="copy-1", AccountWithRestoreAccess=ACCOUNT_A
            )
        assert (_code(anf), _status(anf)) == ("AuthorizationNotFound", 404)
        with pytest.raises(client.exceptions.ClusterSnapshotNotFoundFault):
            client.copy_cluster_snapshot(SourceSnapshotIdentifier="x", TargetSnapshotIdentifier="y")
    finally:
        server.stop()


def test_serve_seeds_demo_and_answers_admin_endpoints() -> None:
    server, url = serve(seed=False)
    try:
        _http(f"{url}/moto-api/reset", "POST")
        seed_demo(NOW, endpoint_url=url)
        client = _client(url)
        assert _http(f"{url}/_snapworker/calls") == {}
        clusters = client.describe_clusters()["Clusters"]
        assert {c["ClusterIdentifier"] for c in clusters} == set(DEMO_CLUSTERS)
        assert _http(f"{url}/_snapworker/calls") == {"DescribeClusters": 1}
        assert moto_ext.call_counts() == {"DescribeClusters": 1}
        _http(f"{url}/_snapworker/calls", "DELETE")
        assert _http(f"{url}/_snapworker/calls") == {}
        assert _http(f"{url}/_snapworker/creating-polls?n=1", "POST") == {"creating_polls": 1}
        client.create_cluster_snapshot(ClusterIdentifier="prod-a", SnapshotIdentifier="n1")
        _http(f"{url}/_snapworker/settle", "POST")
        snap = client.describe_cluster_snapshots(SnapshotIdentifier="n1")["Snapshots"][0]
        assert snap["Status"] == "available"
    finally:
        moto_ext.set_creating_polls(0)
        server.stop()


def _readline(stream: Any, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "no output from the sandbox in time"
    return str(stream.readline())


def test_sandbox_module_serves_until_sigterm() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    env[moto_ext.ENV_CREATING_POLLS] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapworker.sandbox.server", "serve", "--port", "0", "--seed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        line = _readline(proc.stdout, 60)
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        client = _client(url)
        snaps = client.describe_cluster_snapshots(ClusterIdentifier="prod-a")["Snapshots"]
        assert {s["SnapshotIdentifier"] for s in snaps} >= set(UNOWNED_SNAPSHOTS)
        client.create_cluster_snapshot(ClusterIdentifier="prod-a", SnapshotIdentifier="n1")
        assert (
            client.describe_cluster_snapshots(SnapshotIdentifier="n1")["Snapshots"][0]["Status"]
            == "creating"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- embedded sandbox ------------------------------------------------------------------------


def test_embedded_seeds_demo_and_restores_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "real-looking-key")
    monkeypatch.setenv("AWS_PROFILE", "prod-admin")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with embedded(NOW) as sandbox:
        assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
        assert "AWS_PROFILE" not in os.environ
        assert moto_ext.call_counts() == {}
        client = boto3.client("redshift")  # from the environment alone
        assert sandbox.region == os.environ["AWS_REGION"] == "us-east-1"
        clusters = {
            c["ClusterIdentifier"]: {t["Key"]: t["Value"] for t in c["Tags"]}
            for c in client.describe_clusters()["Clusters"]
        }
        assert clusters == DEMO_CLUSTERS
        snaps = client.describe_cluster_snapshots()["Snapshots"]
        for cluster_id, ages in AUTOMATED_AGES_DAYS.items():
            auto = sorted(
                (NOW - s["SnapshotCreateTime"]).days
                for s in snaps
                if s["ClusterIdentifier"] == cluster_id and s["SnapshotType"] == "automated"
            )
            assert auto == sorted(ages), cluster_id
        manual = {s["SnapshotIdentifier"]: s for s in snaps if s["SnapshotType"] == "manual"}
        assert set(manual) == set(UNOWNED_SNAPSHOTS)
        assert manual["sw-prod-nightly-prod-a-20260101-0300-deadbeef"]["Tags"] == []
        assert all(s["Status"] == "available" for s in snaps)
    assert os.environ["AWS_ACCESS_KEY_ID"] == "real-looking-key"
    assert os.environ["AWS_PROFILE"] == "prod-admin"
    assert "AWS_REGION" not in os.environ
