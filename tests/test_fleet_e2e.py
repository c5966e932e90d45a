"""A fleet end to end: the ``snapworker`` CLI as a subprocess against moto's server with three
accounts and two regions, and a real SQLite state DB.

Targets: ``home`` (the worker's own credentials: moto's default account) and two targets
``dr-a`` and ``dr-b`` reached by AssumeRole in other accounts (moto maps an assumed role's
credentials to the role's account), each in us-east-1 and eu-west-1. Every pair holds the
SAME cluster id and the SAME automated snapshot ids: six independent estates, which the worker
must keep apart. What each pair received is counted on the server, per account and region.

- lifecycle: in every pair a ``run`` creates the scheduled snapshot and copies the automated
  ones, the next shares them; forty days on (``SNAPWORKER_FAKE_NOW``) a ``run`` revokes the
  expired snapshots' grants, then deletes them; then only the new scheduled snapshot is shared,
  and a further run sends no mutation at all; no mutation ever went twice to one snapshot;
- isolation: one account's AssumeRole is refused and one region of another account answers
  AccessDenied: those pairs are named ``error: TARGET/REGION: ...`` on stderr, the exit code
  is 1, the server sees no mutation in them, every other pair converges, and ``status``
  names the failed pairs; with the faults lifted, the next runs converge them too;
- ``plan --format json`` entries carry ``target``, ``account`` and ``region``, the errors
  name their pair; ``--target`` globs limit the work to the pairs they match;
- ``iam-policy`` for the config: the worker may assume exactly the two roles, each role's
  trust policy names the worker's account (and the external id where one is set), and every
  Redshift operation the worker sent in an account is one that account's policy allows.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from snapworker.sandbox import moto_ext
from tests.e2e_support import (
    ACCOUNT,
    PairEstate,
    Sandbox,
    estate,
    fresh_counts,
    role_arn,
    run_json,
    served,
)

pytestmark = pytest.mark.e2e

POLICY = "prod-nightly"
GRANTEE = "111122223333"
DR_A = "210987654321"
DR_B = "310987654321"
EXTERNAL_ID = "sw-ext-a"
REGIONS = ("us-east-1", "eu-west-1")
TARGETS = {"home": ACCOUNT, "dr-a": DR_A, "dr-b": DR_B}
PAIRS = [(t, a, r) for t, a in TARGETS.items() for r in REGIONS]
KEYS = [f"{t}/{r}" for t, _, r in PAIRS]
CLUSTER = "prod-a"
AGES = (1, 2)
"""Ages in days of the automated snapshots seeded in every pair."""

REFUSED = "dr-b"
"""The target whose AssumeRole STS refuses (isolation test): both its regions fail."""
DENIED = ("dr-a", DR_A, "eu-west-1")
"""The pair whose every Redshift call answers AccessDenied (isolation test)."""

CONFIG = """\
state_url: sqlite:///{{db}}
aws:
  region: us-east-1
retry:
  attempts: 2
  wait_initial_seconds: 0
  wait_max_seconds: 0
targets:
  - name: home
    regions: [us-east-1, eu-west-1]
  - name: dr-a
    role_arn: {dr_a}
    external_id: {external_id}
    regions: [us-east-1, eu-west-1]
  - name: dr-b
    role_arn: {dr_b}
    regions: [us-east-1, eu-west-1]
fleet:
  max_parallel_targets: 4
policies:
  - name: {policy}
    select:
      clusters: ["prod-*"]
    create:
      schedule: "0 {hour} * * *"
    copy_automated: true
    share:
      accounts: ["{grantee}"]
    retention:
      max_age_days: 35
"""


@pytest.fixture(autouse=True)
def server_clock() -> Iterator[None]:
    """The server's clock (the create time moto gives new snapshots) back at the wall clock
    after each test."""
    yield
    moto_ext.set_clock_shift(timedelta(0))


def write_config(box: Sandbox, now: datetime) -> None:
    # The daily schedule fires twelve hours from the current hour: its latest fire time is
    # hours away whatever the time of day, so runs a few seconds apart (and forty days on)
    # agree on it, on any date.
    box.write_config(
        CONFIG.format(
            dr_a=role_arn(DR_A),
            dr_b=role_arn(DR_B),
            external_id=EXTERNAL_ID,
            policy=POLICY,
            grantee=GRANTEE,
            hour=(now.hour + 12) % 24,
        )
    )


def at(now: datetime, days: float) -> dict[str, str]:
    """The CLI's clock ``days`` after ``now``."""
    return {"SNAPWORKER_FAKE_NOW": (now + timedelta(days=days)).isoformat()}


def pairs_of(box: Sandbox) -> dict[str, PairEstate]:
    """``TARGET/REGION`` -> that pair's estate on the server."""
    return {f"{t}/{r}": estate(box, a, r) for t, a, r in PAIRS}


def seed(box: Sandbox, now: datetime) -> list[str]:
    """The same cluster and automated snapshots in every pair; returns their ids."""
    sources: list[str] = []
    for pair in pairs_of(box).values():
        pair.cluster(CLUSTER, env="prod")
        ids = [pair.automated(CLUSTER, now - timedelta(days=age)) for age in AGES]
        assert not sources or ids == sources
        sources = ids
    fresh_counts()
    return sources


def ran(result: Any, code: int = 0) -> Any:
    assert result.returncode == code, result.stdout + result.stderr
    return result


Counts = dict[tuple[str, str, str, str], int]

CONVERGED = {
    "CreateClusterSnapshot": 1,  # the scheduled snapshot
    "CopyClusterSnapshot": len(AGES),
    "CreateTags": len(AGES),  # a copy is tagged as the policy's once it exists
    "AuthorizeSnapshotAccess": len(AGES) + 1,
}
"""What a pair receives on its way from nothing to converged: each mutation once."""


def assert_converged(pair: PairEstate, sources: list[str]) -> dict[str, dict[str, Any]]:
    """The pair holds one copy per automated snapshot and one scheduled snapshot, all
    available and shared with the grantee alone; returns them."""
    owned = pair.owned(POLICY)
    kinds = Counter(s["tags"].get("snapworker:kind") for s in owned.values())
    assert kinds == {"copy": len(sources), "create": 1}, (pair, owned)
    copied = {s["tags"].get("snapworker:source") for s in owned.values()} - {None}
    assert copied == set(sources), (pair, owned)
    assert all(s["accounts"] == [GRANTEE] for s in owned.values()), (pair, owned)
    assert all(s["status"] == "available" for s in owned.values()), (pair, owned)
    return owned


def rows(box: Sandbox, sql: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(box.db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def converged(box: Sandbox, counts: Counts, sources: list[str], keys: Iterable[str]) -> None:
    """Every pair in ``keys`` converged, having received each mutation once (``counts``:
    since the pairs held nothing)."""
    pairs = pairs_of(box)
    for key in keys:
        assert pairs[key].mutations(counts) == CONVERGED, (key, pairs[key].mutations(counts))
        assert pairs[key].sent_twice(counts) == {}, key
        assert_converged(pairs[key], sources)


@pytest.mark.slow  # six CLI runs over six pairs: about a minute
def test_every_pair_creates_copies_shares_then_revokes_deletes_and_rests(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    write_config(box, now)
    sources = seed(box, now)
    pairs = pairs_of(box)
    seen: dict[str, set[str]] = {a: set() for a in TARGETS.values()}

    def taken() -> Counts:
        """The server's counts since the last ``fresh_counts``; notes the operations used."""
        counts = served()
        for account, _, op, _ in counts:
            seen[account].add(op)
        return counts

    # Run 1 creates and copies in every pair, run 2 shares what became available.
    first = ran(box.cli("run", **at(now, 0)))
    assert "error:" not in first.stderr
    for t, a, r in PAIRS:  # a heading per pair, naming its account
        account = "" if t == "home" else f"{a}, "
        assert f"target {t} ({account}{r}): 3 succeeded, 0 failed" in first.stdout, first.stdout
    second = ran(box.cli("run", **at(now, 0)))
    assert "error:" not in second.stderr
    converged(box, taken(), sources, KEYS)
    # Same names everywhere: six estates, each with its own snapshots of the same ids.
    names = {key: tuple(sorted(pair.owned(POLICY))) for key, pair in pairs.items()}
    assert len(set(names.values())) == 1, names
    for pair in pairs.values():
        automated = {s for s, v in pair.snapshots().items() if v["type"] == "automated"}
        assert automated == set(sources)  # AWS's own are never touched
    # The state DB keeps the pairs apart: each owns its three, in its account and region.
    owned_rows = rows(box, "select * from owned_snapshot where deleted_at is null")
    by_pair = Counter((r["owner_account"], r["region"]) for r in owned_rows)
    assert by_pair == {(a, r): len(sources) + 1 for _, a, r in PAIRS}

    # Forty days on: the copies (41, 42 days) and the first scheduled snapshot (40 days) are
    # past max_age_days 35: their grants are revoked, then they are deleted. The schedule
    # fired again: a new snapshot is taken.
    before = {key: pair.owned(POLICY) for key, pair in pairs.items()}
    moto_ext.set_clock_shift(timedelta(days=40))  # AWS's clock too: what it creates is new
    fresh_counts()
    ran(box.cli("run", **at(now, 40)))
    counts = taken()
    for key, pair in pairs.items():
        expired = sorted(before[key])
        assert pair.requests("RevokeSnapshotAccess", counts) == {
            ("RevokeSnapshotAccess", f"{s} {GRANTEE}"): 1 for s in expired
        }, key
        assert pair.requests("DeleteClusterSnapshot", counts) == {
            ("DeleteClusterSnapshot", s): 1 for s in expired
        }, key
        assert pair.mutations(counts) == {
            "RevokeSnapshotAccess": len(expired),
            "DeleteClusterSnapshot": len(expired),
            "CreateClusterSnapshot": 1,
        }, key
        assert pair.sent_twice(counts) == {}, key
        owned = pair.owned(POLICY)
        assert set(owned).isdisjoint(before[key]), (key, owned)
        assert [s["tags"]["snapworker:kind"] for s in owned.values()] == ["create"], owned
    # Revoke before delete, in every pair: the journal (scoped by account and region)
    # has each expired snapshot's revoke completed before its delete was journalled.
    journal = rows(box, "select * from journal order by id")
    for _, a, r in PAIRS:
        mine = [e for e in journal if (e["owner_account"], e["region"]) == (a, r)]
        deletes = [e for e in mine if e["kind"] == "delete"]
        assert len(deletes) == len(sources) + 1, (a, r, mine)
        for e in deletes:
            revokes = [
                x for x in mine if x["kind"] == "revoke" and x["snapshot_id"] == e["snapshot_id"]
            ]
            assert [x["status"] for x in revokes] == ["completed"], (a, r, e)
            assert revokes[0]["id"] < e["id"], (a, r, e)

    # The new scheduled snapshot is shared by the next run; then nothing is left to do.
    fresh_counts()
    ran(box.cli("run", **at(now, 40)))
    counts = taken()
    for key, pair in pairs.items():
        assert pair.mutations(counts) == {"AuthorizeSnapshotAccess": 1}, key
        (new,) = pair.owned(POLICY).values()
        assert new["accounts"] == [GRANTEE]
    fresh_counts()
    rest = ran(box.cli("run", **at(now, 40)))
    assert rest.stdout.strip().splitlines()[-1] == "0 succeeded, 0 failed", rest.stdout
    counts = taken()
    for key, pair in pairs.items():
        assert pair.mutations(counts) == {}, key

    # iam-policy: what the worker did in each account, its policy for that account allows.
    policy = json.loads(ran(box.cli("iam-policy", "--account", ACCOUNT)).stdout)
    assume = [
        s for s in policy["worker"]["Statement"] if "sts:AssumeRole" in json.dumps(s["Action"])
    ]
    assert [sorted(_list(s["Resource"])) for s in assume] == [
        sorted([role_arn(DR_A), role_arn(DR_B)])
    ]
    allowed = {ACCOUNT: _actions(policy["worker"])}
    for name, account in (("dr-a", DR_A), ("dr-b", DR_B)):
        role = policy["targets"][name]
        assert role["role"] == role_arn(account)
        allowed[account] = _actions(role["permissions"])
        (trust,) = role["trust"]["Statement"]
        assert trust["Action"] == "sts:AssumeRole"
        assert ACCOUNT in json.dumps(trust["Principal"])
        external = trust.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
        assert external == (EXTERNAL_ID if name == "dr-a" else None)
    for account, ops in seen.items():
        used = {f"redshift:{op}" for op in ops}
        assert used <= allowed[account], (account, used - allowed[account])


def _list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _actions(document: dict[str, Any]) -> set[str]:
    return {a for s in document["Statement"] if s["Effect"] == "Allow" for a in _list(s["Action"])}


def test_a_refused_role_and_a_denied_region_are_named_skipped_and_untouched(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    write_config(box, now)
    sources = seed(box, now)
    pairs = pairs_of(box)
    denied_key = f"{DENIED[0]}/{DENIED[2]}"
    failed = {f"{REFUSED}/{r}" for r in REGIONS} | {denied_key}
    healthy = [k for k in KEYS if k not in failed]

    def faults() -> None:
        moto_ext.set_fault_plan(
            moto_ext.FaultPlan(
                rate=1.0,
                kinds=("access-denied",),
                accounts=frozenset({DENIED[1]}),
                regions=frozenset({DENIED[2]}),
                refuse_assume_role=frozenset({role_arn(DR_B)}),
            )
        )

    faults()
    first = ran(box.cli("run", **at(now, 0)), 1)
    second = ran(box.cli("run", **at(now, 0)), 1)
    counts = served()
    refusals = moto_ext.fault_report()["refused_assume_role"]
    moto_ext.set_fault_plan(None)  # observing from here on (the counts are kept)
    for result in (first, second):
        errors = sorted(line for line in result.stderr.splitlines() if line.startswith("error:"))
        assert [line.split(": ")[1] for line in errors] == sorted(failed), result.stderr
        for region in REGIONS:
            line = next(e for e in errors if e.startswith(f"error: {REFUSED}/{region}: "))
            assert "AccessDenied" in line and role_arn(DR_B) in line, line
        line = next(e for e in errors if e.startswith(f"error: {denied_key}: "))
        assert "AccessDenied" in line, line
    # The refused account was never reached (STS refused it each time it was asked: once
    # per run, whichever of its pairs asked first); the denied region got no mutation.
    assert refusals == {role_arn(DR_B): 4} or refusals.get(role_arn(DR_B), 0) >= 2, refusals
    assert [k for k in counts if k[0] == DR_B] == []
    denied = pairs[denied_key]
    assert denied.requests(served=counts), "the denied region was asked, and answered 403"
    assert denied.mutations(counts) == {}
    assert denied.owned(POLICY) == {}
    for region in REGIONS:
        assert pairs[f"{REFUSED}/{region}"].owned(POLICY) == {}
    # Every other pair converged, the same as without the faults.
    converged(box, counts, sources, healthy)

    # The run record: a failed run per failed pair and invocation, naming the error;
    # status shows the failed pairs.
    runs = rows(box, "select * from run order by id")
    failed_runs = Counter((r["target"], r["region"]) for r in runs if r["status"] == "failed")
    assert failed_runs == {tuple(k.split("/")): 2 for k in failed}, runs
    assert all("AccessDenied" in (r["error"] or "") for r in runs if r["status"] == "failed")
    table = ran(box.cli("status")).stdout
    for key in failed:
        target, region = key.split("/")
        assert any(
            target in line and region in line and "AccessDenied" in line
            for line in table.splitlines()
        ), (key, table)
    for key in healthy:
        target, region = key.split("/")
        assert not any(
            target in line and region in line and "AccessDenied" in line
            for line in table.splitlines()
        ), (key, table)

    # The faults lifted, the failed pairs converge in two runs; the others are left alone.
    fresh_counts()
    ran(box.cli("run", **at(now, 0)))
    ran(box.cli("run", **at(now, 0)))
    counts = served()
    converged(box, counts, sources, sorted(failed))
    for key in healthy:
        assert pairs[key].mutations(counts) == {}, key


def test_plan_json_names_every_entry_s_pair_and_target_globs_limit_the_work(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    write_config(box, now)
    sources = seed(box, now)
    pairs = pairs_of(box)
    refuse = moto_ext.FaultPlan(refuse_assume_role=frozenset({role_arn(DR_B)}))
    started = {"CreateClusterSnapshot": 1, "CopyClusterSnapshot": 2, "CreateTags": 2}

    moto_ext.set_fault_plan(refuse)
    planned = box.cli("plan", "--format", "json", **at(now, 0))
    assert planned.returncode == 1, planned.stderr  # a pair failed
    counts = served()
    doc = run_json(planned)
    entries = Counter((a["target"], a["account"], a["region"], a["action"]) for a in doc["actions"])
    want: Counter[tuple[str, str, str, str]] = Counter()
    for t, a, r in PAIRS:
        if t != REFUSED:
            want[(t, a, r, "create")] = 1
            want[(t, a, r, "copy")] = len(sources)
    assert entries == want
    assert sorted((e["target"], e["account"], e["region"]) for e in doc["errors"]) == sorted(
        (REFUSED, DR_B, r) for r in REGIONS
    )
    assert all("AccessDenied" in e["error"] for e in doc["errors"]), doc["errors"]
    for pair in pairs.values():  # a plan changes nothing
        assert pair.mutations(counts) == {}

    # --target 'dr-*': only dr-a's pairs are worked (dr-b's fail as before); home is not
    # even listed.
    fresh_counts()
    moto_ext.set_fault_plan(refuse)
    limited = box.cli("run", "--target", "dr-*", **at(now, 0))
    assert limited.returncode == 1, limited.stderr
    counts = served()
    errors = [
        line.split(": ")[1] for line in limited.stderr.splitlines() if line.startswith("error:")
    ]
    assert sorted(errors) == sorted(f"{REFUSED}/{reg}" for reg in REGIONS), limited.stderr
    for key, pair in pairs.items():
        if key.startswith("dr-a/"):
            assert pair.mutations(counts) == started, key
        else:
            assert pair.requests(served=counts) == {}, key

    # --target home: only home's pairs.
    fresh_counts()
    ran(box.cli("run", "--target", "home", **at(now, 0)))
    counts = served()
    for key, pair in pairs.items():
        assert pair.mutations(counts) == (started if key.startswith("home/") else {}), key

    # A glob matching no target is a usage error: nothing is done.
    fresh_counts()
    nothing = box.cli("run", "--target", "prod-*", **at(now, 0))
    assert nothing.returncode == 2, nothing.stderr
    assert "matches no target" in nothing.stderr
    assert served() == {}
