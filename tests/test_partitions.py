"""ARNs in partitions other than ``aws`` (issue 18, "Partitions"): ``iam-policy`` and the
gateway's CreateTags/DeleteTags build them from the region's partition, taken from
botocore's endpoint data (``arn:aws-cn:`` in ``cn-north-1``, ``arn:aws-us-gov:`` in
``us-gov-west-1``). moto accepts any partition in an ARN, so the gateway's calls are checked
with botocore's Stubber: the exact ResourceName AWS would be sent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from snapworker.adapters.aws.clusters import partition_of
from snapworker.adapters.aws.redshift import RedshiftGateway
from snapworker.config import RetryConfig

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example.yaml"
PARTITIONS = [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"), ("eu-west-1", "aws")]


def iam_policy_cli(*args: str) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, "-m", "snapworker", "iam-policy", "-c", str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def arns(doc: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for stmt in doc["Statement"]:
        res = stmt["Resource"]
        out += [res] if isinstance(res, str) else res
    return [r for r in out if r != "*"]


@pytest.mark.parametrize(("region", "partition"), PARTITIONS[:2])
def test_iam_policy_uses_the_partition_of_the_region(region: str, partition: str) -> None:
    doc = iam_policy_cli("--region", region, "--account", "123456789012")
    found = arns(doc)
    assert found, doc
    assert all(r.startswith(f"arn:{partition}:redshift:{region}:123456789012:") for r in found), [
        r for r in found if not r.startswith(f"arn:{partition}:")
    ]


def test_iam_policy_for_any_region_keeps_the_standard_partition() -> None:
    found = arns(iam_policy_cli("--region", "*"))
    assert found and all(r.startswith("arn:aws:redshift:*:*:") for r in found)


def test_partition_of_reads_botocore_and_falls_back_to_aws() -> None:
    for region, partition in PARTITIONS:
        assert partition_of(region) == partition
    assert partition_of("*") == "aws"
    assert partition_of(None) == "aws"
    assert partition_of("xx-nowhere-9") == "aws"


@pytest.mark.parametrize(("region", "partition"), PARTITIONS)
def test_gateway_tags_and_untags_with_the_partition_of_its_region(
    region: str, partition: str
) -> None:
    client = boto3.client(
        "redshift",
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    gw = RedshiftGateway(client, RetryConfig(attempts=1))
    arn = f"arn:{partition}:redshift:{region}:123456789012:snapshot:prod-a/sw-p-x"
    with Stubber(client) as stub:
        stub.add_response(
            "create_tags", {}, {"ResourceName": arn, "Tags": [{"Key": "k", "Value": "v"}]}
        )
        stub.add_response("delete_tags", {}, {"ResourceName": arn, "TagKeys": ["k"]})
        gw.tag_snapshot("sw-p-x", "prod-a", "123456789012", {"k": "v"})
        gw.untag_snapshot("sw-p-x", "prod-a", "123456789012", ["k"])
        stub.assert_no_pending_responses()
    gw._account = "123456789012"
    assert (
        gw.cluster_arn("prod-a") == f"arn:{partition}:redshift:{region}:123456789012:cluster:prod-a"
    )


def test_iam_policy_covers_the_snapshots_of_former_names() -> None:
    """A policy with ``formerly`` re-tags, revokes and deletes the snapshots made under its
    former names (their ids keep the old name): its IAM policy must reach them."""
    from snapworker.config import Config
    from snapworker.service.permissions import iam_policy

    cfg = Config.model_validate(
        {
            "aws": {"region": "cn-north-1"},
            "policies": [
                {
                    "name": "prod-daily",
                    "formerly": ["prod-nightly"],
                    "share": {"accounts": ["111122223333"]},
                    "retention": {"keep_last": 3},
                }
            ],
        }
    )
    doc = iam_policy(cfg, account="123456789012")
    by_action: dict[str, list[str]] = {}
    for stmt in doc["Statement"]:
        acts = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        res = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
        for a in acts:
            by_action.setdefault(a, []).extend(res)
    former = "arn:aws-cn:redshift:cn-north-1:123456789012:snapshot:*/sw-prod-nightly-*"
    for action in (
        "redshift:CreateTags",
        "redshift:RevokeSnapshotAccess",
        "redshift:DeleteClusterSnapshot",
        "redshift:AuthorizeSnapshotAccess",
    ):
        assert former in by_action.get(action, []), (action, by_action.get(action))
