"""Organizations discovery: ListAccounts paged against moto's Organizations, and the pure
selection of targets and pairs (``core/targets.py``: ``org_targets``, ``org_pairs``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from snapworker.adapters.aws.client import CallStats
from snapworker.adapters.aws.organizations import discover_pairs, list_accounts
from snapworker.adapters.aws.sessions import Sessions
from snapworker.config.models import AccountFilter, AwsConfig, Organization
from snapworker.core.targets import OrgAccount, OrgTarget, Pair, org_pairs, org_targets


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    with mock_aws():
        client = boto3.client("organizations", region_name="us-east-1")
        client.create_organization(FeatureSet="ALL")
        yield client


def test_list_accounts_walks_every_page(org: Any) -> None:
    for i in range(45):
        org.create_account(AccountName=f"team {i:02d}", Email=f"t{i}@example.com")
    calls = CallStats()
    sessions = Sessions(AwsConfig(region="us-east-1"), calls)
    client = sessions.client(Pair("home", "us-east-1"), "organizations")
    accounts = list_accounts(client=client, page_size=20)
    # 45 made + the management account, each once, over ceil(46 / 20) pages
    assert len(accounts) == 46 == len({a.id for a in accounts})
    assert calls.snapshot()["ListAccounts"] == 3
    assert accounts[0] == OrgAccount("123456789012", "master", "ACTIVE")
    assert {a.name for a in accounts} >= {f"team {i:02d}" for i in range(45)}
    assert all(len(a.id) == 12 and a.status == "ACTIVE" for a in accounts)


def test_list_accounts_from_a_session_and_default_page_size(org: Any) -> None:
    org.create_account(AccountName="solo", Email="s@example.com")
    accounts = list_accounts(boto3.Session(region_name="us-east-1"))
    assert [a.name for a in accounts] == ["master", "solo"]


def test_discover_pairs_against_moto(org: Any) -> None:
    ids = {}
    for name in ("Prod EU", "prod-us", "Sandbox 1"):
        made = org.create_account(AccountName=name, Email=f"{name.replace(' ', '')}@example.com")
        ids[name] = made["CreateAccountStatus"]["AccountId"]
    cfg = Organization(
        role_name="snapworker",
        external_id="sw-ext",
        regions=["us-east-1", "eu-west-1"],
        accounts=AccountFilter(include=["Prod*", "prod*"], exclude=[ids["prod-us"]]),
    )
    pairs = discover_pairs(list_accounts(boto3.Session(region_name="us-east-1")), cfg)
    acct = ids["Prod EU"]
    role = f"arn:aws:iam::{acct}:role/snapworker"
    assert pairs == [
        Pair(acct, "us-east-1", acct, role, "sw-ext"),
        Pair(acct, "eu-west-1", acct, role, "sw-ext"),
    ]


# -- pure selection ---------------------------------------------------------------------------

A = OrgAccount("111111111111", "Prod EU (Data)", "ACTIVE")
B = OrgAccount("222222222222", "prod_eu data", "ACTIVE")
C = OrgAccount("333333333333", "dev", "SUSPENDED")
D = OrgAccount("444444444444", "***", "ACTIVE")
E = OrgAccount("555555555555", "sandbox", "ACTIVE")


def test_org_targets_active_only_each_named_by_its_account_id() -> None:
    got = org_targets([A, B, C, D, E, A], ["*"], [])
    assert got == [OrgTarget(a.id, a.id) for a in (A, B, D, E)]


def test_an_account_a_listed_target_covers_is_not_discovered_again() -> None:
    assert org_targets([A, E], ["*"], [], covered=[E.id]) == [OrgTarget(A.id, A.id)]


def test_org_targets_globs_over_ids_and_names() -> None:
    assert [t.account for t in org_targets([A, B, E], ["Prod*"], [])] == [A.id]
    assert [t.account for t in org_targets([A, B, E], ["1111*", "sand*"], [])] == [A.id, E.id]
    # exclude wins, by id or by name
    assert [t.account for t in org_targets([A, B, E], ["*"], ["sandbox", B.id])] == [A.id]
    assert org_targets([C], ["*"], []) == []  # suspended: never


def test_org_pairs_role_per_partition() -> None:
    targets = [OrgTarget("a", "111111111111")]
    pairs = org_pairs(
        targets,
        ["us-east-1", "cn-north-1"],
        "sw",
        None,
        partition_of=lambda r: "aws-cn" if r.startswith("cn-") else "aws",
    )
    assert [p.role_arn for p in pairs] == [
        "arn:aws:iam::111111111111:role/sw",
        "arn:aws-cn:iam::111111111111:role/sw",
    ]
    assert [p.key for p in pairs] == ["a/us-east-1", "a/cn-north-1"]
    assert all(p.account == "111111111111" and p.external_id is None for p in pairs)


def test_list_accounts_against_the_server_through_the_endpoint(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aws.endpoint_url`` takes Organizations to moto's server, as it does Redshift."""
    from tests.e2e_support import reset

    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset(moto_url)
    try:
        admin = boto3.client("organizations", region_name="us-east-1", endpoint_url=moto_url)
        admin.create_organization(FeatureSet="ALL")
        for i in range(3):
            admin.create_account(AccountName=f"dr {i}", Email=f"dr{i}@example.com")
        sessions = Sessions(AwsConfig(region="us-east-1", endpoint_url=moto_url), CallStats())
        client = sessions.client(Pair("home", "us-east-1"), "organizations")
        cfg = Organization(role_name="sw", regions=["eu-west-1"])
        listed = list_accounts(client=client, page_size=2)
        pairs = discover_pairs(listed, cfg, covered=["123456789012"])
        assert [p.target for p in pairs] == [a.id for a in listed if a.name != "master"]
        assert len(pairs) == 3
        assert all(p.role_arn == f"arn:aws:iam::{p.account}:role/sw" for p in pairs)
    finally:
        reset(moto_url)
