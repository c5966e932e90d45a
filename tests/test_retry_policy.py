"""The gateway's retry policy in isolation, then a permanent error end to end.

In-process, with ``botocore.stub.Stubber`` (which answers at ``before-call``, so botocore's
own retry layer never runs and each stubbed answer is one tenacity attempt): transient
codes are retried up to ``retry.attempts`` with the injected sleep (never a real one); the
Redshift "busy" faults of create and copy are retried; permanent errors are raised at once
as :class:`AwsError` carrying AWS's code, message and the snapshot id.

End to end (subprocess ``snapworker run`` against moto's server): a permanent fault aimed at
one cluster's action is reported with the AWS message and the snapshot id in the run's
output and in ``status``; the other cluster's work completes; the exit code is 1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from snapworker.adapters.aws.redshift import AwsError, CallStats, RedshiftGateway
from snapworker.config import RetryConfig
from snapworker.core import ids
from snapworker.sandbox import moto_ext
from tests.e2e_support import CONFIG, Sandbox

SNAP = "sw-prod-nightly-prod-a-20261128-0300-0123abcd"
CLUSTER = "prod-a"
ATTEMPTS = 4


def _gateway(attempts: int = ATTEMPTS) -> tuple[RedshiftGateway, Stubber, list[float]]:
    client = boto3.client(
        "redshift",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    slept: list[float] = []
    retry = RetryConfig(attempts=attempts, wait_initial_seconds=0.5, wait_max_seconds=4.0)
    gw = RedshiftGateway(client, retry, CallStats(), sleep=slept.append)
    return gw, Stubber(client), slept


def _snapshot(sid: str = SNAP) -> dict[str, Any]:
    return {
        "SnapshotIdentifier": sid,
        "ClusterIdentifier": CLUSTER,
        "SnapshotType": "manual",
        "Status": "creating",
    }


# operation -> (gateway call, stubbed success response, expected params)
def _create(gw: RedshiftGateway) -> Any:
    return gw.create_snapshot(SNAP, CLUSTER, {"snapworker:policy": "prod-nightly"})


def _copy(gw: RedshiftGateway) -> Any:
    return gw.copy_snapshot("rs:prod-a-2026-11-27-03-00", CLUSTER, SNAP)


def _share(gw: RedshiftGateway) -> Any:
    return gw.authorize(SNAP, CLUSTER, "111122223333")


def _revoke(gw: RedshiftGateway) -> Any:
    return gw.revoke(SNAP, CLUSTER, "amazon-redshift-support")


def _delete(gw: RedshiftGateway) -> Any:
    return gw.delete_snapshot(SNAP, CLUSTER)


OPERATIONS = {
    "create_cluster_snapshot": (_create, {"Snapshot": _snapshot()}),
    "copy_cluster_snapshot": (_copy, {"Snapshot": _snapshot()}),
    "authorize_snapshot_access": (_share, {"Snapshot": _snapshot()}),
    "revoke_snapshot_access": (_revoke, {"Snapshot": _snapshot()}),
    "delete_cluster_snapshot": (_delete, {"Snapshot": _snapshot()}),
}

TRANSIENT = [
    ("Throttling", 400),
    ("ThrottlingException", 400),
    ("RequestLimitExceeded", 400),
    ("InternalFailure", 500),
    ("ServiceUnavailable", 503),
    ("SomethingNew", 502),  # any 5xx, whatever its code
]
PERMANENT = [
    ("AccessDenied", 403),
    ("AccessDeniedException", 400),
    ("InvalidParameterValue", 400),
    ("ClusterSnapshotQuotaExceeded", 400),
    ("UnauthorizedOperation", 400),
]


@pytest.mark.parametrize("method", sorted(OPERATIONS))
@pytest.mark.parametrize(("code", "status"), TRANSIENT)
def test_transient_errors_retried_then_succeed(method: str, code: str, status: int) -> None:
    gw, stub, slept = _gateway()
    call, ok = OPERATIONS[method]
    for _ in range(ATTEMPTS - 1):
        stub.add_client_error(method, code, "try again", http_status_code=status)
    stub.add_response(method, ok)
    with stub:
        call(gw)
    stub.assert_no_pending_responses()
    # the injected sleep ran between attempts, with the configured waits (never for real)
    assert len(slept) == ATTEMPTS - 1
    assert all(0.5 <= s <= 4.0 + 0.5 for s in slept), slept
    assert gw.stats.retries[_op_name(method)] == ATTEMPTS - 1


@pytest.mark.parametrize(("code", "status"), TRANSIENT)
def test_transient_errors_stop_after_the_configured_attempts(code: str, status: int) -> None:
    gw, stub, slept = _gateway()
    for _ in range(ATTEMPTS):
        stub.add_client_error("delete_cluster_snapshot", code, "still failing", status)
    with stub, pytest.raises(AwsError) as info:
        _delete(gw)
    stub.assert_no_pending_responses()  # exactly ATTEMPTS calls, no more
    assert info.value.code == code and info.value.transient
    assert info.value.snapshot == SNAP
    assert len(slept) == ATTEMPTS - 1


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("create_cluster_snapshot", "InvalidClusterState"),
        ("copy_cluster_snapshot", "InvalidClusterSnapshotState"),
    ],
)
def test_busy_faults_are_retried(method: str, code: str) -> None:
    gw, stub, slept = _gateway()
    call, ok = OPERATIONS[method]
    stub.add_client_error(method, code, "busy", 400)
    stub.add_client_error(method, code, "busy", 400)
    stub.add_response(method, ok)
    with stub:
        snap = call(gw)
    assert snap.id == SNAP
    assert len(slept) == 2


def test_a_state_fault_on_delete_is_not_retried() -> None:
    # InvalidClusterSnapshotState on delete means "shared" or "not deletable": retrying
    # cannot help, and it must surface at once.
    gw, stub, slept = _gateway()
    stub.add_client_error(
        "delete_cluster_snapshot", "InvalidClusterSnapshotState", "still authorized", 400
    )
    with stub, pytest.raises(AwsError) as info:
        _delete(gw)
    assert info.value.code == "InvalidClusterSnapshotState" and not info.value.transient
    assert slept == []


@pytest.mark.parametrize("method", sorted(OPERATIONS))
@pytest.mark.parametrize(("code", "status"), PERMANENT)
def test_permanent_errors_raised_at_once_with_code_message_and_snapshot(
    method: str, code: str, status: int
) -> None:
    gw, stub, slept = _gateway()
    call, _ = OPERATIONS[method]
    message = f"{code} says no to {SNAP}, for real"
    stub.add_client_error(method, code, message, http_status_code=status)
    with stub, pytest.raises(AwsError) as info:
        call(gw)
    stub.assert_no_pending_responses()  # one call: not retried
    err = info.value
    assert (err.code, err.message, err.snapshot) == (code, message, SNAP)
    assert not err.transient
    assert code in str(err) and message in str(err) and SNAP in str(err)
    assert slept == []
    assert gw.stats.retries[_op_name(method)] == 0


@pytest.mark.parametrize(
    "exc",
    [
        ReadTimeoutError(endpoint_url="https://redshift.us-east-1.amazonaws.com/"),
        ConnectionClosedError(endpoint_url="https://redshift.us-east-1.amazonaws.com/"),
        EndpointConnectionError(endpoint_url="https://redshift.us-east-1.amazonaws.com/"),
    ],
    ids=["read-timeout", "connection-closed", "endpoint-unreachable"],
)
def test_network_errors_are_transient_and_retried(exc: Exception) -> None:
    gw, _, slept = _gateway()
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < ATTEMPTS:
            raise exc
        return "done"

    assert gw._call("DeleteClusterSnapshot", SNAP, flaky) == "done"
    assert len(calls) == ATTEMPTS and len(slept) == ATTEMPTS - 1

    calls.clear()

    def dead() -> str:
        calls.append(1)
        raise exc

    with pytest.raises(AwsError) as info:
        gw._call("DeleteClusterSnapshot", SNAP, dead)
    assert len(calls) == ATTEMPTS
    assert info.value.transient and info.value.snapshot == SNAP


def _op_name(method: str) -> str:
    return "".join(part.title() for part in method.split("_"))


# --------------------------------------------- a copy whose answer was lost, then retried


def _existing(**over: Any) -> dict[str, Any]:
    snap = {
        "SnapshotIdentifier": SNAP,
        "ClusterIdentifier": CLUSTER,
        "SnapshotType": "manual",
        "Status": "available",
        "SnapshotCreateTime": datetime.now(UTC),
    }
    snap.update(over)
    return {"Snapshots": [snap]}


def test_copy_retried_after_a_lost_answer_takes_the_copy_it_made() -> None:
    gw, stub, _ = _gateway()
    stub.add_client_error("copy_cluster_snapshot", "InternalFailure", "oops", 500)
    stub.add_client_error(
        "copy_cluster_snapshot", "ClusterSnapshotAlreadyExists", "already exists", 400
    )
    stub.add_response("describe_cluster_snapshots", _existing())
    with stub:
        snap = _copy(gw)
    stub.assert_no_pending_responses()
    assert snap.id == SNAP and snap.type == "manual"


@pytest.mark.parametrize(
    ("first_error", "existing"),
    [
        # no earlier attempt could have made it: the id was taken before we asked
        (None, _existing()),
        # an earlier attempt failed, but what is there is not a fresh untagged copy of ours
        (500, _existing(Tags=[{"Key": "owner", "Value": "dba"}])),
        (500, _existing(ClusterIdentifier="prod-b")),
        (500, _existing(SnapshotType="automated")),
        (500, _existing(SnapshotCreateTime=datetime(2020, 1, 1, tzinfo=UTC))),
    ],
    ids=["first-attempt", "tagged", "other-cluster", "automated", "old"],
)
def test_copy_refuses_an_id_taken_by_something_else(
    first_error: int | None, existing: dict[str, Any]
) -> None:
    gw, stub, _ = _gateway()
    if first_error:
        stub.add_client_error("copy_cluster_snapshot", "InternalFailure", "oops", first_error)
    stub.add_client_error(
        "copy_cluster_snapshot", "ClusterSnapshotAlreadyExists", "already exists", 400
    )
    if first_error:
        stub.add_response("describe_cluster_snapshots", existing)
    with stub, pytest.raises(AwsError) as info:
        _copy(gw)
    assert info.value.code == "ClusterSnapshotAlreadyExists"


# ------------------------------------------------------------------------------- end to end

# botocore makes one attempt per call, so the counts below are tenacity's alone.
ONE_ATTEMPT = CONFIG.replace("retry:\n", "  max_attempts: 1\nretry:\n")


@pytest.mark.e2e
def test_permanent_error_reported_and_the_other_cluster_completes(sandbox: Sandbox) -> None:
    box = sandbox
    box.write_config(ONE_ATTEMPT)
    box.cluster("prod-a", env="prod")
    box.cluster("prod-b", env="prod")
    source_a = box.automated("prod-a", 1)
    source_b = box.automated("prod-b", 1)
    target_a = ids.copy_snapshot_id("prod-nightly", "prod-a", source_a)
    target_b = ids.copy_snapshot_id("prod-nightly", "prod-b", source_b)
    message = "Your account is not authorized to perform the requested operation."
    moto_ext.set_fault_plan(
        moto_ext.FaultPlan(
            rate=1.0,
            kinds=("unauthorized",),
            operations=frozenset({"CopyClusterSnapshot"}),
            snapshots=frozenset({target_a}),
        )
    )
    try:
        r = box.cli("run")
    finally:
        report = moto_ext.fault_report()
        moto_ext.clear_faults()
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "Traceback" not in out
    failed = [line for line in r.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 1, r.stdout
    assert target_a in failed[0] and "UnauthorizedOperation" in failed[0]
    assert message in failed[0]
    assert "1 succeeded, 1 failed" in r.stdout
    # not retried: one CopyClusterSnapshot call for the refused snapshot
    requests = {(op, target): n for op, target, n in report["requests"]}
    assert requests[("CopyClusterSnapshot", target_a)] == 1
    assert report["injected"] == {"unauthorized": 1}
    # the other cluster's copy was made and tagged
    snaps = box.snapshots()
    assert target_a not in snaps
    assert snaps[target_b]["tags"]["snapworker:policy"] == "prod-nightly"

    status = box.cli("status", "--format", "json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    failures = [f for run in data["runs"] for f in run["failures"]]
    assert any(
        f["snapshot"] == target_a
        and "UnauthorizedOperation" in f["error"]
        and message in f["error"]
        for f in failures
    ), failures
    table = box.cli("status")
    assert target_a in table.stdout and "UnauthorizedOperation" in table.stdout
