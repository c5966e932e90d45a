"""The state DB of a fleet: every row keyed by (account, region), on SQLite and PostgreSQL.

The same snapshot id in two accounts or two regions names two snapshots; a store scoped to
one pair sees and changes only that pair's rows; the unscoped store's ``status`` reads show
every pair's; a state DB from before migration 0006 is carried over and its rows claimed by
one pair. (PostgreSQL runs skip when ``.ci/services`` has not started the test server.)
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapworker.adapters.store.drift import DriftItem
from snapworker.adapters.store.repository import ScopedStore, StateStore, open_store
from snapworker.adapters.store.schema import HEAD_REVISION
from snapworker.adapters.store.sizes import PolicySizes
from snapworker.core.model import Action, OwnedRecord
from tests.pg_support import pg_database  # noqa: F401  (a fixture: store_url on PostgreSQL)

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
A, B = "111111111111", "222222222222"


def action(snapshot: str = "snap-1", kind: str = "create", **kw: object) -> Action:
    return Action(
        policy="nightly",
        cluster="prod-a",
        kind=kind,  # type: ignore[arg-type]
        snapshot=snapshot,
        reason="schedule due",
        **kw,  # type: ignore[arg-type]
    )


def owned(sid: str = "snap-1") -> OwnedRecord:
    return OwnedRecord(
        snapshot_id=sid, policy="nightly", cluster="prod-a", made_for="create", data_time=T0
    )


def fill(pair: ScopedStore, grantee: str) -> int:
    """The same ids in every pair: an owned snapshot, a grant, a copied source, a pending
    journal entry, a drill, figures, and a finished run with drift and sizes."""
    pair.record_owned(owned(), at=T0)
    pair.record_grant("snap-1", grantee, T0)
    assert pair.record_copied_source("nightly", "rs:auto-1", "snap-1", T0) is True
    run = pair.begin_run("run", 1, T0)
    pair.journal_start(run, action(), T0, fence=7)
    pair.start_verification("nightly", "prod-a", "snap-1", T0, "sw-verify-1", T0)
    pair.record_figures("snap-1", "nightly", "prod-a", {"rows": grantee}, T0)
    pair.record_drift(run, [DriftItem("nightly", "prod-a", "snap-1", grantee)], T0)
    pair.record_sizes(run, [PolicySizes("nightly", 1, 1, float(len(grantee)), 1.0)], T0)
    pair.finish_run(run, "ok", 1, 0, {}, None, T0 + timedelta(minutes=1))
    return run


def test_the_same_ids_in_two_accounts_and_two_regions_are_different_snapshots(
    store: StateStore,
) -> None:
    pairs = {
        ("home", A, "us-east-1"): store.scoped("home", A, "us-east-1", batch="b1"),
        ("home", A, "eu-west-1"): store.scoped("home", A, "eu-west-1", batch="b1"),
        ("dr", B, "us-east-1"): store.scoped("dr", B, "us-east-1", batch="b1"),
    }
    grantee = {key: f"9999000000{i:02d}" for i, key in enumerate(pairs)}
    runs = {key: fill(pair, grantee[key]) for key, pair in pairs.items()}

    for key, pair in pairs.items():
        state = pair.load_state()
        assert list(state.owned) == ["snap-1"]
        assert [g.account for g in state.grants] == [grantee[key]]
        assert [(p.key, p.snapshot_id) for p in state.pending] == [(action().key, "snap-1")]
        assert [v.scratch_cluster for v in state.verifications] == ["sw-verify-1"]
        assert pair.copied_sources("nightly") == {"rs:auto-1"}
        assert pair.figures_for("snap-1") == {"rows": grantee[key]}
        drift = pair.latest_drift()
        assert drift is not None and drift.run_id == runs[key]
        assert [i.account for i in drift.items] == [grantee[key]]
        sizes = pair.latest_sizes()
        assert sizes is not None and [s.size_mb for s in sizes.items] == [12.0]
        assert [(j.run_id, j.fence) for j in pair.journal()] == [(runs[key], 7)]
        assert [r.id for r in pair.recent_runs()] == [runs[key]]

    # A change in one pair leaves the same ids of the others alone.
    home = pairs[("home", A, "us-east-1")]
    assert home.mark_deleted("snap-1", T0) is True
    assert home.record_revoke("snap-1", grantee[("home", A, "us-east-1")], T0) is True
    gone = home.record_gone(["snap-1"], [], T0)
    assert gone.snapshots == ()  # already deleted there
    assert home.record_copied_source("nightly", "rs:auto-1", "snap-2", T0) is False
    for pair in pairs.values():
        if pair is home:
            continue
        state = pair.load_state()
        assert state.owned["snap-1"].deleted_at is None
        assert [g.revoked_at for g in state.grants] == [None]
    # Nothing written through a pair lands in the legacy scope the unscoped store writes.
    assert store.load_state().owned == {}

    # The unscoped store's reads for `status`: every pair, each view naming its pair.
    summary = store.owned_summary()
    views = summary.owned["nightly"]["prod-a"]
    assert sorted((v.target, v.owner_account, v.region) for v in views) == sorted(pairs)
    assert sorted((g.target, g.owner_account, g.region) for g in summary.open_grants) == sorted(
        k for k in pairs if k != ("home", A, "us-east-1")
    )
    assert {(r.target, r.owner_account, r.region, r.batch) for r in store.recent_runs()} == {
        (*k, "b1") for k in pairs
    }
    assert {(j.target, j.owner_account, j.region) for j in store.journal()} == set(pairs)
    assert {(v.target, v.owner_account, v.region) for v in store.verifications()} == set(pairs)
    by_pair = store.latest_drift_by_pair()
    assert {(d.target, d.owner_account, d.region, d.run_id) for d in by_pair} == {
        (*k, runs[k]) for k in pairs
    }
    merged = store.latest_drift()
    assert merged is not None
    assert {(i.target, i.owner_account, i.region, i.account) for i in merged.items} == {
        (*k, grantee[k]) for k in pairs
    }
    sizes = store.latest_sizes()
    assert sizes is not None
    assert {(s.target, s.owner_account, s.region) for s in sizes.items} == set(pairs)


def test_pair_runs_are_the_last_finished_run_of_each_target_and_region(store: StateStore) -> None:
    home = store.scoped("home", A, "us-east-1")
    dr = store.scoped("dr", B, "us-east-1")
    first = home.begin_run("run", 1, T0)
    home.finish_run(first, "ok", 2, 0, {}, None, T0)
    second = home.begin_run("run", 1, T0 + timedelta(hours=1))
    home.finish_run(second, "failed", 0, 0, {}, "AccessDenied: no", T0 + timedelta(hours=1))
    home.begin_run("run", 1, T0 + timedelta(hours=2))  # still running: not a finished run
    failed = dr.begin_run("run", 1, T0)
    dr.finish_run(failed, "failed", 0, 0, {}, "cannot assume role", T0)
    dr.finish_run(dr.begin_run("plan", 1, T0 + timedelta(hours=3)), "ok", 0, 0, {}, None, T0)

    shown = [(r.target, r.region, r.id, r.status, r.error) for r in store.pair_runs()]
    assert shown == [
        ("dr", "us-east-1", failed, "failed", "cannot assume role"),
        ("home", "us-east-1", second, "failed", "AccessDenied: no"),
    ]
    assert [r.id for r in dr.pair_runs()] == [failed]


def test_claim_moves_the_legacy_rows_once(store: StateStore) -> None:
    # What a one-pair tick on the unscoped store writes: the legacy scope.
    store.record_owned(owned(), at=T0)
    store.record_grant("snap-1", "999900000001", T0)
    run = store.begin_run("run", 1, T0)
    store.journal_start(run, action(), T0)
    store.finish_run(run, "ok", 0, 0, {}, None, T0)
    home = store.scoped("home", A, "us-east-1")
    assert home.load_state().owned == {}

    assert store.claim_unscoped(A, "us-east-1", target="home") == 4
    assert store.claim_unscoped(A, "us-east-1", target="home") == 0
    state = home.load_state()
    assert list(state.owned) == ["snap-1"]
    assert [g.account for g in state.grants] == ["999900000001"]
    assert [p.snapshot_id for p in state.pending] == ["snap-1"]
    assert [(r.id, r.target, r.owner_account) for r in home.recent_runs()] == [(run, "home", A)]
    assert store.load_state().owned == {}


def test_a_claimed_row_whose_key_the_pair_already_has_stays_behind(store: StateStore) -> None:
    store.record_owned(owned(), at=T0)
    home = store.scoped("home", A, "us-east-1")
    home.record_owned(owned(), at=T0 + timedelta(hours=1))
    assert store.claim_unscoped(A, "us-east-1") == 0
    assert list(store.load_state().owned) == ["snap-1"]


def test_a_scoped_store_needs_an_account_and_a_region(store: StateStore) -> None:
    with pytest.raises(ValueError):
        store.scoped("home", "", "us-east-1")
    with pytest.raises(ValueError):
        store.claim_unscoped(A, "")


# ----------------------------------------------------------------- migration from 0005


def upgrade_to(url: str, revision: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from snapworker.adapters.store.schema import alembic_config

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


LEGACY_ROWS = (
    "INSERT INTO owned_snapshot (snapshot_id, policy, cluster, made_for, recorded_at, adopted)"
    " VALUES ('snap-1', 'nightly', 'prod-a', 'create', '2026-11-27 03:00:00+00:00', false)",
    "INSERT INTO owned_snapshot (snapshot_id, policy, cluster, made_for, recorded_at, adopted)"
    " VALUES ('snap-2', 'nightly', 'prod-a', 'copy', '2026-11-27 03:00:00+00:00', false)",
    'INSERT INTO "grant" (snapshot_id, account, granted_at)'
    " VALUES ('snap-1', '999900000001', '2026-11-27 03:00:00+00:00')",
    "INSERT INTO copied_source (policy, source_id, target_id, copied_at)"
    " VALUES ('nightly', 'rs:auto-1', 'snap-2', '2026-11-27 03:00:00+00:00')",
    "INSERT INTO run (mode, started_at, finished_at, status, actions_ok, actions_failed,"
    " api_calls, pid) VALUES ('run', '2026-11-27 03:00:00+00:00',"
    " '2026-11-27 03:01:00+00:00', 'ok', 1, 0, '{}', 1)",
    "INSERT INTO journal (run_id, key, policy, cluster, kind, snapshot_id, reason, status,"
    " started_at, attempts) VALUES (1, 'create:nightly:snap-3', 'nightly', 'prod-a',"
    " 'create', 'snap-3', 'due', 'pending', '2026-11-27 03:00:00+00:00', 1)",
    "INSERT INTO drift (run_id, policy, cluster, snapshot_id, account, seen_at, revoked)"
    " VALUES (1, 'nightly', 'prod-a', 'snap-1', '888800000001',"
    " '2026-11-27 03:01:00+00:00', false)",
    "INSERT INTO snapshot_figures (snapshot_id, policy, cluster, figures, recorded_at)"
    " VALUES ('snap-1', 'nightly', 'prod-a', '{\"rows\": 3}', '2026-11-27 03:00:00+00:00')",
    "INSERT INTO lease (name, holder, acquired_at, expires_at) VALUES ('policy:nightly',"
    " 'old', '2026-11-27 03:00:00+00:00', '2026-11-27 03:02:00+00:00')",
)


def test_a_0005_database_is_carried_over_and_claimed(store_url: str) -> None:
    if store_url.startswith("postgresql"):
        from tests import pg_support

        name = store_url.rsplit("/", 1)[1]
        with pg_support.connect(name, autocommit=True) as conn:
            tables = ", ".join(pg_support.STORE_TABLES)
            conn.execute(f"DROP TABLE IF EXISTS {tables}, alembic_version")
    upgrade_to(store_url, "0005")
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url)
    with engine.begin() as conn:
        for sql in LEGACY_ROWS:
            conn.execute(text(sql))
    engine.dispose()

    store = open_store(store_url)  # migrates to HEAD
    try:
        home = store.scoped("home", A, "us-east-1")
        assert home.load_state().owned == {}
        assert sorted(store.load_state().owned) == ["snap-1", "snap-2"]  # the legacy scope
        assert store.claim_unscoped(A, "us-east-1", target="home") == 8
        state = home.load_state()
        assert sorted(state.owned) == ["snap-1", "snap-2"]
        assert [g.account for g in state.grants] == ["999900000001"]
        assert [p.snapshot_id for p in state.pending] == ["snap-3"]
        assert home.copied_sources("nightly") == {"rs:auto-1"}
        assert home.figures_for("snap-1") == {"rows": 3}
        drift = home.latest_drift()
        assert drift is not None and [i.account for i in drift.items] == ["888800000001"]
        assert [(r.target, r.region) for r in store.pair_runs()] == [("home", "us-east-1")]
        # The same ids now work in another pair, beside the claimed ones.
        other = store.scoped("dr", B, "us-east-1")
        other.record_owned(owned("snap-1"), at=T0)
        assert list(other.load_state().owned) == ["snap-1"]
        # The lease kept its row; its fence starts at 0 and the next holder raises it.
        later = T0 + timedelta(minutes=5)  # the old holder's lease has expired
        assert store.acquire_lease("policy:nightly", "new", timedelta(minutes=2), later)
        assert store.lease_fence("policy:nightly", "new", later) == 1
    finally:
        store.close()


def test_head_revision_is_0006() -> None:
    assert HEAD_REVISION == "0006"


def test_a_0006_database_has_the_pair_in_every_key(db_path: Path) -> None:
    open_store(f"sqlite:///{db_path}").close()
    with sqlite3.connect(db_path) as conn:
        for table, key in {
            "owned_snapshot": ["owner_account", "region", "snapshot_id"],
            "snapshot_figures": ["owner_account", "region", "snapshot_id"],
            "copied_source": ["owner_account", "region", "policy", "source_id"],
        }.items():
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            pk = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5]]
            assert pk == key
