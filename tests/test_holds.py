"""Holds, explain and the drift record, in process (no subprocess, no moto): what
``hold``/``release`` refuse and change, what ``explain`` says for the cases the end-to-end
tests do not reach, and how ``latest_drift`` picks the run whose view ``status`` shows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snapworker.adapters.store.repository import DriftItem, StateStore, open_store
from snapworker.config import Config
from snapworker.core.explain import UnknownSnapshot, explain
from snapworker.core.model import GrantRecord, Inventory, OwnedRecord, Snapshot, State
from snapworker.service.holds import HoldRefused, find_target, hold, release
from snapworker.service.tick import Runtime
from tests import factories
from tests.factories import NOW, days_ago
from tests.fakes import FakeGateway, FakeStore

ACC = "111122223333"
OTHER = "444455556666"


def estate(*snaps: Snapshot) -> Inventory:
    return factories.inventory([factories.cluster("prod-a")], snaps)


def copy_of(age: float, policy: str = "prod-nightly", **extra: str) -> Snapshot:
    src = factories.automated("prod-a", days_ago(age))
    return factories.owned_copy(policy, src, [], extra_tags=extra, copy_time=days_ago(age))


# -------------------------------------------------------------------------- find_target


def test_find_target_refuses_unknown_automated_unowned_and_orphaned_snapshots() -> None:
    pol = factories.policy()
    auto = factories.automated("prod-a", days_ago(1))
    lookalike = factories.unowned(copy_of(1).id.replace("sw-", "sw-x"), "prod-a", days_ago(1))
    orphan = copy_of(2, policy="retired")
    inv = estate(auto, lookalike, orphan)
    cases = {
        "nope": "no snapshot 'nope'",
        auto.id: "is an automated snapshot",
        lookalike.id: "is not owned by snapworker",
        orphan.id: "owned by policy 'retired', which the config does not have",
    }
    for sid, message in cases.items():
        with pytest.raises(HoldRefused, match=message.replace("(", r"\(")):
            find_target(sid, [pol], inv, State(), None)


def test_find_target_uses_the_owning_policys_hold_tag() -> None:
    a = factories.policy("prod-nightly")
    b = factories.policy("prod-legal", hold_tag="legal-hold")
    snap = copy_of(1, policy="prod-legal")
    target = find_target(snap.id, [a, b], estate(snap), State(), None)
    assert (target.policy.name, target.tag, target.current_reason) == (
        "prod-legal",
        "legal-hold",
        None,
    )


# ---------------------------------------------------------------- hold / release, faked AWS


class QuietLog:
    def info(self, *args: Any, **kw: Any) -> None:
        pass


def runtime(*snaps: Snapshot, **policy: Any) -> Runtime[FakeStore]:
    """The shared fakes; the gateway only records, so each command sees the same estate."""
    cfg = Config(policies=[factories.policy(**policy)])
    gw = FakeGateway(snaps, [factories.cluster("prod-a")], record_only=True)
    return Runtime(cfg, gw, FakeStore(), lambda: NOW, QuietLog())


def fake(rt: Runtime[FakeStore]) -> FakeGateway:
    assert isinstance(rt.gateway, FakeGateway)
    return rt.gateway


def calls(rt: Runtime[FakeStore]) -> list[tuple[Any, ...]]:
    return fake(rt).calls


def test_hold_and_release_change_only_what_they_must() -> None:
    free, held = copy_of(1), copy_of(2, **{"snapworker:hold": "case 7"})
    rt = runtime(free, held)
    assert hold(rt, free.id, "  case 9 ").startswith(f"held {free.id}")
    assert "already held" in hold(rt, held.id, "case 7")
    assert "(was: case 7)" in hold(rt, held.id, "case 8")
    assert "is not held" in release(rt, free.id)
    assert release(rt, held.id).startswith(f"released {held.id}")
    assert calls(rt) == [
        ("CreateTags", free.id, {"snapworker:hold": "case 9"}),
        ("CreateTags", held.id, {"snapworker:hold": "case 8"}),
        ("DeleteTags", held.id, ["snapworker:hold"]),
    ]


@pytest.mark.parametrize(("reason", "message"), [("", "must not be empty"), ("x" * 257, "256")])
def test_a_bad_reason_is_refused_before_any_aws_call(reason: str, message: str) -> None:
    rt = runtime(copy_of(1))
    with pytest.raises(HoldRefused, match=message):
        hold(rt, copy_of(1).id, reason)
    assert calls(rt) == []


def test_fail_safe_period_is_suspended_while_held_and_restored_only_if_not_passed() -> None:
    young = copy_of(3, **{"snapworker:hold": "audit"})
    old = copy_of(40, **{"snapworker:hold": "audit"})
    rt = runtime(young, old, retention={"keep_last": 3, "fail_safe_days": 30})
    assert "set to -1" in hold(rt, young.id, "audit")
    assert "restored: ManualSnapshotRetentionPeriod 30 days" in release(rt, young.id)
    text = release(rt, old.id)
    assert "left indefinite" in text and "40 days old" in text
    assert calls(rt) == [
        ("ModifyClusterSnapshot", young.id, -1),
        ("DeleteTags", young.id, ["snapworker:hold"]),
        ("ModifyClusterSnapshot", young.id, 30),
        ("DeleteTags", old.id, ["snapworker:hold"]),
    ]


def test_a_hold_stops_aws_expiry_even_without_fail_safe_days_in_the_policy() -> None:
    snap = copy_of(3)
    snap = Snapshot(
        snap.id, "prod-a", "manual", "available", snap.create_time, snap.tags, (), None, 30
    )
    rt = runtime(snap)
    assert "release leaves it" in hold(rt, snap.id, "audit")
    assert calls(rt)[-1] == ("ModifyClusterSnapshot", snap.id, -1)


def test_a_hold_whose_aws_expiry_cannot_be_suspended_says_so_and_fails() -> None:
    from snapworker.adapters.aws.redshift import AwsError
    from snapworker.service.holds import HoldIncomplete

    snap = copy_of(3)
    rt = runtime(snap, retention={"keep_last": 3, "fail_safe_days": 30})

    def refuse(snapshot_id: str, days: int) -> None:
        raise AwsError(
            "ModifyClusterSnapshot", "InvalidClusterSnapshotState", "creating", snapshot_id
        )

    fake(rt).set_retention = refuse  # type: ignore[method-assign]
    with pytest.raises(HoldIncomplete) as err:
        hold(rt, snap.id, "audit")
    text = str(err.value)
    assert text.startswith(f"held {snap.id}") and "NOT suspended" in text
    assert calls(rt) == [("CreateTags", snap.id, {"snapworker:hold": "audit"})]


# ------------------------------------------------------------------------------- explain


def test_explain_names_who_stands_for_a_bucket_and_what_a_hold_blocks() -> None:
    pol = factories.policy(
        retention={"keep_daily": 2, "keep_monthly": 1},
        share={"accounts": [ACC], "unshare_after": "1d"},
    )
    morning, evening = days_ago(3.4), days_ago(3.1)  # the same UTC day
    snaps = [copy_of(0.5)]
    for t in (morning, evening):
        src = factories.automated("prod-a", t)
        snaps.append(factories.owned_copy(pol.name, src, copy_time=t))
    old = copy_of(50, **{"snapworker:hold": "legal"})
    old = Snapshot(old.id, old.cluster, "manual", "available", old.create_time, old.tags, (OTHER,))
    inv = estate(*snaps, old)
    grant = GrantRecord(old.id, ACC, days_ago(49), days_ago(48))
    e = explain(snaps[1].id, [pol.core], inv, State(grants=(grant,)), NOW)
    assert e.owned and e.proof == "tags"
    rules = {r.rule: (r.keeps, r.why) for r in e.rules}
    assert rules["keep_daily 2"] == (
        False,
        f"{snaps[2].id} is the newest of day {evening:%Y-%m-%d} and stands for it",
    )
    assert rules["keep_monthly 1"][0] is False
    assert e.outcome == "delete"

    e = explain(old.id, [pol.core], inv, State(grants=(grant,)), NOW)
    assert e.hold_reason == "legal" and e.outcome.startswith("held")
    assert [(r.rule, r.keeps) for r in e.rules] == [
        ("keep_daily 2", False),
        ("keep_monthly 1", False),
    ]
    assert "is older than the 2 newest days with a snapshot" in e.rules[0].why
    by_account = {g.account: g.status for g in e.grants}
    assert by_account[ACC].startswith("revoked at ") and "not made again" in by_account[ACC]
    assert (
        by_account[OTHER].startswith("drift: ")
        and "held: snapworker revokes nothing" in (by_account[OTHER])
    )
    assert e.actions == ()


def test_explain_an_unknown_snapshot_says_what_the_state_db_knows() -> None:
    pol = factories.policy()
    gone = OwnedRecord("sw-gone", pol.name, "prod-a", "copy", days_ago(60), deleted_at=days_ago(5))
    with pytest.raises(UnknownSnapshot, match="snapworker deleted it at"):
        explain("sw-gone", [pol.core], estate(), State(owned={"sw-gone": gone}), NOW)


# ------------------------------------------------------------------------ drift records


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def test_latest_drift_is_the_view_of_the_newest_run_that_got_past_planning(
    store: StateStore,
) -> None:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    assert store.latest_drift() is None
    item = DriftItem("p", "c", "snap-1", OTHER, revoked=False)

    first = store.begin_run("run", 1, t)
    assert store.record_drift(first, [item], t) == 1
    store.finish_run(first, "ok", 0, 0, {}, None, t)
    seen = store.latest_drift()
    assert seen is not None and (seen.run_id, seen.items) == (first, (item,))

    broken = store.begin_run("run", 1, t + timedelta(hours=1))  # raised before planning
    store.finish_run(broken, "failed", 0, 0, {}, "AwsError: throttled", t + timedelta(hours=1))
    dry = store.begin_run("plan", 1, t + timedelta(hours=2))
    store.finish_run(dry, "ok", 0, 0, {}, None, t + timedelta(hours=2))
    running = store.begin_run("run", 1, t + timedelta(hours=3))
    seen = store.latest_drift()
    assert seen is not None and seen.run_id == first

    assert store.record_drift(running, [], t) == 0
    store.finish_run(running, "failed", 0, 1, {}, None, t + timedelta(hours=3))  # an action failed
    seen = store.latest_drift()
    assert seen is not None and (seen.run_id, seen.items) == (running, ())


# ------------------------------------- ModifyClusterSnapshot and the gateway, in-process moto


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The real gateway over a boto3 client on moto (with our extension), one cluster."""
    import boto3
    from moto import mock_aws

    from snapworker.adapters.aws.redshift import RedshiftGateway
    from snapworker.config import RetryConfig
    from snapworker.sandbox import moto_ext

    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        moto_ext.install()
        moto_ext.set_creating_polls(0)
        client = boto3.client("redshift", region_name="us-east-1")
        client.create_cluster(
            ClusterIdentifier="prod-a",
            NodeType="ra3.xlplus",
            ClusterType="single-node",
            MasterUsername="admin",
            MasterUserPassword="Passw0rd-test",
        )
        retry = RetryConfig(attempts=1, wait_initial_seconds=0, wait_max_seconds=0)
        yield RedshiftGateway(client, retry, sleep=lambda _s: None)


def test_retention_days_on_create_and_modify_cluster_snapshot(gateway: Any) -> None:
    from snapworker.adapters.aws.redshift import AwsError
    from snapworker.sandbox import moto_ext

    made = gateway.create_snapshot("sw-one", "prod-a", {"k": "v"}, retention_days=30)
    plain = gateway.create_snapshot("sw-two", "prod-a", {})
    assert (made.retention_period, plain.retention_period) == (30, -1)
    assert gateway.list_snapshots()["sw-one"].retention_period == 30

    gateway.set_retention("sw-one", -1)
    assert gateway.get_snapshot("sw-one", "prod-a").retention_period == -1
    gateway.set_retention("sw-one", 3653)
    assert gateway.get_snapshot("sw-one", "prod-a").retention_period == 3653

    be = moto_ext.backend()
    moto_ext.add_manual_snapshot(be, "prod-a", "sw-old", create_time=NOW - timedelta(days=40))
    auto = moto_ext.add_automated_snapshot(be, "prod-a", create_time=NOW - timedelta(days=1))
    failures = {
        ("sw-one", 0): "InvalidRetentionPeriodFault",
        ("sw-one", 3654): "InvalidRetentionPeriodFault",
        ("sw-old", 30): "InvalidRetentionPeriodFault",  # already passed, no Force
        ("sw-nope", 30): "ClusterSnapshotNotFound",
        (auto.snapshot_identifier, 30): "InvalidClusterSnapshotState",
    }
    for (sid, days), code in failures.items():
        with pytest.raises(AwsError) as err:
            gateway.set_retention(sid, days)
        assert err.value.code == code, (sid, days)
    assert gateway.get_snapshot("sw-old", "prod-a") is not None  # never deleted without Force
    gateway.client.modify_cluster_snapshot(
        SnapshotIdentifier="sw-old", ManualSnapshotRetentionPeriod=30, Force=True
    )
    assert gateway.get_snapshot("sw-old", "prod-a") is None  # Force: deleted at once


# ---------------------------------------------------------------------- the config key


def test_fail_safe_days_is_validated_and_is_not_a_retention_rule(tmp_path: Path) -> None:
    from snapworker.config import ConfigError, Retention, load_config

    assert Retention.model_validate({"fail_safe_days": 3653}).fail_safe_days == 3653
    assert not Retention.model_validate({"fail_safe_days": 30}).has_rules
    path = tmp_path / "snapworker.yaml"
    for bad in (0, 3654, '"30"'):
        path.write_text(
            "policies:\n  - name: p\n    retention:\n"
            f"      keep_last: 3\n      fail_safe_days: {bad}\n"
        )
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert ":5: policy 'p': retention.fail_safe_days:" in str(err.value), str(err.value)
