"""``snapworker plan --format json``, byte for byte, over a saved corpus of estates.

``tests/corpus/estates.json.gz`` holds 60 estates as plain data (the config as YAML text,
the inventory AWS would list, the state DB's records, ``now``, the account id, the
``--policy`` selection) and, for each, the exact JSON that ``plan --format json`` printed
for it when the corpus was made (by :func:`replan` below; for the ``e2e-*`` estates also
checked against the real CLI). This test rebuilds the inputs from that data alone and
re-plans through the CLI's own dry-run path:

* the config through the real loader (``load_config`` on the YAML text written to a file);
* ``engine.tick(rt, policies, dry_run=True)``, as ``snapworker plan`` calls it (policy
  selection, observe, load the state, ``planner.plan`` with every policy name of the config,
  the account and the clock), with stand-ins for the gateway (the saved inventory and
  account id) and the store (the saved ``State``) and a clock stopped at ``now``;
* ``plan_report.render(single(plan, region), "json")``, which the CLI echoes (plus a
  newline): one pair, the ``default`` target in ``aws.region`` (us-east-1).

A dry run does no adoption, journal reconciliation, grant timing nor scratch clean-up
(those are ``run``'s, in ``engine._tick``), so there is nothing of them to reproduce; the
planner reads no ``copied_source`` rows (``load_state`` does not load them: copies are known
from the owned records' ``source_id``). Left out in process: the AWS listing itself
(``RedshiftGateway`` turning DescribeClusters/DescribeClusterSnapshots pages into the model
and finding the account id), the state DB's ``load_state``, and the warnings ``plan``
prints to stderr. The three ``e2e-*`` estates close most of that gap: they are seeded into
moto's server and a real SQLite state DB (through the store's own ``record_*`` calls), and
``snapworker plan --format json --at NOW`` runs as a subprocess; its stdout
must be the same saved bytes plus a newline. They hold only what can be seeded that way:
this account's snapshots, owned records and grants; no journal entries, drills, other
accounts' snapshots or unknown account (the in-process estates have those).

Regenerate only on purpose: ``.venv/bin/python -m tests.corpus.make_corpus``, then review
the change of every expected output.
"""

from __future__ import annotations

import difflib
import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from snapworker.adapters.store.repository import open_store
from snapworker.config import load_config
from snapworker.core.model import (
    Cluster,
    GrantRecord,
    Inventory,
    OwnedRecord,
    PendingEntry,
    Snapshot,
    State,
    VerificationRecord,
)
from snapworker.sandbox import moto_ext
from snapworker.service.tick import Runtime, tick
from snapworker.views.plan_report import render, single
from tests.e2e_support import Sandbox
from tests.fakes import FakeGateway, FakeStore

CORPUS = Path(__file__).parent / "corpus" / "estates.json.gz"
_TIMES = ("create_time", "data_time", "fire_time", "deleted_at", "granted_at", "revoked_at")


def load_corpus() -> list[dict[str, Any]]:
    data = json.loads(gzip.decompress(CORPUS.read_bytes()))
    assert data["format"] == 1
    return data["estates"]


ESTATES = load_corpus() if CORPUS.exists() else []


# -- the saved data back into the model --------------------------------------------------


def _build(cls: type, d: dict[str, Any]) -> Any:
    """A model dataclass from its saved fields: ISO times back to datetimes, lists to tuples
    (defaults were left out when saved)."""
    kw = dict(d)
    for name in _TIMES:
        if kw.get(name) is not None:
            kw[name] = datetime.fromisoformat(kw[name])
    if "accounts" in kw:
        kw["accounts"] = tuple(kw["accounts"])
    return cls(**kw)


def inventory_from(d: dict[str, Any]) -> Inventory:
    clusters = [_build(Cluster, c) for c in d["clusters"]]
    snaps = [_build(Snapshot, s) for s in d["snapshots"]]
    return Inventory({c.id: c for c in clusters}, {s.id: s for s in snaps})


def state_from(d: dict[str, Any]) -> State:
    owned = [_build(OwnedRecord, r) for r in d["owned"]]
    return State(
        owned={r.snapshot_id: r for r in owned},
        grants=tuple(_build(GrantRecord, g) for g in d["grants"]),
        pending=tuple(_build(PendingEntry, p) for p in d["pending"]),
        verifications=tuple(_build(VerificationRecord, v) for v in d["verifications"]),
    )


class _SavedState(FakeStore):
    """The shared store fake, answering ``load_state`` with the estate's saved state."""

    def __init__(self, state: State) -> None:
        super().__init__()
        self.saved = state

    def load_state(self) -> State:
        return self.saved


def replan(estate: dict[str, Any], tmp: Path) -> str:
    """What ``snapworker plan --format json`` prints for ``estate`` (without the newline)."""
    path = tmp / f"{estate['name']}.yaml"
    path.write_text(estate["config_yaml"], encoding="utf-8")
    now = datetime.fromisoformat(estate["now"])
    inventory = inventory_from(estate["inventory"])
    rt = Runtime(
        config=load_config(path),
        gateway=FakeGateway(
            inventory.snapshots.values(), inventory.clusters.values(), account=estate["account"]
        ),
        store=_SavedState(state_from(estate["state"])),
        clock=lambda: now,
        log=None,
    )
    # One pair, as ``plan`` without ``targets:`` sees it: ``default`` in aws.region (the
    # e2e estates' config says us-east-1; the in-process ones are planned as if it did).
    region = rt.config.aws.region or "us-east-1"
    return render(single(tick(rt, estate["policies"], dry_run=True).plan, region), "json")


def _first_difference(expected: str, actual: str, context: int = 30) -> str:
    diff = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), "expected", "actual", lineterm="", n=3
    )
    lines = list(diff)
    more = f"\n... ({len(lines) - context} more diff lines)" if len(lines) > context else ""
    return "\n".join(lines[:context]) + more


def _assert_same(name: str, expected: str, actual: str) -> None:
    if actual != expected:
        pytest.fail(
            f"{name}: plan JSON differs from the saved corpus\n"
            + _first_difference(expected, actual),
            pytrace=False,
        )


# -- in process: every estate ----------------------------------------------------------------


@pytest.mark.parametrize("estate", ESTATES, ids=[e["name"] for e in ESTATES])
def test_plan_json_is_byte_identical(estate: dict[str, Any], tmp_path: Path) -> None:
    _assert_same(estate["name"], estate["expected"], replan(estate, tmp_path))


def test_corpus_is_diverse() -> None:
    """The corpus still holds what it was made for (a guard against a truncated file)."""
    kinds = {a["action"] for e in ESTATES for a in json.loads(e["expected"])["actions"]}
    assert kinds == {"tag", "create", "copy", "share", "revoke", "delete", "verify"}
    assert len(ESTATES) >= 60
    assert sum(len(e["inventory"]["snapshots"]) for e in ESTATES) > 2000


# -- end to end: the real CLI against moto's server and a SQLite state DB -------------------


def _seed(box: Sandbox, estate: dict[str, Any]) -> None:
    inv = inventory_from(estate["inventory"])
    be, client = box.backend(), box.client()
    for c in inv.clusters.values():
        client.create_cluster(
            ClusterIdentifier=c.id,
            NodeType="ra3.xlplus",
            MasterUsername="admin",
            MasterUserPassword="Passw0rd-corpus",
            Tags=[{"Key": k, "Value": v} for k, v in c.tags.items()],
        )
        if c.status != "available":
            moto_ext.set_cluster_status(be, c.id, c.status)
    for sid in list(be.snapshots):  # moto's own snapshot at CreateCluster: not the estate's
        moto_ext.drop_snapshot(be, sid)
    for s in inv.snapshots.values():
        assert s.owner_account == be.account_id, f"{s.id}: moto lists this account's only"
        if s.type == "automated":
            moto_ext.add_automated_snapshot(
                be, s.cluster, create_time=s.create_time, snapshot_id=s.id, status=s.status
            )
        else:
            moto_ext.add_manual_snapshot(
                be,
                s.cluster,
                s.id,
                create_time=s.create_time,
                tags=dict(s.tags),
                status=s.status,
                accounts=s.accounts,
                retention_period=-1 if s.retention_period is None else s.retention_period,
            )
        if s.size_mb is not None and s.incremental_mb is not None:
            moto_ext.set_snapshot_sizes(be, s.id, s.size_mb, s.incremental_mb)
    state = state_from(estate["state"])
    assert not state.pending and not state.verifications, "not seedable without a run"
    store = open_store(f"sqlite:///{box.db}")
    try:
        for rec in state.owned.values():
            store.record_owned(rec, at=datetime.fromisoformat(estate["now"]))
        for g in state.grants:
            store.record_grant(g.snapshot_id, g.account, g.granted_at)
            if g.revoked_at is not None:
                store.record_revoke(g.snapshot_id, g.account, g.revoked_at)
        assert store.load_state() == state
    finally:
        store.close()


E2E = [e for e in ESTATES if e.get("e2e")]


def _cli_plan(box: Sandbox, estate: dict[str, Any]) -> str:
    """``snapworker plan --format json --at NOW`` as a subprocess: a clock stopped at the
    estate's ``now``, so the plan is the same however long the listing takes."""
    args = [arg for name in estate["policies"] or () for arg in ("--policy", name)]
    r = box.cli("plan", "--format", "json", "--at", estate["now"], *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.e2e
@pytest.mark.parametrize("estate", E2E, ids=[e["name"] for e in E2E])
def test_cli_plan_json_is_byte_identical(estate: dict[str, Any], sandbox: Sandbox) -> None:
    _seed(sandbox, estate)
    head = f"state_url: sqlite:///{sandbox.db}\naws:\n  region: us-east-1\n"
    sandbox.config.write_text(head + estate["config_yaml"])
    _assert_same(estate["name"], estate["expected"] + "\n", _cli_plan(sandbox, estate))
