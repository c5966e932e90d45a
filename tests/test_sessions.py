"""Credentials per target (``adapters/aws/sessions.py``): the worker's own session, or
botocore's refreshable assumed-role credentials; one client per (target, region, service);
a refused AssumeRole named in one line. Against moto (in-process, and its server), whose STS
maps an assumed role's credentials to the role's account."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.credentials import DeferredRefreshableCredentials, RefreshableCredentials
from freezegun import freeze_time
from moto import mock_aws

from snapworker.adapters.aws.client import CallStats
from snapworker.adapters.aws.errors import TargetUnavailable
from snapworker.adapters.aws.sessions import Sessions, account_of_arn, role_session_name
from snapworker.config.models import AwsConfig
from snapworker.core.targets import Pair
from snapworker.sandbox import moto_ext

HOME = "123456789012"  # moto's default account: the worker's own credentials
DR_A = "210987654321"
DR_B = "333333333333"
ROLE_A = f"arn:aws:iam::{DR_A}:role/snapworker"
ROLE_B = f"arn:aws:iam::{DR_B}:role/snapworker"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "MOTO_ACCOUNT_ID"):
        monkeypatch.delenv(k, raising=False)
    with mock_aws():
        moto_ext.install()
        yield


def _make_cluster(client: Any, cluster_id: str) -> None:
    client.create_cluster(
        ClusterIdentifier=cluster_id,
        NodeType="ra3.xlplus",
        ClusterType="single-node",
        MasterUsername="admin",
        MasterUserPassword="Sandbox-Passw0rd",
    )


def _clusters(client: Any) -> list[str]:
    return sorted(c["ClusterIdentifier"] for c in client.describe_clusters()["Clusters"])


def _assume_role_params(sessions: Sessions) -> list[dict[str, Any]]:
    """The parameters of every AssumeRole the sessions' STS clients send (recorded on the
    base botocore session, whose events every client it makes copies)."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))

    sessions.base_session().events.register("provide-client-params.sts.AssumeRole", record)
    return seen


# -- names ----------------------------------------------------------------------------------


def test_role_session_name_identifies_host_and_pid_within_sts_rules() -> None:
    assert role_session_name("worker-1.example.com", 4242) == "snapworker-worker-1.example.com-4242"
    odd = role_session_name("h\u00f6st name/with:odd#chars", 7)
    assert re.fullmatch(r"[\w+=,.@-]{2,64}", odd, re.ASCII)
    assert odd.startswith("snapworker-h-st-name-with-odd-chars") and odd.endswith("-7")
    long = role_session_name("x" * 200, 123456)
    assert len(long) == 64 and long.endswith("-123456")
    assert role_session_name().startswith("snapworker-")


def test_account_of_arn() -> None:
    assert account_of_arn(ROLE_A) == DR_A
    assert account_of_arn(f"arn:aws-cn:iam::{DR_B}:role/path/r") == DR_B
    with pytest.raises(ValueError):
        account_of_arn("arn:aws:iam::role/x")


# -- moto in-process ------------------------------------------------------------------------


def test_assumed_role_acts_in_the_roles_account(aws: None) -> None:
    stats = CallStats()
    sessions = Sessions(AwsConfig(region="us-east-1"), stats, session_name="snapworker-t-1")
    params = _assume_role_params(sessions)
    home = Pair("home", "us-east-1")
    dr_a = Pair("dr-a", "us-east-1", account=DR_A, role_arn=ROLE_A, external_id="sw-ext-a")
    dr_b = Pair("dr-b", "us-east-1", account=DR_B, role_arn=ROLE_B)

    _make_cluster(sessions.client(home), "same-id")
    _make_cluster(sessions.client(dr_a), "same-id")
    _make_cluster(sessions.client(dr_a), "only-a")

    # moto keeps each account's clusters apart: the same id in two accounts is two clusters
    assert set(moto_ext.backend(HOME, "us-east-1").clusters) == {"same-id"}
    assert set(moto_ext.backend(DR_A, "us-east-1").clusters) == {"same-id", "only-a"}
    assert _clusters(sessions.client(dr_a)) == ["only-a", "same-id"]
    assert _clusters(sessions.client(dr_b)) == []
    assert _clusters(sessions.client(home)) == ["same-id"]

    assert sessions.caller_account(home) == HOME
    assert sessions.caller_account(dr_a) == DR_A
    # the session name and the external id went to STS; no external id when none is set
    assert [(p["RoleArn"], p["RoleSessionName"], p.get("ExternalId")) for p in params] == [
        (ROLE_A, "snapworker-t-1", "sw-ext-a"),
        (ROLE_B, "snapworker-t-1", None),
    ]
    calls = stats.snapshot()
    assert calls["AssumeRole"] == 2  # once per role, however many clients
    assert calls["GetCallerIdentity"] == 1
    assert calls["CreateCluster"] == 3


def test_one_client_per_target_region_and_service_one_session_per_target(aws: None) -> None:
    sessions = Sessions(AwsConfig(region="us-east-1"), CallStats())
    east = Pair("dr-a", "us-east-1", role_arn=ROLE_A)
    west = Pair("dr-a", "eu-west-1", role_arn=ROLE_A)
    assert sessions.client(east) is sessions.client(east)
    assert sessions.client(east) is not sessions.client(west)
    assert sessions.client(east, "sts") is not sessions.client(east)
    assert sessions.client(west).meta.region_name == "eu-west-1"
    assert sessions.session_for(east) is sessions.session_for(west)
    assert sessions.session_for(Pair("home", "us-east-1")) is sessions.base_session()
    # the region is the pair's: a cluster made in eu-west-1 is not in us-east-1
    _make_cluster(sessions.client(west), "c1")
    assert _clusters(sessions.client(west)) == ["c1"]
    assert _clusters(sessions.client(east)) == []


def test_clients_are_made_once_under_concurrency(aws: None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    stats = CallStats()
    sessions = Sessions(AwsConfig(region="us-east-1"), stats)
    pairs = [
        Pair(f"t{i % 4}", "us-east-1", role_arn=f"arn:aws:iam::{i % 4:012d}:role/r")
        for i in range(32)
    ]
    with ThreadPoolExecutor(16) as pool:
        clients = list(pool.map(sessions.client, pairs))
    assert len({id(c) for c in clients}) == 4
    assert stats.snapshot()["AssumeRole"] == 4


def test_credentials_are_botocores_refreshable_ones_and_refresh_when_expiring(aws: None) -> None:
    """moto's AssumeRole credentials last an hour (AWS's default): 40 minutes in, botocore's
    refreshable credentials are still good; within its refresh window (15 minutes before they
    expire) they are fetched again (a second AssumeRole, new keys), and the client goes on
    working in the role's account."""
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    stats = CallStats()
    with freeze_time(start) as frozen:
        sessions = Sessions(AwsConfig(region="us-east-1"), stats)
        pair = Pair("dr-a", "us-east-1", role_arn=ROLE_A)
        client = sessions.client(pair)
        creds = sessions.session_for(pair).get_credentials()
        assert isinstance(creds, DeferredRefreshableCredentials)
        assert isinstance(creds, RefreshableCredentials) and creds.method == "assume-role"
        first = creds.get_frozen_credentials().access_key
        _make_cluster(client, "c1")
        frozen.move_to(start + timedelta(minutes=40))
        assert _clusters(client) == ["c1"]
        assert stats.snapshot()["AssumeRole"] == 1  # still good: no refresh
        frozen.move_to(start + timedelta(minutes=50))  # within botocore's window
        assert _clusters(client) == ["c1"]
        assert stats.snapshot()["AssumeRole"] == 2
        assert creds.get_frozen_credentials().access_key != first
        assert set(moto_ext.backend(DR_A, "us-east-1").clusters) == {"c1"}


# -- STS stubbed: the fetcher's wiring, refusals ---------------------------------------------


def _sts_stub(
    sessions: Sessions, answers: list[dict[str, Any] | Exception]
) -> list[dict[str, Any]]:
    """Answer the sessions' AssumeRole calls from ``answers`` in turn (a ``before-call``
    handler short-circuits the HTTP call, as botocore's Stubber does); returns the params."""
    seen: list[dict[str, Any]] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        seen.append(params)
        nxt = answers.pop(0)
        if isinstance(nxt, Exception):
            raise nxt
        status = int(nxt.get("ResponseMetadata", {}).get("HTTPStatusCode", 200))
        return AWSResponse("https://sts.example", status, {}, None), nxt  # type: ignore[arg-type]

    sessions.base_session().events.register("before-call.sts.AssumeRole", cast(Any, answer))
    return seen


def _creds(key: str, expires: datetime) -> dict[str, Any]:
    return {
        "Credentials": {
            "AccessKeyId": key,
            "SecretAccessKey": "secret-" + key,
            "SessionToken": "token-" + key,
            "Expiration": expires,
        },
        "AssumedRoleUser": {
            "Arn": f"arn:aws:sts::{DR_A}:assumed-role/snapworker/x",
            "AssumedRoleId": "AROA:x",
        },
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }


def test_refresh_is_botocores_fetcher_calling_assume_role_again(aws: None) -> None:
    """Credentials that expire within botocore's advisory window (15 min) are fetched again
    on next use: a second AssumeRole, the new keys sign the next request."""
    now = datetime.now(UTC)
    sessions = Sessions(AwsConfig(region="us-east-1"), CallStats(), session_name="snapworker-h-9")
    seen = _assume_role_params(sessions)
    _sts_stub(
        sessions,
        [
            _creds("ASIAFIRST", now + timedelta(minutes=5)),
            _creds("ASIASECOND", now + timedelta(hours=1)),
        ],
    )
    pair = Pair("dr-a", "us-east-1", role_arn=ROLE_A, external_id="sw-ext-a")
    client = sessions.client(pair)
    assert len(seen) == 1
    signed: list[str] = []
    client.meta.events.register(
        "before-send.redshift",
        lambda request, **_: signed.append(str(request.headers["Authorization"])),
    )
    client.describe_clusters()
    assert len(seen) == 2
    assert "ASIASECOND/" in signed[0]
    client.describe_clusters()
    assert len(seen) == 2  # an hour left: no refresh
    assert all(
        p == {"RoleArn": ROLE_A, "RoleSessionName": "snapworker-h-9", "ExternalId": "sw-ext-a"}
        for p in seen
    )


def test_refused_assume_role_is_one_line_and_not_cached(aws: None) -> None:
    sessions = Sessions(AwsConfig(region="us-east-1"), CallStats())
    denied = {
        "Error": {
            "Code": "AccessDenied",
            "Message": f"User: arn:aws:iam::{HOME}:user/sw is not authorized to perform: "
            f"sts:AssumeRole on resource: {ROLE_A}",
        },
        "ResponseMetadata": {"HTTPStatusCode": 403},
    }
    _sts_stub(sessions, [denied, _creds("ASIAOK", datetime.now(UTC) + timedelta(hours=1))])
    pair = Pair("dr-a", "us-east-1", role_arn=ROLE_A)
    with pytest.raises(TargetUnavailable) as exc:
        sessions.client(pair)
    msg = str(exc.value)
    assert msg == (
        f"cannot assume role {ROLE_A}: AccessDenied: User: arn:aws:iam::{HOME}:user/sw is not "
        f"authorized to perform: sts:AssumeRole on resource: {ROLE_A}"
    )
    assert "\n" not in msg and "testing" not in msg
    assert exc.value.exit_code == 1
    # the role fixed: the next request for the target assumes it
    assert sessions.client(pair) is not None


def test_sts_goes_to_the_configured_endpoint(aws: None) -> None:
    sessions = Sessions(
        AwsConfig(region="us-east-1", endpoint_url="http://127.0.0.1:1"), CallStats()
    )
    urls: list[str] = []
    sessions.base_session().events.register(
        "before-send.sts.AssumeRole", lambda request, **_: urls.append(request.url)
    )
    sessions.aws = AwsConfig(
        region="us-east-1",
        endpoint_url="http://127.0.0.1:1",
        max_attempts=1,
        connect_timeout_seconds=0.2,
    )
    with pytest.raises(TargetUnavailable, match=r"^cannot assume role .*: EndpointConnectionError"):
        sessions.client(Pair("dr-a", "us-east-1", role_arn=ROLE_A))
    assert urls and urls[0].startswith("http://127.0.0.1:1")


# -- moto's server ----------------------------------------------------------------------------


def test_against_the_server_roles_map_to_their_accounts(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.e2e_support import reset

    reset(moto_url)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    stats = CallStats()
    sessions = Sessions(AwsConfig(region="us-east-1", endpoint_url=moto_url), stats)
    a_east = Pair("dr-a", "us-east-1", role_arn=ROLE_A)
    a_west = Pair("dr-a", "eu-west-1", role_arn=ROLE_A)
    b_east = Pair("dr-b", "us-east-1", role_arn=ROLE_B)
    for p in (a_east, a_west, b_east):
        _make_cluster(sessions.client(p), "same-id")
    assert set(moto_ext.backend(DR_A, "us-east-1").clusters) == {"same-id"}
    assert set(moto_ext.backend(DR_A, "eu-west-1").clusters) == {"same-id"}
    assert set(moto_ext.backend(DR_B, "us-east-1").clusters) == {"same-id"}
    assert "same-id" not in moto_ext.backend(HOME, "us-east-1").clusters
    assert sessions.caller_account(Pair("home", "us-east-1")) == HOME
    assert stats.snapshot()["AssumeRole"] == 2
    reset(moto_url)


def test_base_session_honours_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    from snapworker.adapters.aws.errors import AwsSetupError

    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    sessions = Sessions(AwsConfig(region="us-east-1", profile="nope"), CallStats())
    with pytest.raises(AwsSetupError, match="AWS profile 'nope' not found"):
        sessions.base_session()
    assert isinstance(
        Sessions(AwsConfig(), CallStats(), base=boto3.Session()).base_session(), boto3.Session
    )
