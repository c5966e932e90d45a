"""The executor's deletion guards (``executor._guarded_delete``, ``Executor.check_deletable``
and the pure checks of ``core/guards.py``), each shown to hold on its own.

The planner decides from one observation; AWS may change before the delete runs (someone
shares the snapshot, tags it held, strips its tags, a revoke fails). The executor re-reads
the snapshot and refuses the delete on any doubt. Each test here starts from a delete the
planner really planned, changes one thing in "AWS" between plan and apply, and checks that
the snapshot is still there, that DeleteClusterSnapshot was never called, and that the
run reports the refusal. A baseline test shows the same setup does delete when nothing
changed, so the refusals are not an artefact of the harness.

The AWS side is the shared fake gateway (``tests/fakes.py``: in-process, exact call log);
the state DB is the real ``StateStore`` on a temporary SQLite file. One test runs the same
through boto3 against moto's in-process mock with snapworker's extension.

``test_each_guard_is_load_bearing`` (slow) removes each guard in turn from a copy of the
package and checks that some test of this file then fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from snapworker.adapters.aws.redshift import AwsError
from snapworker.adapters.store.repository import StateStore, open_store
from snapworker.core.model import SUPPORT_ALIAS, TAG_POLICY, Action, Inventory, Snapshot
from snapworker.core.planner import plan
from snapworker.service.executor import Executor, Outcome, apply
from snapworker.service.ports import Gateway
from tests.factories import NOW, automated, cluster, days_ago, owned_copy, policy
from tests.fakes import FakeGateway

ACCOUNT = "123456789012"
ACC = "111122223333"
POLICY = policy(retention={"max_age_days": 35, "keep_last": 1}, copy_automated=False)


def estate(accounts: tuple[str, ...] = (ACC, SUPPORT_ALIAS)) -> tuple[Snapshot, Snapshot]:
    """One fresh copy (kept by keep_last 1) and one 40 days old (expired), both shared."""
    new = owned_copy("prod-nightly", automated("prod-a", days_ago(1)), accounts)
    old = owned_copy("prod-nightly", automated("prod-a", days_ago(40)), accounts)
    return replace(new, owner_account=ACCOUNT), replace(old, owner_account=ACCOUNT)


def planned_actions(snaps: list[Snapshot]) -> tuple[Action, ...]:
    inv = Inventory({"prod-a": cluster("prod-a")}, {s.id: s for s in snaps})
    from snapworker.core.model import State

    p = plan([POLICY.core], inv, State(), NOW, account=ACCOUNT)
    return tuple(a for a in p.actions if a.kind in ("revoke", "delete"))


def gateway(snaps: list[Snapshot]) -> FakeGateway:
    return FakeGateway(snaps, account=ACCOUNT)


def run(tmp_path: Path, gateway: Gateway, actions: tuple[Action, ...]) -> list[Outcome]:
    store: StateStore = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    run_id = store.begin_run("run", os.getpid(), NOW)
    executor = Executor(
        gateway=gateway,
        store=store,
        run_id=run_id,
        policies={POLICY.name: POLICY},
        state=store.load_state(),
        clock=lambda: NOW,
        account=ACCOUNT,
    )
    try:
        return apply(actions, executor)
    finally:
        store.close()


def delete_outcome(outcomes: list[Outcome]) -> Outcome:
    (out,) = [o for o in outcomes if o.action.kind == "delete"]
    return out


def assert_not_deleted(gw: FakeGateway, snap: Snapshot, out: Outcome, why: str) -> None:
    assert ("DeleteClusterSnapshot", snap.id) not in gw.calls
    assert snap.id in gw.snaps
    assert not out.ok and out.outcome in ("refused", "skipped")
    assert why in (out.error or ""), out.error


# -- the baseline: nothing changed, the expired snapshot goes ---------------------------


def test_baseline_revokes_every_account_then_deletes(tmp_path: Path) -> None:
    new, old = estate()
    actions = planned_actions([new, old])
    assert [(a.kind, a.snapshot) for a in actions][-1] == ("delete", old.id)
    gw = gateway([new, old])
    outcomes = run(tmp_path, gw, actions)
    assert all(o.ok for o in outcomes), outcomes
    assert old.id not in gw.snaps and new.id in gw.snaps
    mutations = [c for c in gw.calls if c[0] != "DescribeClusterSnapshots"]
    assert mutations == [
        ("RevokeSnapshotAccess", old.id, ACC),
        ("RevokeSnapshotAccess", old.id, SUPPORT_ALIAS),
        ("DeleteClusterSnapshot", old.id),
    ]
    # the re-read happens after the revokes, right before the delete
    assert gw.calls.index(("DescribeClusterSnapshots", old.id)) > gw.calls.index(
        ("RevokeSnapshotAccess", old.id, ACC)
    )


# -- _guarded_delete ------------------------------------------------------------------------


def test_a_failed_revoke_skips_the_delete(tmp_path: Path) -> None:
    new, old = estate()
    gw = gateway([new, old])
    gw.fail[("RevokeSnapshotAccess", old.id)] = AwsError(
        "RevokeSnapshotAccess", "AccessDenied", "not allowed", old.id
    )
    out = delete_outcome(run(tmp_path, gw, planned_actions([new, old])))
    assert_not_deleted(gw, old, out, "a revoke of this snapshot failed")
    assert ("DescribeClusterSnapshots", old.id) not in gw.calls  # skipped before even re-reading


def test_an_error_on_the_re_read_refuses_the_delete(tmp_path: Path) -> None:
    new, old = estate(accounts=())
    gw = gateway([new, old])
    gw.fail["DescribeClusterSnapshots"] = AwsError(
        "DescribeClusterSnapshots", "AccessDenied", "no", old.id, 403
    )
    out = delete_outcome(run(tmp_path, gw, planned_actions([new, old])))
    assert_not_deleted(gw, old, out, "AccessDenied")


def test_a_snapshot_already_gone_is_recorded_not_deleted_again(tmp_path: Path) -> None:
    new, old = estate(accounts=())
    actions = planned_actions([new, old])
    gw = gateway([new])  # someone deleted it between plan and apply
    out = delete_outcome(run(tmp_path, gw, actions))
    assert out.ok and out.outcome == "already-absent"
    assert ("DeleteClusterSnapshot", old.id) not in gw.calls


# -- Executor.check_deletable: AWS changed between plan and apply -------------------------


def test_shared_again_after_the_plan_is_not_deleted(tmp_path: Path) -> None:
    new, old = estate(accounts=(ACC,))
    actions = planned_actions([new, old])
    # between plan and apply, someone shares it with another account
    gw = gateway([new, replace(old, accounts=(ACC, "444455556666"))])
    out = delete_outcome(run(tmp_path, gw, actions))
    assert_not_deleted(gw, old, out, "still authorized for 444455556666")


def test_held_after_the_plan_is_not_deleted(tmp_path: Path) -> None:
    new, old = estate(accounts=())
    actions = planned_actions([new, old])
    held = replace(old, tags={**old.tags, POLICY.hold_tag: "legal"})
    gw = gateway([new, held])
    out = delete_outcome(run(tmp_path, gw, actions))
    assert_not_deleted(gw, old, out, "is held")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: replace(s, tags={}), id="tags-removed"),
        pytest.param(lambda s: replace(s, tags={**s.tags, TAG_POLICY: "other"}), id="other-policy"),
        pytest.param(lambda s: replace(s, owner_account="999999999999"), id="other-account"),
    ],
)
def test_no_longer_provably_owned_is_not_deleted(tmp_path: Path, change: Any) -> None:
    new, old = estate(accounts=())
    actions = planned_actions([new, old])
    gw = gateway([new, change(old)])
    out = delete_outcome(run(tmp_path, gw, actions))
    assert_not_deleted(gw, old, out, "is not owned by policy prod-nightly")


def test_an_automated_snapshot_is_never_deleted(tmp_path: Path) -> None:
    new, old = estate(accounts=())
    actions = planned_actions([new, old])
    gw = gateway([new, replace(old, type="automated")])
    out = delete_outcome(run(tmp_path, gw, actions))
    assert_not_deleted(gw, old, out, "automated snapshot")


@pytest.mark.parametrize("status", ["creating", "copying", "deleting", "failed"])
def test_a_snapshot_not_available_is_not_deleted(tmp_path: Path, status: str) -> None:
    new, old = estate(accounts=())
    actions = planned_actions([new, old])
    gw = gateway([new, replace(old, status=status)])
    out = delete_outcome(run(tmp_path, gw, actions))
    assert_not_deleted(gw, old, out, "not available")


def test_the_refusal_is_journalled_and_nothing_recorded_as_deleted(tmp_path: Path) -> None:
    new, old = estate(accounts=(ACC,))
    actions = planned_actions([new, old])
    gw = gateway([new, replace(old, accounts=(ACC, "444455556666"))])
    run(tmp_path, gw, actions)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        state = store.load_state()
        assert old.id not in state.owned or state.owned[old.id].deleted_at is None
    finally:
        store.close()


# -- a copy whose target id someone else took between plan and apply ---------------------


def test_a_taken_copy_target_is_not_adopted_tagged_or_recorded(tmp_path: Path) -> None:
    source = replace(automated("prod-a", days_ago(1)), owner_account=ACCOUNT)
    pol = policy(copy_automated=True, share={"accounts": []})
    inv = Inventory({"prod-a": cluster("prod-a")}, {source.id: source})
    from snapworker.core.model import State

    (copy,) = plan([pol.core], inv, State(), NOW, account=ACCOUNT).actions
    assert copy.kind == "copy"
    squatter = Snapshot(copy.snapshot, "prod-a", "manual", "available", NOW, {"owner": "dba"})
    gw = gateway([source, squatter])
    (out,) = run(tmp_path, gw, (copy,))
    assert not out.ok and "does not own" in (out.error or "")
    assert gw.snaps[copy.snapshot] == squatter  # no tag written
    assert not [c for c in gw.calls if c[:2] == ("CreateTags", copy.snapshot)]
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:  # not recorded as owned: a later run must not treat it as the worker's
        assert copy.snapshot not in store.load_state().owned
    finally:
        store.close()


# -- the same through boto3, against moto's in-process mock ---------------------------------


def test_moto_shared_between_plan_and_apply_is_revoked_but_not_deleted(tmp_path: Path) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    from snapworker.adapters.aws.redshift import RedshiftGateway
    from snapworker.config import RetryConfig
    from snapworker.sandbox import moto_ext

    with mock_aws():
        moto_ext.install()
        try:
            client = boto3.client("redshift", region_name="us-east-1")
            client.create_cluster(
                ClusterIdentifier="prod-a",
                NodeType="ra3.xlplus",
                MasterUsername="admin",
                MasterUserPassword="Passw0rd-test",
            )
            be = moto_ext.backend(ACCOUNT, "us-east-1")
            new, old = estate(accounts=(ACC,))
            for s in (new, old):
                moto_ext.add_manual_snapshot(
                    be,
                    "prod-a",
                    s.id,
                    create_time=s.create_time,
                    tags=dict(s.tags),
                    accounts=list(s.accounts),
                )
            gw = RedshiftGateway(client, RetryConfig(attempts=1), sleep=lambda _: None)
            actions = planned_actions([new, old])
            assert [a.kind for a in actions] == ["revoke", "delete"]
            # after the plan, someone shares the expired snapshot with the support alias
            client.authorize_snapshot_access(
                SnapshotIdentifier=old.id,
                SnapshotClusterIdentifier="prod-a",
                AccountWithRestoreAccess=SUPPORT_ALIAS,
            )
            outcomes = run(tmp_path, gw, actions)
            assert outcomes[0].ok  # the planned revoke ran
            out = delete_outcome(outcomes)
            assert not out.ok and "still authorized for amazon-redshift-support" in (
                out.error or ""
            )
            left = client.describe_cluster_snapshots(SnapshotIdentifier=old.id)["Snapshots"]
            assert [s["SnapshotIdentifier"] for s in left] == [old.id]
            assert moto_ext.authorized_accounts(be, old.id) == [SUPPORT_ALIAS]
        finally:
            moto_ext.uninstall()


# -- mutation check: every guard is load-bearing --------------------------------------------

EXECUTOR = "snapworker/service/executor.py"
GUARDS_PY = "snapworker/core/guards.py"
GUARDS = {
    # name: (the file, a regex on its source, a replacement that disables the guard)
    "revoke-failed": (EXECUTOR, r"if revoke_failed:\n", "if False:\n"),
    "re-read-error": (
        EXECUTOR,
        r"except \(AwsError, Refused\) as e:\n        return Outcome\(action, False, .refused.",
        'except ZeroDivisionError as e:\n        return Outcome(action, False, "refused"',
    ),
    "refusal-raised": (EXECUTOR, r"if why is not None:\n", "if False:\n"),
    "automated": (GUARDS_PY, r'if snap\.type != "manual":', "if False:"),
    "owned": (GUARDS_PY, r"if not owned_by\(snap, policy, state, account, renames\):", "if False:"),
    "held": (GUARDS_PY, r"if hold_tag in snap\.tags:", "if False:"),
    "authorized": (
        GUARDS_PY,
        r"if snap\.accounts:\n        return",
        "if False:\n        return",
    ),
    "adopt-existing": (
        GUARDS_PY,
        r"return snap is not None and snap\.tags != \{\} and owned_by\(.*\)",
        "return snap is not None",
    ),
    "available": (
        GUARDS_PY,
        r"if not snap\.available:\n        return",
        "if False:\n        return",
    ),
}


SELECT = ("-m", "not slow", f"tests/{Path(__file__).name}")


@pytest.mark.slow
@pytest.mark.parametrize("guard", ["none (control)", *sorted(GUARDS)])
def test_each_guard_is_load_bearing(tmp_path: Path, guard: str, record_property: Any) -> None:
    """Remove one guard from a copy of the project: some test of this file must fail. The
    control (nothing removed) must pass, so a failure is the guard's, not the copy's."""
    root = Path(__file__).resolve().parent.parent
    copy = tmp_path / "mutant"
    shutil.copytree(
        root / "snapworker", copy / "snapworker", ignore=shutil.ignore_patterns("__pycache__")
    )
    (copy / "tests").mkdir()
    for name in ("__init__.py", "conftest.py", "factories.py", "fakes.py", Path(__file__).name):
        shutil.copy(root / "tests" / name, copy / "tests" / name)
    shutil.copy(root / "pyproject.toml", copy / "pyproject.toml")
    shutil.copytree(root / "migrations", copy / "migrations")  # the store applies them
    target = copy / EXECUTOR
    if guard in GUARDS:
        path, pattern, replacement = GUARDS[guard]
        mutated, n = re.subn(pattern, replacement, (copy / path).read_text())
        assert n == 1, f"guard {guard!r} not found in {path}: update GUARDS"
        (copy / path).write_text(mutated)
    env = dict(os.environ, PYTHONPATH=str(copy))
    where = subprocess.run(
        [sys.executable, "-c", "import snapworker.service.executor as a; print(a.__file__)"],
        env=env,
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.strip() == str(target), "the copy is not the package under test"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *SELECT],
        env=env,
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if guard not in GUARDS:
        assert r.returncode == 0, f"the unmodified copy fails:\n{r.stdout}"
        return
    assert r.returncode == 1, f"guard {guard!r} removed, yet every test passed:\n{r.stdout}"
    failed = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("FAILED ")]
    caught = ", ".join(failed) or r.stdout.strip().splitlines()[-1]
    print(f"guard {guard}: removed -> {caught}")
    record_property("figure", f"[guards] guard '{guard}' removed: caught by {caught}")
