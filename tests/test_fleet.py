"""The fleet tick (``service.fleet``) on the shared fakes: each (target, region) pair is worked
on its own; a pair whose role cannot be assumed or that answers AccessDenied is reported and
skipped while every other pair completes; policies apply to the targets their globs name;
``--target`` selects pairs; a bounded pool runs them, and a slow pair holds up no other.

The same run against moto's server, through the CLI, is tests/test_fleet_e2e.py."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from snapworker.adapters.aws.redshift import AwsError
from snapworker.adapters.store.errors import StateStoreError
from snapworker.config import Config
from snapworker.core.model import Cluster, Snapshot
from snapworker.core.targets import Pair
from snapworker.service.fleet import UnknownTarget, fleet_tick, pair_order
from tests import factories
from tests.factories import NOW, automated, cluster, days_ago
from tests.fakes import FakeGateway, FakeTargets

HOME = Pair("home", "us-east-1", "111111111111")
DR_EAST = Pair("dr-a", "us-east-1", "222222222222", "arn:aws:iam::222222222222:role/sw")
DR_WEST = Pair("dr-a", "eu-west-1", "222222222222", "arn:aws:iam::222222222222:role/sw")
GONE = Pair("dr-b", "us-east-1", "333333333333", "arn:aws:iam::333333333333:role/sw")


TARGETS: list[dict[str, Any]] = [
    {"name": "home", "regions": ["us-east-1"]},
    {
        "name": "dr-a",
        "role_arn": "arn:aws:iam::222222222222:role/sw",
        "regions": ["us-east-1", "eu-west-1"],
    },
    {"name": "dr-b", "role_arn": "arn:aws:iam::333333333333:role/sw", "regions": ["us-east-1"]},
]


def _config(
    targets: list[dict[str, Any]] = TARGETS, policy: dict[str, Any] | None = None, **fleet: Any
) -> Config:
    return Config.model_validate(
        {
            "targets": targets,
            "fleet": fleet,
            "policies": [factories.policy("prod-nightly", copy_automated=True, **(policy or {}))],
        }
    )


def _estate(account: str) -> FakeGateway:
    """The same cluster and automated snapshot ids in every pair."""
    snaps: list[Snapshot] = [automated("prod-a", days_ago(1))]
    clusters: list[Cluster] = [cluster("prod-a")]
    return FakeGateway(snaps, clusters, account=account)


def _targets(config: Config, pairs: list[Pair], **kw: Any) -> FakeTargets:
    return FakeTargets(
        config, {p: _estate(p.account or "") for p in pairs}, clock=lambda: NOW, **kw
    )


def test_every_pair_is_worked_with_its_own_gateway_and_state() -> None:
    targets = _targets(_config(), [HOME, DR_EAST, DR_WEST])
    result = fleet_tick(targets.config, targets, clock=lambda: NOW)
    assert result.errors == []
    assert result.exit_code == 0
    for pair in (HOME, DR_EAST, DR_WEST):
        gw = targets.estates[pair]
        assert gw.ops().count("CopyClusterSnapshot") == 1, pair
        assert len(targets.stores[pair].load_state().owned) == 1, pair
    assert [pp.pair for pp in result.plans] == [HOME, DR_EAST, DR_WEST]  # the config's order


def test_a_refused_role_and_an_access_denied_region_are_named_and_the_rest_is_done() -> None:
    denied = AwsError("DescribeClusters", "AccessDenied", "not authorized in eu-west-1")
    targets = _targets(
        _config(),
        [HOME, DR_EAST, DR_WEST, GONE],
        refused={"dr-b": RuntimeError("cannot assume role arn:...:role/sw: AccessDenied: no")},
    )

    def refused_listing() -> dict[str, Cluster]:
        raise denied

    targets.estates[DR_WEST].list_clusters = refused_listing
    result = fleet_tick(targets.config, targets, clock=lambda: NOW)
    lines = [e.line() for e in result.errors]
    assert len(lines) == 2
    assert lines[0].startswith("error: dr-a/eu-west-1: ") and "AccessDenied" in lines[0]
    assert lines[1].startswith("error: dr-b/us-east-1: cannot assume role")
    assert result.exit_code == 1
    # No mutation where the pair failed; the others converged.
    assert "CopyClusterSnapshot" not in targets.estates[DR_WEST].ops()
    assert targets.estates[GONE].calls == []
    assert targets.estates[HOME].ops().count("CopyClusterSnapshot") == 1
    assert targets.estates[DR_EAST].ops().count("CopyClusterSnapshot") == 1
    # Each failure is recorded once, as a failed run of its pair naming the error: a pair
    # that never reached its tick by the fleet (record_failure), one that failed inside its
    # tick by the tick's own run.
    assert sorted((p.key, mode) for p, _, mode in targets.failures) == [("dr-b/us-east-1", "run")]
    runs = list(targets.stores[DR_WEST].runs.values())
    assert [(r["mode"], r["status"]) for r in runs] == [("run", "failed")], runs
    assert "AccessDenied" in str(runs[0].get("error")), runs


def test_a_dry_run_records_no_failure_and_claims_nothing() -> None:
    targets = _targets(_config(), [HOME, GONE], refused={"dr-b": RuntimeError("AccessDenied: no")})
    result = fleet_tick(targets.config, targets, dry_run=True, clock=lambda: NOW)
    assert [e.pair for e in result.errors] == [GONE]
    assert targets.failures == [] and targets.claims == []
    assert targets.estates[HOME].calls == []  # a dry run mutates nothing


def test_legacy_rows_go_to_the_first_pair_of_the_config_only() -> None:
    targets = _targets(_config(), [HOME, DR_EAST, DR_WEST])
    fleet_tick(targets.config, targets, clock=lambda: NOW)
    assert targets.claims == [("111111111111", "us-east-1")]


def test_a_policy_applies_to_the_targets_its_globs_name() -> None:
    cfg = _config(policy={"targets": ["dr-*"]})
    targets = _targets(cfg, [HOME, DR_EAST, DR_WEST])
    fleet_tick(cfg, targets, clock=lambda: NOW)
    assert targets.estates[HOME].calls == [] and targets.estates[HOME].listings == {}
    assert targets.estates[DR_WEST].ops().count("CopyClusterSnapshot") == 1


def test_target_globs_select_pairs_and_an_unknown_one_is_a_usage_error() -> None:
    targets = _targets(_config(), [HOME, DR_EAST, DR_WEST])
    result = fleet_tick(targets.config, targets, target_globs=["dr-*"], clock=lambda: NOW)
    assert [r.pair for r in result.pairs] == [DR_EAST, DR_WEST]
    assert targets.estates[HOME].listings == {}
    with pytest.raises(UnknownTarget, match=r"--target nope\* matches no target .*dr-a, home"):
        fleet_tick(targets.config, targets, target_globs=["nope*"], clock=lambda: NOW)


def test_a_slow_pair_holds_up_no_other() -> None:
    """Pair A's listing waits until pair B has finished: only a pool that runs B while A
    waits lets the tick end (the wait would otherwise time out)."""
    targets = _targets(_config(max_parallel_targets=2), [HOME, DR_EAST])
    b_done = threading.Event()
    waited: list[bool] = []
    slow = targets.estates[HOME]
    real = slow.list_clusters

    def slow_listing() -> dict[str, Cluster]:
        waited.append(b_done.wait(timeout=10))
        return real()

    slow.list_clusters = slow_listing
    fast_real = targets.stores[DR_EAST].finish_run

    def finished(*a: Any, **k: Any) -> None:
        fast_real(*a, **k)
        b_done.set()

    targets.stores[DR_EAST].finish_run = finished  # type: ignore[method-assign]
    result = fleet_tick(targets.config, targets, clock=lambda: NOW)
    assert waited == [True]
    assert result.exit_code == 0


def test_the_pool_is_bounded_by_max_parallel_targets() -> None:
    pairs = [Pair(f"t{i}", "us-east-1", f"{i:012d}") for i in range(6)]
    roles = [
        {"name": p.target, "role_arn": f"arn:aws:iam::{p.account}:role/sw", "regions": [p.region]}
        for p in pairs
    ]
    cfg = _config(roles, max_parallel_targets=2)
    targets = _targets(cfg, pairs)
    busy, peak, lock = [0], [0], threading.Lock()
    for gw in targets.estates.values():
        real = gw.list_clusters

        def listing(real: Any = real) -> dict[str, Cluster]:
            with lock:
                busy[0] += 1
                peak[0] = max(peak[0], busy[0])
            time.sleep(0.05)
            with lock:
                busy[0] -= 1
            return dict(real())

        gw.list_clusters = listing
    result = fleet_tick(cfg, targets, clock=lambda: NOW)
    assert result.exit_code == 0
    assert peak[0] == 2


def test_a_state_db_failure_is_not_isolated() -> None:
    targets = _targets(_config(), [HOME, DR_EAST])

    def broken() -> Any:
        raise StateStoreError("state DB sqlite:///x.db: disk I/O error")

    targets.stores[DR_EAST].load_state = broken  # type: ignore[method-assign]
    with pytest.raises(StateStoreError):
        fleet_tick(targets.config, targets, clock=lambda: NOW)


def test_replicas_start_on_different_pairs() -> None:
    pairs = [Pair(f"t{i}", "us-east-1") for i in range(12)]
    firsts = {pair_order(pairs, f"host:{pid}:x")[0] for pid in range(20)}
    assert len(firsts) > 3
    for holder in ("a", "b"):
        assert sorted(pair_order(pairs, holder)) == sorted(pairs)


def test_a_pair_throttled_past_its_retries_is_skipped_and_named() -> None:
    throttled = AwsError("DescribeClusterSnapshots", "Throttling", "Rate exceeded")
    targets = _targets(_config(), [HOME, DR_EAST])

    def listing(progress: Any = None) -> dict[str, Snapshot]:
        raise throttled

    targets.estates[DR_EAST].list_snapshots = listing
    result = fleet_tick(targets.config, targets, clock=lambda: NOW)
    assert [e.line() for e in result.errors] == [
        "error: dr-a/us-east-1: DescribeClusterSnapshots: Throttling: Rate exceeded"
    ]
    assert result.exit_code == 1
    assert targets.estates[HOME].ops().count("CopyClusterSnapshot") == 1
    assert "CopyClusterSnapshot" not in targets.estates[DR_EAST].ops()
