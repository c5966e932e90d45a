"""``snapworker iam-policy``: the least-privilege IAM policy a config needs.

What an operator relies on: the document is valid IAM JSON; it grants exactly the actions
the config's features use, on the worker's own snapshots where Redshift lets them be
scoped; and no call the gateway can make is missing from it (so a run never fails half-way
on AccessDenied because a permission was forgotten)."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from snapworker.adapters.aws import clusters, redshift
from snapworker.config import Config, load_config
from snapworker.core import ids
from snapworker.core.model import Action, Cluster, State
from snapworker.service import database, permissions
from snapworker.service.database import QueryOutcome
from snapworker.service.drills import DrillContext, run_drill
from snapworker.service.executor import Executor
from snapworker.service.permissions import actions_of, declared_iam_actions, iam_policy
from tests.fakes import FakeGateway, FakeStore

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example.yaml"
OWNED = "arn:aws:redshift:us-east-1:123456789012:snapshot:*/sw-prod-nightly-*"


def config(**policy: Any) -> Config:
    base: dict[str, Any] = {"name": "prod-nightly", "select": {"clusters": ["prod-*"]}}
    base.update(policy)
    return Config.model_validate({"aws": {"region": "us-east-1"}, "policies": [base]})


def statements_for(doc: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [
        s
        for s in doc["Statement"]
        if action == s["Action"] or (isinstance(s["Action"], list) and action in s["Action"])
    ]


def resources(stmt: dict[str, Any]) -> list[str]:
    r = stmt["Resource"]
    return [r] if isinstance(r, str) else r


def test_example_config_gets_exactly_the_actions_it_uses_scoped_to_its_snapshots():
    doc = iam_policy(load_config(EXAMPLE), account="123456789012")
    assert doc["Version"] == "2012-10-17"
    assert actions_of(doc) == {
        "redshift:DescribeClusters",
        "redshift:DescribeClusterSnapshots",
        "sts:GetCallerIdentity",
        "redshift:CreateTags",
        "redshift:CreateClusterSnapshot",
        "redshift:CopyClusterSnapshot",
        "redshift:AuthorizeSnapshotAccess",
        "redshift:RevokeSnapshotAccess",
        "redshift:DeleteClusterSnapshot",
        "redshift:DeleteTags",  # hold/release
        "redshift:ModifyClusterSnapshot",  # hold: retention indefinite while held
    }
    for action in (
        "redshift:AuthorizeSnapshotAccess",
        "redshift:RevokeSnapshotAccess",
        "redshift:DeleteClusterSnapshot",
        "redshift:ModifyClusterSnapshot",
    ):
        (stmt,) = statements_for(doc, action)
        assert resources(stmt) == [OWNED], action
    (copy,) = statements_for(doc, "redshift:CopyClusterSnapshot")
    assert sorted(resources(copy)) == sorted(
        [OWNED, "arn:aws:redshift:us-east-1:123456789012:snapshot:prod-*/rs:*"]
    )
    (create,) = statements_for(doc, "redshift:CreateClusterSnapshot")
    assert "arn:aws:redshift:us-east-1:123456789012:cluster:prod-*" in resources(create)
    # tagging only with the worker's own keys
    for stmt in statements_for(doc, "redshift:CreateTags"):
        keys = stmt["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"]
        assert all(k.startswith("snapworker:") for k in keys)
        assert resources(stmt) == [OWNED]
    # only listing is account-wide
    for stmt in doc["Statement"]:
        if resources(stmt) == ["*"]:
            assert set(actions_of({"Statement": [stmt]})) <= {
                "redshift:DescribeClusters",
                "redshift:DescribeClusterSnapshots",
                "sts:GetCallerIdentity",
            }
    assert len({s["Sid"] for s in doc["Statement"]}) == len(doc["Statement"])


def test_no_share_no_retention_grants_no_authorize_revoke_or_delete():
    doc = iam_policy(config(copy_automated=True))
    acts = actions_of(doc)
    assert "redshift:CopyClusterSnapshot" in acts
    for gone in (
        "redshift:AuthorizeSnapshotAccess",
        "redshift:RevokeSnapshotAccess",
        "redshift:DeleteClusterSnapshot",
        "redshift:CreateClusterSnapshot",
    ):
        assert gone not in acts, gone


def test_share_without_retention_grants_authorize_but_no_revoke_or_delete():
    acts = actions_of(iam_policy(config(share={"accounts": ["111122223333"]})))
    assert "redshift:AuthorizeSnapshotAccess" in acts
    assert "redshift:RevokeSnapshotAccess" not in acts
    assert "redshift:DeleteClusterSnapshot" not in acts


@pytest.mark.parametrize(
    "share",
    [{"accounts": ["111122223333"], "unshare_after": "30d"}, {"revoke_unlisted": True}],
)
def test_unshare_after_or_revoke_unlisted_grants_revoke_without_delete(share):
    acts = actions_of(iam_policy(config(share=share)))
    assert "redshift:RevokeSnapshotAccess" in acts
    assert "redshift:DeleteClusterSnapshot" not in acts


def test_retention_without_share_still_revokes_before_deleting():
    # A snapshot someone shared by hand must be revoked before the delete: the executor
    # refuses to delete while any account is authorized.
    acts = actions_of(iam_policy(config(retention={"max_age_days": 35})))
    assert {"redshift:RevokeSnapshotAccess", "redshift:DeleteClusterSnapshot"} <= acts
    assert "redshift:AuthorizeSnapshotAccess" not in acts


def test_a_cap_of_zero_deletes_never_so_grants_no_delete():
    cfg = config(retention={"max_age_days": 35}, limits={"max_deletes_per_run": 0})
    assert "redshift:DeleteClusterSnapshot" not in actions_of(iam_policy(cfg))


def test_no_create_no_copy_means_no_create_copy_tag_or_sts():
    acts = actions_of(iam_policy(config(retention={"keep_last": 3})))
    for gone in (
        "redshift:CreateClusterSnapshot",
        "redshift:CopyClusterSnapshot",
        "sts:GetCallerIdentity",
    ):
        assert gone not in acts


def test_several_policies_are_merged_into_one_statement_per_kind():
    cfg = Config.model_validate(
        {
            "policies": [
                {"name": "Alpha", "select": {"clusters": ["a-[0-9]"]}, "copy_automated": True},
                {"name": "beta", "select": {"clusters": ["b-*"]}, "copy_automated": True},
            ]
        }
    )
    doc = iam_policy(cfg, region="eu-west-1")
    (copy,) = statements_for(doc, "redshift:CopyClusterSnapshot")
    assert sorted(resources(copy)) == [
        "arn:aws:redshift:eu-west-1:*:snapshot:*/rs:*",  # a-[0-9] is no IAM wildcard
        "arn:aws:redshift:eu-west-1:*:snapshot:*/sw-alpha-*",  # AWS lowercases ids
        "arn:aws:redshift:eu-west-1:*:snapshot:*/sw-beta-*",
        "arn:aws:redshift:eu-west-1:*:snapshot:b-*/rs:*",
    ]


def test_verify_adds_restore_credentials_and_scratch_cluster_delete():
    verify = {
        "schedule": "0 5 * * 0",
        "connect": {"db_user": "snapworker-verify", "db_groups": ["readers"]},
        "checks": [{"name": "sales", "sql": "select 1", "expect": {"min": 1}}],
    }
    doc = iam_policy(config(copy_automated=True, verify=verify), account="123456789012")
    acts = actions_of(doc)
    assert {
        "redshift:RestoreFromClusterSnapshot",
        "redshift:GetClusterCredentials",
        "redshift:JoinGroup",
        "redshift:DeleteCluster",
    } <= acts
    assert "redshift:CreateClusterUser" not in acts  # auto_create is false
    (delete,) = statements_for(doc, "redshift:DeleteCluster")
    assert resources(delete) == ["arn:aws:redshift:us-east-1:123456789012:cluster:swv-*"]


def _gateway_operations() -> set[str]:
    """Every AWS operation the gateway (``adapters/aws/redshift.py`` and the cluster calls it
    mixes in, ``adapters/aws/clusters.py``) can call: the names passed to ``_call`` and every
    ``client.<method>(...)`` / ``.get_caller_identity()`` call, as API names."""
    trees = [ast.parse(Path(str(m.__file__)).read_text()) for m in (redshift, clusters)]
    ops: set[str] = set()
    for node in (n for tree in trees for n in ast.walk(tree)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        if name == "_call" and node.args and isinstance(node.args[0], ast.Constant):
            ops.add(str(node.args[0].value))
        owner = node.func.value
        if (isinstance(owner, ast.Attribute) and owner.attr == "client") or (
            isinstance(owner, ast.Name) and owner.id == "sts"
        ):
            ops.add("".join(part.capitalize() for part in name.split("_")))
    return ops


def test_every_gateway_call_is_covered_by_a_declared_permission():
    ops = _gateway_operations()
    assert {"CopyClusterSnapshot", "DeleteClusterSnapshot", "GetCallerIdentity"} <= ops
    assert ops >= redshift.MUTATIONS
    declared = {a.split(":", 1)[1] for a in declared_iam_actions()}
    missing = sorted(ops - declared)
    assert not missing, f"gateway operations with no declared IAM permission: {missing}"


def test_every_declared_kind_is_reachable_from_some_config():
    # A kind no config can enable would hide a permission that is never granted.
    verify = {
        "schedule": "0 5 * * 0",
        "connect": {"db_user": "u", "db_groups": ["g"], "auto_create": True},
        "checks": [{"name": "c", "sql": "select 1", "expect": {"min": 1}}],
    }
    everything = config(
        create={"schedule": "0 3 * * *"},
        copy_automated=True,
        share={"accounts": ["111122223333"], "unshare_after": "1d"},
        retention={"keep_last": 1},
        verify=verify,
    )
    assert actions_of(iam_policy(everything)) == declared_iam_actions()
    assert set(permissions.REGISTRY) >= {
        "observe",
        "tag",
        "create",
        "copy",
        "share",
        "revoke",
        "delete",
    }


def test_cli_prints_the_policy_as_json_and_refuses_bad_options(tmp_path: Path):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "snapworker", "iam-policy", "-c", str(EXAMPLE), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = cli("--account", "123456789012")
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc == iam_policy(load_config(EXAMPLE), account="123456789012")
    star = json.loads(cli("--region", "*").stdout)
    assert all(
        re.fullmatch(r"\*|arn:aws:redshift:\*:\*:.*", r)
        for s in star["Statement"]
        for r in resources(s)
    )
    for bad in (("--account", "12345"), ("--region", "Mars"), ("--policy", "nope")):
        r = cli(*bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (bad, r.stderr)
        assert bad[0].lstrip("-") in r.stderr or "nope" in r.stderr


# -- every call a config makes on a path is allowed by its policy (issue 16, defect 2) ---------

ACCOUNT = "123456789012"
FIRE = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


def allowed(doc: dict[str, Any], action: str, arn: str) -> bool:
    """Whether some statement allows ``action`` on ``arn`` (IAM's ``*`` and ``?``; the
    conditions, on tag keys only, are left aside)."""
    for stmt in statements_for(doc, action):
        if any(fnmatch.fnmatchcase(arn, pattern) for pattern in resources(stmt)):
            return True
    return False


def requests(gw: FakeGateway) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs the recorded gateway calls need."""

    def arn(kind: str, name: str) -> str:
        return f"arn:aws:redshift:us-east-1:{ACCOUNT}:{kind}:{name}"

    out: list[tuple[str, str]] = []
    for op, *args in gw.calls:
        act = f"redshift:{op}"
        if op == "GetClusterCredentials":
            cluster, user, db, groups, auto_create = args
            user_arn = arn("dbuser", f"{cluster}/{user.lower()}")
            out += [(act, user_arn), (act, arn("dbname", f"{cluster}/{db}"))]
            out += [("redshift:JoinGroup", arn("dbgroup", f"{cluster}/{g}")) for g in groups]
            if auto_create:
                out.append(("redshift:CreateClusterUser", user_arn))
        elif op == "RestoreFromClusterSnapshot":
            scratch, snapshot, source = args
            out += [(act, arn("cluster", scratch)), (act, arn("snapshot", f"{source}/{snapshot}"))]
        elif op in ("DescribeClusters", "DeleteCluster", "CreateTags") and args[0] not in gw.snaps:
            out.append((act, arn("cluster", args[0])))  # (CreateTags: a cluster's tags)
        elif op == "CreateClusterSnapshot":
            snapshot, cluster = args
            out += [(act, arn("cluster", cluster)), (act, arn("snapshot", f"{cluster}/{snapshot}"))]
        else:
            raise AssertionError(f"no ARN known for {op}: extend requests()")
    return out


def verify_config(record_before_snapshot: bool) -> Config:
    verify: dict[str, Any] = {
        "schedule": "0 5 * * 0",
        "connect": {"db_user": "Snapworker-Verify", "db_groups": ["readers"], "auto_create": True},
        "checks": [{"name": "rows", "sql": "select count(*) from t", "expect": {"min": 1}}],
    }
    if record_before_snapshot:
        verify["record_before_snapshot"] = [{"name": "rows", "sql": "select count(*) from t"}]
    return config(create={"schedule": "0 3 * * *"}, copy_automated=False, verify=verify)


@pytest.mark.parametrize("figures", [False, True], ids=["drill", "drill+figures"])
def test_every_call_of_the_verify_paths_is_allowed(
    figures: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create (which reads the figures on the live cluster first, with
    record_before_snapshot) and a restore drill, on the shared fakes: each call they make is
    allowed by the generated policy; without record_before_snapshot no db credentials are
    granted outside the scratch clusters."""
    cfg = verify_config(figures)
    pol = cfg.policies[0]
    doc = iam_policy(cfg, account=ACCOUNT)
    rows: dict[str, QueryOutcome] = {"rows": ([(7,)], None)}
    monkeypatch.setattr(database, "run_queries", lambda params, queries: rows)
    gw = FakeGateway(clusters=[Cluster("prod-a", "available")], account=ACCOUNT)
    store = FakeStore()
    ex = Executor(gw, store, 1, {pol.name: pol}, State(), lambda: FIRE, ACCOUNT)
    sid = ids.create_snapshot_id(pol.name, "prod-a", FIRE)
    create = Action(pol.name, "prod-a", "create", sid, "due", fire_time=FIRE)
    assert ex.run_one(create).ok
    assert ("GetClusterCredentials" in gw.ops()) is figures
    ctx = DrillContext(gw, store, 1, {pol.name: pol}, lambda: FIRE)
    drill = Action(pol.name, "prod-a", "verify", sid, "due", fire_time=FIRE)
    assert run_drill(ctx, drill, connector=lambda params, queries: rows) == "passed"

    needed = requests(gw)
    assert {act for act, _ in needed} >= {
        "redshift:RestoreFromClusterSnapshot",
        "redshift:GetClusterCredentials",
        "redshift:JoinGroup",
        "redshift:CreateClusterUser",
        "redshift:DeleteCluster",
    }
    refused = [(act, arn) for act, arn in needed if not allowed(doc, act, arn)]
    assert not refused, f"calls the generated policy does not allow: {refused}"
    creds = [r for s in statements_for(doc, "redshift:GetClusterCredentials") for r in resources(s)]
    live = [r for r in creds if ":swv-*/" not in r]
    assert bool(live) is figures, live  # nothing more than the config needs
