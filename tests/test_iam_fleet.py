"""``snapworker iam-policy`` on a fleet config, through the real CLI: the worker's own policy
(AssumeRole on the roles, ListAccounts, the Redshift permissions of its own-credential
targets) and per role a permission and a trust policy. Every document is valid IAM (moto's
validators of CreatePolicy and CreateRole's AssumeRolePolicyDocument), every call the fleet
makes is allowed, and no role gets another account's or region's resources."""

from __future__ import annotations

import ast
import fnmatch
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from moto.iam.policy_validation import IAMPolicyDocumentValidator, IAMTrustPolicyDocumentValidator

from snapworker.config import Config, load_config
from snapworker.service.fleet_permissions import ASSUME_ROLE, LIST_ACCOUNTS, PLACEHOLDER
from snapworker.service.permissions import iam_policy, render

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "config" / "fleet.yaml"
EXAMPLE = ROOT / "config" / "example.yaml"
WORKER = "123456789012"
PRINCIPAL = f"arn:aws:iam::{WORKER}:role/snapworker-worker"
DR_ROLE = "arn:aws:iam::210987654321:role/snapworker"


def cli(*args: str, config: Path = FLEET) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapworker", "iam-policy", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def fleet_doc() -> dict[str, Any]:
    r = cli("--account", WORKER, "--worker-principal", PRINCIPAL)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def statements(doc: dict[str, Any], action: str) -> list[dict[str, Any]]:
    def acts(s: dict[str, Any]) -> list[str]:
        return [s["Action"]] if isinstance(s["Action"], str) else s["Action"]

    return [s for s in doc["Statement"] if action in acts(s)]


def resources(stmt: dict[str, Any]) -> list[str]:
    r = stmt["Resource"]
    return [r] if isinstance(r, str) else r


def allowed(doc: dict[str, Any], action: str, arn: str) -> bool:
    return any(
        fnmatch.fnmatchcase(arn, pattern)
        for stmt in statements(doc, action)
        for pattern in resources(stmt)
    )


def every_resource(doc: dict[str, Any]) -> list[str]:
    return [r for s in doc["Statement"] for r in resources(s)]


def test_no_targets_prints_todays_document_byte_for_byte() -> None:
    r = cli("--account", WORKER, config=EXAMPLE)
    assert r.returncode == 0, r.stderr
    assert r.stdout == render(iam_policy(load_config(EXAMPLE), account=WORKER)) + "\n"
    r = cli("--worker-principal", PRINCIPAL, config=EXAMPLE)
    assert r.returncode == 2 and "--worker-principal" in r.stderr


def test_a_fleet_prints_the_worker_and_each_role(fleet_doc: dict[str, Any]) -> None:
    assert set(fleet_doc) == {"worker", "targets", "organization"}
    assert list(fleet_doc["targets"]) == ["dr-a"]  # home uses the worker's own credentials
    dr = fleet_doc["targets"]["dr-a"]
    assert dr["role"] == DR_ROLE
    assert set(dr) == {"role", "permissions", "trust"}
    assert fleet_doc["organization"]["role"] == "arn:aws:iam::*:role/snapworker"


def test_every_document_is_valid_iam(fleet_doc: dict[str, Any]) -> None:
    roles = [fleet_doc["targets"]["dr-a"], fleet_doc["organization"]]
    for permissions in [fleet_doc["worker"], *(r["permissions"] for r in roles)]:
        IAMPolicyDocumentValidator(json.dumps(permissions)).validate()
        assert len({s["Sid"] for s in permissions["Statement"]}) == len(permissions["Statement"])
    for role in roles:
        IAMTrustPolicyDocumentValidator(json.dumps(role["trust"])).validate()


def test_the_worker_may_assume_every_role_and_list_the_accounts(
    fleet_doc: dict[str, Any],
) -> None:
    worker = fleet_doc["worker"]
    assert allowed(worker, ASSUME_ROLE, DR_ROLE)
    assert allowed(worker, ASSUME_ROLE, "arn:aws:iam::555566667777:role/snapworker")
    assert not allowed(worker, ASSUME_ROLE, "arn:aws:iam::555566667777:role/admin")
    (listing,) = statements(worker, LIST_ACCOUNTS)
    assert listing["Resource"] == "*"


def test_the_worker_holds_the_redshift_permissions_of_its_own_targets_only(
    fleet_doc: dict[str, Any],
) -> None:
    worker = fleet_doc["worker"]
    # home (no role_arn, us-east-1) takes everywhere-weekly: create, tag, delete there
    own = f"arn:aws:redshift:us-east-1:{WORKER}:snapshot:prod-a/sw-everywhere-weekly-x"
    assert allowed(worker, "redshift:DeleteClusterSnapshot", own)
    assert allowed(
        worker, "redshift:CreateClusterSnapshot", f"arn:aws:redshift:us-east-1:{WORKER}:cluster:c"
    )
    # prod-nightly is dr-* only: the worker itself never copies or shares
    assert not statements(worker, "redshift:CopyClusterSnapshot")
    assert not statements(worker, "redshift:AuthorizeSnapshotAccess")
    for arn in every_resource(worker):
        assert arn == "*" or f":{WORKER}:" in arn or arn.startswith("arn:aws:iam::"), arn
        assert ":eu-west-1:" not in arn, arn


def test_each_role_is_scoped_to_its_account_and_regions(fleet_doc: dict[str, Any]) -> None:
    perms = fleet_doc["targets"]["dr-a"]["permissions"]
    owned = "snapshot:prod-a/sw-prod-nightly-prod-a-x"
    for region in ("us-east-1", "eu-west-1"):
        arn = f"arn:aws:redshift:{region}:210987654321:{owned}"
        for action in ("CopyClusterSnapshot", "AuthorizeSnapshotAccess", "DeleteClusterSnapshot"):
            assert allowed(perms, f"redshift:{action}", arn), (action, region)
    assert not allowed(
        perms, "redshift:DeleteClusterSnapshot", f"arn:aws:redshift:us-west-2:210987654321:{owned}"
    )
    assert not allowed(
        perms, "redshift:DeleteClusterSnapshot", f"arn:aws:redshift:us-east-1:{WORKER}:{owned}"
    )
    # everywhere-weekly applies to dr-a too; it creates
    assert statements(perms, "redshift:CreateClusterSnapshot")
    org = fleet_doc["organization"]["permissions"]
    assert all(":us-east-1:*:" in a for a in every_resource(org) if a != "*")


def test_each_trust_policy_trusts_the_worker_with_the_external_id(
    fleet_doc: dict[str, Any],
) -> None:
    (stmt,) = fleet_doc["targets"]["dr-a"]["trust"]["Statement"]
    assert stmt["Principal"] == {"AWS": PRINCIPAL}
    assert stmt["Action"] == ASSUME_ROLE
    assert stmt["Condition"] == {"StringEquals": {"sts:ExternalId": "sw-ext-a"}}
    (org,) = fleet_doc["organization"]["trust"]["Statement"]
    assert org["Principal"] == {"AWS": PRINCIPAL}
    assert "Condition" not in org  # organization.external_id is null


def test_the_principal_defaults_to_the_account_root_else_a_marked_placeholder() -> None:
    r = cli("--account", WORKER)
    assert r.returncode == 0 and r.stderr == ""
    (stmt,) = json.loads(r.stdout)["targets"]["dr-a"]["trust"]["Statement"]
    assert stmt["Principal"] == {"AWS": f"arn:aws:iam::{WORKER}:root"}
    r = cli()
    assert r.returncode == 0
    (stmt,) = json.loads(r.stdout)["targets"]["dr-a"]["trust"]["Statement"]
    assert stmt["Principal"] == {"AWS": PLACEHOLDER}
    assert r.stderr.startswith(f"note: the trust policies name {PLACEHOLDER}: replace it")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--region", "us-east-1"), "--region: the config's targets and organization list"),
        (("--worker-principal", "snapworker"), "--worker-principal: must be an IAM role"),
        (
            ("--worker-principal", f"arn:aws:sts::{WORKER}:assumed-role/sw/i-0abc"),
            "an assumed-role session: name its role",
        ),
        (("--account", "12"), "--account: must be a 12-digit"),
    ],
)
def test_bad_options_are_refused(args: tuple[str, ...], says: str) -> None:
    r = cli(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert says in r.stderr


def test_a_role_no_policy_applies_to_is_left_out_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"targets: [{{name: dr-b, role_arn: '{DR_ROLE}', regions: [us-east-1]}},"
        " {name: home, regions: [us-east-1]}]\n"
        "policies: [{name: p, targets: [home], retention: {keep_last: 2}}]\n"
    )
    r = cli("--account", WORKER, config=path)
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    assert doc["targets"] == {} and "organization" not in doc
    assert r.stderr == "note: target 'dr-b': no policy applies to it; no role policy printed\n"
    assert allowed(doc["worker"], ASSUME_ROLE, DR_ROLE)  # the worker still reaches it


def _pair_documents(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    """(target, the one-pair policy of each pair), as ``iam-policy`` prints it for a config
    without targets (which tests/test_iam_policy.py proves covers every call a pair makes)."""
    out = []
    for t in cfg.targets or ():
        for region in t.regions:
            account = t.account or WORKER
            pols = cfg.policies_for(t.name)
            out.append((t.name, iam_policy(cfg, account=account, region=region, policies=pols)))
    return out


def test_every_pair_call_is_allowed_by_its_fleet_document(fleet_doc: dict[str, Any]) -> None:
    """What each (target, region) pair's work needs (its one-pair policy) is granted by the
    document the fleet prints for it: the worker's for its own-credential targets, the role's
    for the others; statement for statement, under the same condition."""
    cfg = load_config(FLEET)
    for target, needed in _pair_documents(cfg):
        t = next(t for t in cfg.targets or () if t.name == target)
        doc = (
            fleet_doc["worker"]
            if t.role_arn is None
            else fleet_doc["targets"][target]["permissions"]
        )
        for stmt in needed["Statement"]:
            acts = [stmt["Action"]] if isinstance(stmt["Action"], str) else stmt["Action"]
            for action in acts:
                for arn in resources(stmt):
                    assert any(
                        arn in resources(s) and s.get("Condition") == stmt.get("Condition")
                        for s in statements(doc, action)
                    ), (target, action, arn)


def _fleet_operations() -> set[str]:
    """The STS and Organizations operations the adapters call (any client method or
    paginator named after one, or botocore's AssumeRole credential fetcher)."""
    session = botocore.session.get_session()
    ops = {
        xform_name(op): f"{prefix}:{op}"
        for service, prefix in (("sts", "sts"), ("organizations", "organizations"))
        for op in session.get_service_model(service).operation_names
    }
    found: set[str] = set()
    for path in (ROOT / "snapworker" / "adapters").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ops:
                found.add(ops[node.attr])
            elif (
                isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ops
            ):
                found.add(ops[node.value])
            if isinstance(node, ast.Name | ast.Attribute) and "AssumeRoleCredentialFetcher" in (
                getattr(node, "id", None),
                getattr(node, "attr", None),
            ):
                found.add(ASSUME_ROLE)
    return found


def test_every_sts_and_organizations_call_of_the_adapters_is_allowed(
    fleet_doc: dict[str, Any],
) -> None:
    """The worker's policy allows every STS and Organizations operation the adapters can
    call (GetCallerIdentity is granted by the Redshift documents where the work needs it)."""
    found = _fleet_operations()
    assert "sts:GetCallerIdentity" in found  # the scan sees the gateway's call
    worker = fleet_doc["worker"]
    granted = {
        a
        for s in worker["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    missing = sorted(found - granted - {"sts:GetCallerIdentity"})
    assert not missing, f"fleet calls the worker's policy does not allow: {missing}"
    assert {ASSUME_ROLE, LIST_ACCOUNTS} <= granted
