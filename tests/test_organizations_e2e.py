"""Organizations discovery through the CLI: ``snapworker plan`` and ``run`` as subprocesses
against moto's server, whose Organizations lists the accounts (ListAccounts); each account
found is a target reached by AssumeRole of ``arn:aws:iam::<account>:role/<role_name>``.

An organization of the management account (moto's default, 123456789012) and three member
accounts, ``prod-one``, ``prod-two`` and ``sandbox-x``, each holding the same cluster and
automated snapshot: the config's ``accounts`` filter excludes ``sandbox-*`` (by name) and the
management account (by id). ``plan --format json`` names the two prod accounts' pairs and
no other; ``run`` copies in those two accounts and sends nothing to the others (counted on
the server per account).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.e2e_support import (
    ACCOUNT,
    CREDS,
    REGION,
    Sandbox,
    estate,
    fresh_counts,
    served,
)

pytestmark = pytest.mark.e2e

CONFIG = """\
state_url: sqlite:///{db}
aws:
  region: us-east-1
retry:
  attempts: 2
  wait_initial_seconds: 0
  wait_max_seconds: 0
organization:
  role_name: snapworker
  regions: [us-east-1]
  accounts:
    include: ["*"]
    exclude: ["sandbox-*", "123456789012"]
policies:
  - name: prod-nightly
    select:
      clusters: ["prod-*"]
    copy_automated: true
"""
NAMES = ("prod-one", "prod-two", "sandbox-x")


def organization(box: Sandbox) -> dict[str, str]:
    """An organization with the three member accounts; returns name -> account id."""
    client: Any = boto3.client(
        "organizations",
        region_name=REGION,
        endpoint_url=box.url,
        aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_organization(FeatureSet="ALL")
    for name in NAMES:
        client.create_account(AccountName=name, Email=f"{name}@example.com")
    accounts: dict[str, str] = {}
    for page in client.get_paginator("list_accounts").paginate():
        for a in page["Accounts"]:
            accounts[a["Name"]] = a["Id"]
    assert set(NAMES) <= set(accounts), accounts
    return {name: accounts[name] for name in NAMES}


def test_discovered_accounts_are_planned_and_worked_and_the_excluded_left_alone(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    box.config.write_text(CONFIG.format(db=box.db))
    accounts = organization(box)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for account in [ACCOUNT, *accounts.values()]:
        pair = estate(box, account, REGION)
        pair.cluster("prod-a", env="prod")
        pair.automated("prod-a", now - timedelta(days=1))
    fresh_counts()
    wanted = {accounts["prod-one"], accounts["prod-two"]}

    planned = box.cli("plan", "--format", "json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    doc = json.loads(planned.stdout)
    assert doc["errors"] == []
    entries = Counter((a["account"], a["region"], a["action"]) for a in doc["actions"])
    assert entries == {(a, REGION, "copy"): 1 for a in wanted}, entries
    # Each discovered account is its own target, named by its account id.
    assert all(a["target"] == a["account"] for a in doc["actions"]), doc["actions"]
    assert {(a, r) for a, r, _, _ in served()} <= {(a, REGION) for a in wanted}

    fresh_counts()
    ran = box.cli("run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    counts = served()
    for name, account in accounts.items():
        pair = estate(box, account, REGION)
        if account in wanted:
            assert pair.mutations(counts) == {"CopyClusterSnapshot": 1, "CreateTags": 1}, name
            assert len(pair.owned("prod-nightly")) == 1, name
        else:
            assert pair.requests(served=counts) == {}, name  # never even listed
            assert pair.owned("prod-nightly") == {}, name
    assert estate(box, ACCOUNT, REGION).requests(served=counts) == {}
