"""The fleet's configuration (``targets``, ``organization``, ``fleet``, a policy's
``targets``), through the real CLI: ``snapworker validate`` names the file, the line, the
target or policy and the field of every mistake (exit 2), warns about a policy glob that
matches no target and a target no policy applies to (exit 0), and stays import-light."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from snapworker.config import load_config
from snapworker.core.targets import DEFAULT_TARGET, Pair

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "config" / "fleet.yaml"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapworker", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return cli("validate", "-c", "c.yaml", cwd=tmp_path)


def test_the_fleet_example_loads_with_the_issue_names() -> None:
    cfg = load_config(FLEET)
    assert cfg.is_fleet
    assert [t.name for t in cfg.targets or ()] == ["home", "dr-a"]
    assert cfg.static_pairs() == [
        Pair("home", "us-east-1"),
        Pair("dr-a", "us-east-1", "210987654321", cfg.targets[1].role_arn, "sw-ext-a"),  # type: ignore[index]
        Pair("dr-a", "eu-west-1", "210987654321", cfg.targets[1].role_arn, "sw-ext-a"),  # type: ignore[index]
    ]
    assert cfg.organization is not None and cfg.organization.role_name == "snapworker"
    assert cfg.organization.accounts.include == ["*"]
    assert (cfg.fleet.max_parallel_targets, cfg.fleet.lease_seconds) == (8, 120)
    assert [p.name for p in cfg.policies_for("dr-a")] == ["prod-nightly", "everywhere-weekly"]
    assert [p.name for p in cfg.policies_for("home")] == ["everywhere-weekly"]
    r = cli("validate", "-c", str(FLEET))
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert "ok (2 policies)" in r.stdout


def test_no_targets_is_one_target_default_in_aws_region(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("aws: {region: eu-west-1}\npolicies: [{name: p}]\n")
    cfg = load_config(path)
    assert not cfg.is_fleet
    assert cfg.static_pairs() == [Pair(DEFAULT_TARGET, "eu-west-1")]


BAD = """\
targets:
  - name: bad_name
    regions: [us-east-1]
  - name: empty
    regions: []
  - name: twice
    regions: [eu-west-1, eu-west-1]
  - name: arn
    role_arn: arn:aws:iam::12:role/x
    regions: [us-east-1]
  - name: ext
    external_id: sw-ext
    regions: [us-west-2]
  - name: Twice
    regions: [ap-south-1]
organization:
  role_name: arn:aws:iam::123456789012:role/snapworker
  regions: [eu-west-1]
fleet:
  max_parallel_targets: 0
  lease_seconds: 3601
policies:
  - name: p1
    targets: []
"""


def test_every_fleet_mistake_is_named_with_file_line_target_and_field(tmp_path: Path) -> None:
    r = validate(tmp_path, BAD)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    expected = [
        "c.yaml:2: target 'bad_name': name: a target name is letters, digits and hyphens",
        "c.yaml:5: target 'empty': regions: must have at least 1 item",
        "c.yaml:7: target 'twice': regions[1]: duplicate region 'eu-west-1' (already at "
        "regions[0])",
        "c.yaml:9: target 'arn': role_arn: must be an IAM role ARN like "
        "'arn:aws:iam::210987654321:role/snapworker' (got 'arn:aws:iam::12:role/x')",
        "c.yaml:12: target 'ext': external_id: external_id is passed to AssumeRole: it needs "
        "a role_arn",
        "c.yaml:14: target 'Twice': name: duplicate target name 'Twice' (already at "
        "targets[2] as 'twice'; compared case-insensitively",
        "c.yaml:17: organization.role_name: must be an IAM role name (or path/name) like "
        "'snapworker', not an ARN",
        "c.yaml:20: fleet.max_parallel_targets: must be between 1 and 256 (got 0)",
        "c.yaml:21: fleet.lease_seconds: must be between 5 and 3600 (got 3601)",
        "c.yaml:24: policy 'p1': targets: an empty list would apply the policy to no target",
    ]
    for want in expected:
        assert any(line.startswith(want) for line in lines), (want, lines)
    assert len(lines) == len(expected), lines


@pytest.mark.parametrize(
    ("lease", "ok"), [(4, False), (5, True), (3600, True), (3601, False), ("120", False)]
)
def test_lease_seconds_is_5_to_3600(tmp_path: Path, lease: object, ok: bool) -> None:
    value = f'"{lease}"' if isinstance(lease, str) else lease
    r = validate(tmp_path, f"fleet: {{lease_seconds: {value}}}\npolicies: [{{name: p}}]\n")
    assert r.returncode == (0 if ok else 2), r.stderr
    if not ok:
        assert r.stderr.startswith("c.yaml:1: fleet.lease_seconds: must be")


def test_one_account_and_region_is_one_target(tmp_path: Path) -> None:
    r = validate(
        tmp_path,
        """\
targets:
  - name: a
    role_arn: arn:aws:iam::210987654321:role/one
    regions: [us-east-1, eu-west-1]
  - name: b
    role_arn: arn:aws:iam::210987654321:role/two
    regions: [eu-west-1]
  - name: own-1
    regions: [us-east-1]
  - name: own-2
    regions: [us-east-1]
policies: [{name: p}]
""",
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "c.yaml:7: target 'b': regions[0]: account 210987654321 in eu-west-1 is already "
        "covered by target 'a' (targets[0]): one account and region is one target's (its "
        "state and leases are keyed by account and region)",
        "c.yaml:11: target 'own-2': regions[0]: the worker's own credentials' account (no "
        "role_arn) in us-east-1 is already covered by target 'own-1' (targets[2]): one "
        "account and region is one target's (its state and leases are keyed by account and "
        "region)",
    ]


def test_a_12_digit_target_name_is_refused_beside_organization(tmp_path: Path) -> None:
    text = """\
targets:
  - name: "123456789012"
    regions: [us-east-1]
{org}policies: [{{name: p}}]
"""
    org = "organization: {role_name: snapworker, regions: [us-east-1]}\n"
    assert validate(tmp_path, text.format(org="")).returncode == 0
    r = validate(tmp_path, text.format(org=org))
    assert r.returncode == 2
    assert r.stderr.startswith(
        "c.yaml:2: target '123456789012': name: '123456789012' is a 12-digit account id: with "
        "organization, that is the name of a discovered account's target"
    )


def test_organization_regions_and_globs_are_checked(tmp_path: Path) -> None:
    r = validate(
        tmp_path,
        """\
organization:
  role_name: snapworker
  external_id: x
  regions: [us-east-1, us-east-1]
  accounts: {include: [" 1*"]}
policies: [{name: p}]
""",
    )
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert any(
        ln.startswith("c.yaml:3: organization.external_id: an external id is") for ln in lines
    )
    assert any(ln.startswith("c.yaml:4: organization.regions[1]: duplicate region") for ln in lines)
    assert any(ln.startswith("c.yaml:5: organization.accounts.include[0]: must be") for ln in lines)


def test_a_glob_matching_no_target_and_a_target_without_policy_are_warnings(
    tmp_path: Path,
) -> None:
    r = validate(
        tmp_path,
        """\
targets:
  - name: dr-a
    regions: [us-east-1]
  - name: home
    role_arn: arn:aws:iam::210987654321:role/snapworker
    regions: [us-east-1]
policies:
  - name: p1
    targets: ["dr-*", "dr_b"]
    retention: {keep_last: 2}
  - name: p2
    targets: ["nowhere-*"]
    retention: {keep_last: 2}
""",
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "warning: c.yaml:4: target 'home': name: no policy applies to this target (each "
        "policy's targets leave it out): the worker does nothing there",
        "warning: c.yaml:9: policy 'p1': targets[1]: 'dr_b' matches no target (the targets "
        "are 'dr-a', 'home')",
        "warning: c.yaml:12: policy 'p2': targets[0]: 'nowhere-*' matches no target (the "
        "targets are 'dr-a', 'home'); the policy applies to no target",
    ]


def test_without_targets_the_one_target_is_default(tmp_path: Path) -> None:
    r = validate(tmp_path, "policies:\n  - name: p\n    targets: [prod]\n")
    assert r.returncode == 0
    assert r.stderr == (
        "warning: c.yaml:3: policy 'p': targets[0]: 'prod' matches no target (without "
        "targets: or organization:, the one target is 'default'); the policy applies to no "
        "target\n"
    )
    assert validate(tmp_path, "policies: [{name: p, targets: ['def*']}]\n").stderr == ""


def test_with_organization_a_glob_that_may_name_an_account_is_left_alone(
    tmp_path: Path,
) -> None:
    r = validate(
        tmp_path,
        """\
organization: {role_name: snapworker, regions: [us-east-1]}
policies:
  - name: p
    targets: ["2109*", "[0-9]*", "dr-*"]
""",
    )
    assert r.returncode == 0
    assert r.stderr == (
        "warning: c.yaml:4: policy 'p': targets[2]: 'dr-*' matches no target (no target is "
        "listed, and a discovered account's name is its 12-digit id)\n"
    )


def test_aws_region_beside_targets_is_fine(tmp_path: Path) -> None:
    r = validate(
        tmp_path,
        "aws: {region: eu-west-1}\ntargets: [{name: a, regions: [us-east-1]}]\n"
        "policies: [{name: p}]\n",
    )
    assert (r.returncode, r.stderr) == (0, "")


PROBE = """\
import sys
from snapworker.entrypoints.cli import main
sys.argv = ["snapworker", "validate", "-c", sys.argv[1]]
try:
    main()
except SystemExit:
    pass
heavy = ("boto3", "botocore", "sqlalchemy", "sqlmodel", "alembic")
print("IMPORTED", *sorted({n.split(".")[0] for n in sys.modules if n.split(".")[0] in heavy}
                          | {n for n in sys.modules if n.startswith("snapworker.adapters")}),
      file=sys.stderr)
"""


def test_validate_of_a_fleet_imports_neither_boto3_nor_the_state_db(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    # The example's PostgreSQL URL is checked by SQLAlchemy: a SQLite one is read without.
    text = FLEET.read_text()
    path.write_text(
        "\n".join(
            "state_url: sqlite:////var/lib/snapworker/state.db"
            if ln.startswith("state_url")
            else ln
            for ln in text.splitlines()
        )
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "ok (2 policies)" in done.stdout, done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("IMPORTED")]
    assert line.split()[1:] == []


def test_the_schema_knows_the_fleet_keys() -> None:
    r = cli("schema")
    assert r.returncode == 0, r.stderr
    schema = json.loads(r.stdout)
    validator = jsonschema.Draft202012Validator(schema)
    fleet = yaml.safe_load(FLEET.read_text())
    assert list(validator.iter_errors(fleet)) == []
    for key in ("targets", "organization", "fleet"):
        assert schema["properties"][key]["description"]
    bad = copy.deepcopy(fleet)
    bad["targets"][0]["regionz"] = ["us-east-1"]
    assert any("regionz" in e.message for e in validator.iter_errors(bad))
    bad = copy.deepcopy(fleet)
    bad["organization"]["regions"] = "us-east-1"
    assert not validator.is_valid(bad)
    bad = copy.deepcopy(fleet)
    bad["fleet"]["lease_seconds"] = "120"
    assert not validator.is_valid(bad)
