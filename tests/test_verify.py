"""Restore verification, unit level: the config's GetClusterCredentials constraints, which
drills are due, scratch cluster names, check evaluation, and the drill runner with the shared fake
gateway (``tests/fakes.py``: injected sleep, no AWS, no database server)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from snapworker.adapters.aws.redshift import STOPPING, AwsError
from snapworker.adapters.store.repository import StateStore, open_store
from snapworker.config import REDSHIFT_RESERVED_WORDS, ConfigError, Policy, load_config
from snapworker.core import planner
from snapworker.core.model import (
    ACTION_ORDER,
    Cluster,
    Inventory,
    State,
    VerificationRecord,
)
from snapworker.core.verify import (
    OwnedSnap,
    due_verifications,
    evaluate_check,
    is_valid_cluster_id,
    scratch_cluster_id,
    scratch_owner,
    scratch_tags,
)
from snapworker.service.drills import (
    ConnectParams,
    DrillContext,
    DrillError,
    VerificationFailed,
    cleanup_scratch,
    conninfo,
    run_drill,
    run_queries,
)
from tests import factories as f
from tests.fakes import PASSWORD, FakeGateway

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # a Sunday
WEEKLY = "0 5 * * 0"  # Sundays 05:00
FIRE = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


# ----------------------------------------------------------------------- config constraints

BASE = """\
policies:
  - name: p
    verify:
      schedule: "0 5 * * 0"
      connect:
{connect}
      checks:
        - name: c
          sql: "select 1"
          expect: {{min: 1}}
"""


def load(tmp_path: Path, connect: str) -> Any:
    path = tmp_path / "c.yaml"
    path.write_text(BASE.format(connect=connect))
    return load_config(path)


def problems(tmp_path: Path, connect: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, connect)
    return [str(p) for p in info.value.problems]


def test_a_valid_connect_block_loads_with_the_documented_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, "        db_user: snapworker-verify")
    c = cfg.policies[0].verify.connect
    assert (c.db_name, c.duration_seconds, c.auto_create, c.sslmode) == (
        "dev",
        900,
        False,
        "require",
    )
    assert c.db_groups == [] and c.host is None and c.port is None
    assert cfg.policies[0].verify.wait_minutes == 60


@pytest.mark.parametrize(
    ("line", "field", "says"),
    [
        ("db_user: ''", "db_user", "1 to 64 characters"),
        ("db_user: " + "a" * 65, "db_user", "1 to 64 characters (got 65)"),
        ("db_user: 1abc", "db_user", "must start with a letter"),
        ("db_user: '-abc'", "db_user", "must start with a letter"),
        ("db_user: 'IAM:abc'", "db_user", "colon or a slash"),
        ("db_user: 'a/b'", "db_user", "colon or a slash"),
        ("db_user: 'a b'", "db_user", "digits and _ + . @ - only"),
        ("db_user: 'caf\u00e9'", "db_user", "digits and _ + . @ - only"),
        ("db_user: select", "db_user", "reserved word"),
        ("db_user: User", "db_user", "reserved word"),
        ("db_user: public", "db_user", "cannot be PUBLIC"),
        ("db_name: " + "d" * 65, "db_name", "1 to 64"),
        ("db_name: table", "db_name", "reserved word"),
        ("db_name: 9dev", "db_name", "must start with a letter"),
        ("db_groups: [Analysts]", "db_groups[0]", "lowercase letters"),
        ("db_groups: [ok, 'x:y']", "db_groups[1]", "colon or a slash"),
        ("db_groups: [group]", "db_groups[0]", "reserved word"),
        ("duration_seconds: 899", "duration_seconds", "between 900 and 3600"),
        ("duration_seconds: 3601", "duration_seconds", "between 900 and 3600"),
        ("sslmode: required", "sslmode", "verify-full"),
        ("port: 0", "port", "between 1 and 65535"),
    ],
)
def test_connect_constraints_are_refused_with_file_line_policy_and_field(
    tmp_path: Path, line: str, field: str, says: str
) -> None:
    connect = "        db_user: snapworker-verify\n" if not line.startswith("db_user") else ""
    found = problems(tmp_path, connect + "        " + line)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'c.yaml'}:")
    assert f"policy 'p': verify.connect.{field}: " in found[0]
    assert says in found[0]


@pytest.mark.parametrize(
    "good",
    ["a", "snapworker-verify", "ops.user@corp", "a_b+c", "x" * 64, "Admin2", "selected"],
)
def test_db_user_accepts_what_the_api_reference_allows(tmp_path: Path, good: str) -> None:
    assert load(tmp_path, f"        db_user: '{good}'").policies[0].verify.connect.db_user == good


def test_the_reserved_word_list_is_redshifts() -> None:
    for word in ("AES128", "ALLOWOVERWRITE", "GLOBALDICT64K", "SYSDATE", "WALLET", "WITHOUT"):
        assert word in REDSHIFT_RESERVED_WORDS
    assert "START" not in REDSHIFT_RESERVED_WORDS  # documented as not reserved
    assert len(REDSHIFT_RESERVED_WORDS) > 150


def test_checks_need_exactly_one_expectation_and_figures_need_create(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        """\
policies:
  - name: p
    verify:
      schedule: "0 5 * * 0"
      wait_minutes: 0
      connect: {db_user: u}
      record_before_snapshot:
        - {name: rows, sql: "select count(*) from t"}
      checks:
        - {name: a, sql: "select 1", expect: {min: 1, equals: 1}}
        - {name: b, sql: "select 1", expect: {}}
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    shown = "\n".join(str(p) for p in info.value.problems)
    assert "verify.wait_minutes: must be between 1 and 1440" in shown
    assert "verify.checks[0].expect: give exactly one of min, equals, same_as_snapshot" in shown
    assert "verify.checks[1].expect: give exactly one" in shown

    path.write_text(
        """\
policies:
  - name: p
    verify:
      schedule: "0 5 * * 0"
      connect: {db_user: u}
      record_before_snapshot:
        - {name: rows, sql: "select count(*) from t"}
      checks:
        - {name: rows, sql: "select count(*) from t", expect: {same_as_snapshot: true}}
        - {name: other, sql: "select 1", expect: {same_as_snapshot: true}}
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    shown = "\n".join(str(p) for p in info.value.problems)
    assert "record_before_snapshot has no figure named 'other'" in shown


# ----------------------------------------------------------------------- scratch names


def test_scratch_ids_are_deterministic_valid_and_distinct() -> None:
    a = scratch_cluster_id("prod-nightly", "prod-a", FIRE)
    assert a == scratch_cluster_id("prod-nightly", "prod-a", FIRE)
    assert a.startswith("swv-prod-nightly-") and is_valid_cluster_id(a)
    others = {
        scratch_cluster_id("prod-nightly", "prod-b", FIRE),
        scratch_cluster_id("prod-nightly", "prod-a", FIRE + timedelta(days=7)),
        scratch_cluster_id("prod-nightlY", "prod-a", FIRE),
        a,
    }
    assert len(others) == 4
    long = scratch_cluster_id("P" + "-a" * 31, "c", FIRE)  # 63-character policy name
    assert is_valid_cluster_id(long) and len(long) <= 63
    with pytest.raises(ValueError):
        scratch_cluster_id("p", "c", datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("cid", "ok"),
    [
        ("a", True),
        ("a-1", True),
        ("A", False),
        ("1a", False),
        ("a--b", False),
        ("a-", False),
        ("a" * 63, True),
        ("a" * 64, False),
        ("a_b", False),
        ("", False),
    ],
)
def test_cluster_id_rules(cid: str, ok: bool) -> None:
    assert is_valid_cluster_id(cid) is ok


def test_only_tags_matching_the_id_prove_a_scratch_cluster() -> None:
    sid = scratch_cluster_id("p", "prod-a", FIRE)
    tags = scratch_tags("p", "prod-a", FIRE, "snap-1")
    assert scratch_owner(Cluster(sid, "available", tags)) == "p"
    assert scratch_owner(Cluster("prod-a", "available", tags)) is None  # tagged by mistake
    assert scratch_owner(Cluster(sid, "available", {**tags, "snapworker:scratch": "no"})) is None
    other_fire = scratch_tags("p", "prod-a", FIRE + timedelta(days=7), "snap-1")
    assert scratch_owner(Cluster(sid, "available", other_fire)) is None


# ----------------------------------------------------------------------- due logic


def owned(*snaps: tuple[str, str, int, bool]) -> dict[str, list[OwnedSnap]]:
    out: dict[str, list[OwnedSnap]] = {}
    for sid, cluster, age_days, available in snaps:
        out.setdefault(cluster, []).append(
            OwnedSnap(sid, cluster, NOW - timedelta(days=age_days), available)
        )
    return out


def record(status: str, fire: datetime = FIRE, cluster: str = "prod-a") -> VerificationRecord:
    return VerificationRecord(
        "p",
        cluster,
        "s",
        fire,
        scratch_cluster_id("p", cluster, fire),
        status,  # type: ignore[arg-type]
    )


def test_due_at_once_when_never_verified_restoring_the_newest_available() -> None:
    snaps = owned(
        ("old", "prod-a", 9, True), ("new", "prod-a", 1, True), ("wip", "prod-a", 0, False)
    )
    actions, notes = due_verifications("p", WEEKLY, "UTC", snaps, [], NOW)
    (a,) = actions
    assert (a.kind, a.snapshot, a.fire_time, a.cluster) == ("verify", "new", FIRE, "prod-a")
    assert "never verified" in a.reason and "2026-11-29 05:00Z" in a.reason
    assert scratch_cluster_id("p", "prod-a", FIRE) in a.reason
    assert notes == []


@pytest.mark.parametrize(
    ("records", "due"),
    [
        ([record("passed")], False),
        ([record("failed")], False),
        ([record("error")], False),  # a drill that errored counts for its fire time
        ([record("pending")], True),  # cut short by a crash: redone
        ([record("interrupted")], True),
        ([record("passed", FIRE - timedelta(days=7))], True),  # a new fire time since
        ([record("passed", cluster="prod-b")], True),
    ],
)
def test_due_once_per_fire_time(records: list[VerificationRecord], due: bool) -> None:
    actions, _ = due_verifications(
        "p", WEEKLY, "UTC", owned(("s", "prod-a", 1, True)), records, NOW
    )
    assert bool(actions) is due
    if due and records[0].status == "passed" and records[0].cluster == "prod-a":
        assert "last drill was for" in actions[0].reason


def test_no_available_snapshot_is_a_warning_not_an_action() -> None:
    actions, notes = due_verifications(
        "p", WEEKLY, "UTC", owned(("s", "prod-a", 1, False)), [], NOW
    )
    assert actions == [] and notes[0].level == "warning" and "no owned snapshot" in notes[0].message


def verify_policy(**over: Any) -> Policy:
    data: dict[str, Any] = {
        "select": {"clusters": ["*"]},
        "copy_automated": False,
        "share": {"accounts": []},
        "verify": {
            "schedule": WEEKLY,
            "connect": {"db_user": "u"},
            "checks": [{"name": "c", "sql": "select 1", "expect": {"min": 1}}],
        },
    }
    data.update(over)
    return f.policy("p", **data)


def test_planner_adds_the_drill_last_and_never_selects_scratch_clusters() -> None:
    pol = verify_policy(create={"schedule": "0 3 * * *"})
    snap = f.owned_create("p", "prod-a", NOW - timedelta(days=1))
    tagged = Cluster("swv-p-1234abcd", "available", {"snapworker:scratch": "true"})
    recorded_id = scratch_cluster_id("p", "prod-a", FIRE - timedelta(days=7))
    recorded = Cluster(recorded_id, "creating", {})
    inv = Inventory({c.id: c for c in (f.cluster("prod-a"), tagged, recorded)}, {snap.id: snap})
    state = State(verifications=(record("passed", FIRE - timedelta(days=7)),))
    plan = planner.plan([pol.core], inv, state, NOW)
    assert {a.cluster for a in plan.actions} == {"prod-a"}  # no create for scratch clusters
    assert [a.kind for a in plan.actions] == ["create", "verify"]
    assert plan.actions[-1].snapshot == snap.id
    assert ACTION_ORDER[-1] == "verify"
    scratch_notes = {n.cluster for n in plan.notes if "scratch cluster" in n.message}
    assert scratch_notes == {tagged.id, recorded_id}


def test_planner_never_restores_a_snapshot_it_deletes_in_the_same_plan() -> None:
    pol = verify_policy(retention={"max_age_days": 1})
    snap = f.owned_create("p", "prod-a", NOW - timedelta(days=5))
    inv = Inventory({"prod-a": f.cluster("prod-a")}, {snap.id: snap})
    plan = planner.plan([pol.core], inv, State(), NOW)
    assert [a.kind for a in plan.actions] == ["delete"]


# ----------------------------------------------------------------------- check evaluation


@pytest.mark.parametrize(
    ("kind", "target", "value", "ok"),
    [
        ("min", 1, 3, True),
        ("min", 3, 3, True),
        ("min", 4, 3, False),
        ("min", 1, Decimal("1.5"), True),
        ("min", 1, "2", True),
        ("min", 1, "abc", False),
        ("min", 1, None, False),
        ("min", 0.5, Decimal("0.25"), False),
        ("equals", 17.75, Decimal("17.75"), True),
        ("equals", 3, 3.0, True),
        ("equals", 3, Decimal("3.00"), True),
        ("equals", "eu", "eu", True),
        ("equals", "3", "3.0", False),  # strings compare as strings
        ("equals", True, True, True),
        ("equals", True, 1, False),  # a boolean is not a number
        ("equals", None, None, True),
        ("equals", 0, None, False),
    ],
)
def test_check_evaluation(kind: str, target: Any, value: Any, ok: bool) -> None:
    result = evaluate_check("c", kind, target, [(value,)])
    assert result.ok is ok
    assert result.as_dict()["name"] == "c"


def test_no_rows_fails_and_figures_compare_with_snapshot_time() -> None:
    assert evaluate_check("c", "min", 1, []).detail == "no rows"
    assert evaluate_check("c", "same_as_snapshot", None, [(3,)], {"c": 3}).ok
    assert not evaluate_check("c", "same_as_snapshot", None, [(4,)], {"c": 3}).ok
    missing = evaluate_check("c", "same_as_snapshot", None, [(4,)], {})
    assert not missing.ok and "no figure" in missing.detail


# ----------------------------------------------------------------------- the drill runner


@dataclass
class Context(DrillContext):
    """A drill context on the real state DB, whose records the tests read."""

    store: StateStore


def context(tmp_path: Path, gw: FakeGateway, **verify: Any) -> Context:
    spec: dict[str, Any] = {
        "schedule": WEEKLY,
        "wait_minutes": 1,
        "poll_seconds": 10,
        "connect": {"db_user": "u"},
        "checks": [
            {"name": "rows", "sql": "select count(*) from t", "expect": {"min": 1}},
            {"name": "flag", "sql": "select 'yes'", "expect": {"equals": "yes"}},
        ],
    }
    spec.update(verify)
    pol = verify_policy(verify=spec)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    return Context(gw, store, 1, {"p": pol}, lambda: NOW)


def drill_action() -> Any:
    actions, _ = due_verifications(
        "p", WEEKLY, "UTC", owned(("snap-1", "prod-a", 1, True)), [], NOW
    )
    return actions[0]


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append(("info", event, kw))

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append(("warning", event, kw))

    def error(self, event: str, **kw: Any) -> None:
        self.lines.append(("error", event, kw))


def connector(rows: dict[str, Any]) -> Any:
    seen: list[ConnectParams] = []

    def connect(params: ConnectParams, queries: Any) -> dict[str, Any]:
        seen.append(params)
        return {name: ([(rows[name],)], None) for name, _ in queries}

    connect.seen = seen  # type: ignore[attr-defined]
    return connect


def only(store: StateStore) -> Any:
    (v,) = store.verifications()
    return v


def test_drill_polls_with_the_injected_sleep_checks_and_deletes(tmp_path: Path) -> None:
    gw = FakeGateway(polls=2)
    ex = context(tmp_path, gw)
    conn = connector({"rows": 5, "flag": "yes"})
    log = Log()
    assert run_drill(ex, drill_action(), connector=conn, log=log) == "passed"
    expected = [
        "RestoreFromClusterSnapshot",
        "CreateTags",
        "DescribeClusters",
        "DescribeClusters",
        "DescribeClusters",
        "GetClusterCredentials",
        "DeleteCluster",
    ]
    assert gw.ops() == expected
    assert gw.sleeps == [10, 10]
    (params,) = conn.seen
    assert params.password == PASSWORD and params.host.endswith(".example")
    v = only(ex.store)
    assert v.status == "passed" and v.scratch_deleted_at is not None
    assert [c["ok"] for c in v.detail["checks"]] == [True, True]
    assert PASSWORD not in repr(params) and PASSWORD not in str(params)
    assert PASSWORD not in repr(log.lines)


def test_a_restore_that_never_finishes_errors_within_wait_minutes(tmp_path: Path) -> None:
    gw = FakeGateway(polls=10_000)
    ex = context(tmp_path, gw, wait_minutes=2, poll_seconds=30)
    log = Log()
    with pytest.raises(VerificationFailed, match="not available within 2 min"):
        run_drill(ex, drill_action(), connector=connector({}), log=log)
    assert len(gw.sleeps) == 4 and "GetClusterCredentials" not in gw.ops()
    assert gw.ops()[-1] == "DeleteCluster" and not gw.restored
    assert only(ex.store).status == "error"
    assert [e for lvl, e, _ in log.lines if lvl == "error"] == ["verification failed"]


def test_a_failed_check_fails_the_drill_and_still_deletes(tmp_path: Path) -> None:
    gw = FakeGateway(polls=0)
    ex = context(tmp_path, gw)
    with pytest.raises(VerificationFailed, match="check rows: expected >= 1, got 0"):
        run_drill(ex, drill_action(), connector=connector({"rows": 0, "flag": "yes"}), log=Log())
    assert gw.ops()[-1] == "DeleteCluster" and only(ex.store).status == "failed"


@pytest.mark.parametrize(
    "where", ["RestoreFromClusterSnapshot", "CreateTags", "GetClusterCredentials"]
)
def test_aws_errors_are_drill_errors_and_the_scratch_cluster_is_deleted(
    tmp_path: Path, where: str
) -> None:
    gw = FakeGateway(polls=0, fail={where: AwsError("Op", "InvalidParameterValue", "nope")})
    ex = context(tmp_path, gw)
    with pytest.raises(VerificationFailed, match="drill error"):
        run_drill(ex, drill_action(), connector=connector({}), log=Log())
    assert gw.ops()[-1] == "DeleteCluster" and not gw.restored
    v = only(ex.store)
    assert v.status == "error" and "InvalidParameterValue" in v.detail["error"]


def test_an_unexpected_exception_deletes_and_leaves_the_drill_to_redo(tmp_path: Path) -> None:
    gw = FakeGateway(polls=0)
    ex = context(tmp_path, gw)

    def boom(params: ConnectParams, queries: Any) -> Any:
        raise RuntimeError("unexpected")

    with pytest.raises(RuntimeError):
        run_drill(ex, drill_action(), connector=boom, log=Log())
    assert gw.ops()[-1] == "DeleteCluster"
    v = only(ex.store)
    assert v.status == "pending" and v.scratch_deleted_at is not None
    state = ex.store.load_state()
    actions, _ = due_verifications(
        "p", WEEKLY, "UTC", owned(("snap-1", "prod-a", 1, True)), state.verifications, NOW
    )
    assert actions, "a drill cut short is redone"


def test_a_stop_during_the_restore_wait_leaves_the_drill_to_redo(tmp_path: Path) -> None:
    def stopping(seconds: float) -> None:  # the daemon's sleep once SIGTERM came
        raise AwsError("Retry", STOPPING, "not retried: snapworker is stopping")

    gw = FakeGateway(polls=5)
    gw.sleep = stopping
    ex = context(tmp_path, gw)
    with pytest.raises(AwsError, match="stopping"):
        run_drill(ex, drill_action(), connector=connector({}), log=Log())
    assert gw.ops() == [
        "RestoreFromClusterSnapshot",
        "CreateTags",
        "DescribeClusters",
        "DeleteCluster",
    ]
    assert not gw.restored
    v = only(ex.store)
    assert v.status == "pending" and v.scratch_deleted_at is not None
    state = ex.store.load_state()
    actions, _ = due_verifications(
        "p", WEEKLY, "UTC", owned(("snap-1", "prod-a", 1, True)), state.verifications, NOW
    )
    assert actions, "a drill a stop cut short is redone, not counted as an error"


def test_a_failed_delete_is_left_to_cleanup_which_finishes_it(tmp_path: Path) -> None:
    gw = FakeGateway(fail={"DeleteCluster": AwsError("DeleteCluster", "InvalidClusterState", "")})
    ex = context(tmp_path, gw)
    log = Log()
    run_drill(ex, drill_action(), connector=connector({"rows": 1, "flag": "yes"}), log=log)
    assert only(ex.store).scratch_deleted_at is None
    assert any(e == "scratch cluster not deleted; the next run retries" for _, e, _ in log.lines)

    gw.fail.clear()
    scratch = only(ex.store).scratch_cluster
    decoy = Cluster("prod-z", "available", {"snapworker:scratch": "true", "snapworker:policy": "p"})
    inv = Inventory({scratch: Cluster(scratch, "available", {}), decoy.id: decoy}, {})
    state = ex.store.load_state()
    assert cleanup_scratch(gw, ex.store, inv, state, ["other"], lambda: NOW, log) == 0
    assert cleanup_scratch(gw, ex.store, inv, state, ["p"], lambda: NOW, log) == 1
    assert gw.ops().count("DeleteCluster") == 2 and only(ex.store).scratch_deleted_at is not None


def test_connection_errors_never_carry_the_password() -> None:
    params = ConnectParams("127.0.0.1", 1, "dev", "IAM:u", PASSWORD, "disable")
    with pytest.raises(DrillError) as info:
        run_queries(params, [("c", "select 1")])
    assert "cannot connect to 127.0.0.1:1/dev as IAM:u" in str(info.value)
    assert PASSWORD not in str(info.value) and info.value.__cause__ is None
    assert PASSWORD not in conninfo(params, with_password=False)
    assert f"password={PASSWORD}" in conninfo(params, with_password=True)
    assert "user=IAM:u" in conninfo(params, with_password=False)
    odd = ConnectParams("h", 1, "d", "u", "it's a secret", "require")
    assert "password='it\\'s a secret'" in conninfo(odd, with_password=True)


def test_the_example_config_loads() -> None:
    cfg = load_config(Path(__file__).resolve().parent.parent / "config" / "verify.yaml")
    spec = cfg.policies[0].verify
    assert spec is not None and [c.expect.kind for c in spec.checks] == [
        "equals",
        "same_as_snapshot",
        "min",
    ]
