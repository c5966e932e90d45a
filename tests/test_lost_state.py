"""Losing the state DB: the CLI (a real subprocess) against moto's server, with the SQLite
file deleted between runs.

Tags are the source of truth for ownership, so a run after the loss adopts what the tags
prove (``status`` shows those snapshots as adopted), copies nothing twice, and deletes only
what the tags prove is its own. A snapshot the worker made but whose ownership nothing can
prove any more (a copy killed before its CreateTags, with the journal gone) is left alone
for good: never tagged, shared or deleted, however old it gets."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapworker.core import ids
from snapworker.core.model import OwnedRecord
from snapworker.core.ownership import ownership_tags
from snapworker.sandbox import moto_ext
from tests.e2e_support import Sandbox, plan_json

pytestmark = pytest.mark.e2e

ACC = "111122223333"
ALIAS = "amazon-redshift-support"
POLICY = "prod-nightly"


def owned_copy(box: Sandbox, source: str, age_days: float, accounts: list[str]) -> str:
    """A copy the worker made earlier, with its real tags (its source is long gone)."""
    t = datetime.now(UTC) - timedelta(days=age_days)
    sid = ids.copy_snapshot_id(POLICY, "prod-a", source)
    rec = OwnedRecord(sid, POLICY, "prod-a", "copy", t, source_id=source)
    moto_ext.add_manual_snapshot(
        box.backend(), "prod-a", sid, create_time=t, tags=ownership_tags(rec), accounts=accounts
    )
    return sid


def lose_db(box: Sandbox) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{box.db}{suffix}").unlink(missing_ok=True)
    assert not box.db.exists()


def last_line(r) -> str:
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_after_the_db_is_lost_the_worker_adopts_from_tags_and_copies_nothing_twice(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    box.cluster("prod-a", env="prod")
    for d in (1, 2, 3):
        box.automated("prod-a", d)
    old_source = box.automated("prod-a", 40)  # its copy expires: past max_age 35
    expired = owned_copy(box, old_source, 40, [ACC])
    box.manual("manual-keep-forever", "prod-a", 400, owner="dba")

    # run 1 copies the three sources (the expired copy is still among the newest 3 owned,
    # so it is shared with the alias); run 2 shares the copies, then revokes both accounts
    # of the expired copy and deletes it
    for _ in range(2):
        assert last_line(box.cli("run")).endswith(" succeeded, 0 failed")
    before = box.snapshots()
    assert expired not in before
    owned = sorted(s for s, v in before.items() if v["tags"].get("snapworker:policy") == POLICY)
    assert len(owned) == 3 and all(before[s]["accounts"] == sorted([ACC, ALIAS]) for s in owned)

    lose_db(box)

    # plan after the loss: nothing to do (the 40-day source is past retention, so its copy,
    # deleted by retention, is not made again), every owned copy kept
    p = plan_json(box.cli("plan", "--format", "json"))
    assert p["actions"] == []
    assert sorted(k["snapshot"] for k in p["kept"]) == owned
    assert box.snapshots() == before

    r = box.cli("run")
    assert "adopted 3 owned snapshot(s) from their tags" in r.stdout
    assert last_line(r) == "0 succeeded, 0 failed"
    assert box.snapshots() == before  # nothing copied twice, nothing changed

    status = json.loads(box.cli("status", "--format", "json").stdout)
    live = {o["snapshot"]: o for o in status["owned"] if not o["deleted_at"]}
    assert sorted(live) == owned
    assert all(o["adopted"] and o["made_for"] == "copy" for o in live.values())
    assert all(o["data_time"] for o in live.values())  # from the source-time tag
    table = box.cli("status").stdout
    assert "Owned snapshots: 3 live (3 adopted from their tags)" in table

    assert last_line(box.cli("run")) == "0 succeeded, 0 failed"  # converged


def test_unprovable_ownership_is_never_acted_on_and_only_tagged_snapshots_are_deleted(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    box.cluster("prod-a", env="prod")
    source = box.automated("prod-a", 1)
    stale = owned_copy(box, "rs:prod-a-gone-60", 60, [ACC])  # tags prove it; expired
    fresh = [owned_copy(box, f"rs:prod-a-gone-{d}", d, []) for d in (2, 3, 4)]
    lookalike = ids.copy_snapshot_id(POLICY, "prod-a", "rs:prod-a-gone-300")
    box.manual(lookalike, "prod-a", 300)  # the worker's name pattern, no tags
    box.manual("manual-keep-forever", "prod-a", 400, owner="dba")

    # a run killed right after its first mutation: the copy exists, its CreateTags never ran
    killed = box.cli("run", SNAPWORKER_KILL_AT="after:1")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    orphan = ids.copy_snapshot_id(POLICY, "prod-a", source)
    snaps = box.snapshots()
    assert snaps[orphan]["tags"] == {} and snaps[orphan]["type"] == "manual"

    lose_db(box)  # ...and with it the journal entry that proved the copy was ours
    untouchable = {sid: snaps[sid] for sid in (orphan, lookalike, "manual-keep-forever")}

    # the plan of the first run after the loss deletes only what its tags prove is owned
    p = plan_json(box.cli("plan", "--format", "json"))
    deletes = [a["snapshot"] for a in p["actions"] if a["action"] == "delete"]
    assert deletes == [stale]
    acted_on = {a["snapshot"] for a in p["actions"]}
    assert not acted_on & set(untouchable)
    assert any(orphan in n["message"] and "does not own" in n["message"] for n in p["notes"])

    r = box.cli("run")
    assert r.returncode == 0, r.stdout + r.stderr
    snaps = box.snapshots()
    assert stale not in snaps  # revoked, then deleted: its tags prove it
    assert all(f in snaps for f in fresh)
    for sid, was in untouchable.items():
        assert snaps[sid] == was, f"{sid} changed"

    # ever after, however old: never tagged, shared or deleted
    later = {"SNAPWORKER_FAKE_NOW": (datetime.now(UTC) + timedelta(days=400)).isoformat()}
    for env in ({}, later, later):
        r = box.cli("run", **env)
        assert r.returncode == 0, r.stdout + r.stderr
    snaps = box.snapshots()
    for sid, was in untouchable.items():
        assert snaps[sid] == was, f"{sid} changed"
    status = json.loads(box.cli("status", "--format", "json").stdout)
    assert orphan not in {o["snapshot"] for o in status["owned"]}
