"""The snapworker CLI, as a subprocess, against moto's server and a real SQLite file:
plan (changes nothing), run (copies, shares with an id and the support alias, expires with
revoke-then-delete), run again (changes nothing); unowned snapshots untouched throughout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from snapworker.core import ids
from tests.e2e_support import Sandbox, plan_json

pytestmark = pytest.mark.e2e

ACC = "111122223333"
ALIAS = "amazon-redshift-support"


def seed(box: Sandbox) -> dict[str, str]:
    box.cluster("prod-a", env="prod")
    box.cluster("dev-a", env="dev")
    autos = {d: box.automated("prod-a", d) for d in (1, 2, 3, 40)}
    box.automated("dev-a", 1)
    box.manual("manual-keep-forever", "prod-a", 400, owner="dba")
    lookalike = ids.copy_snapshot_id("prod-nightly", "prod-a", "rs:prod-a-2020-01-01-00-00")
    box.manual(lookalike, "prod-a", 300)
    return {"lookalike": lookalike, **{f"auto{d}": s for d, s in autos.items()}}


def untouched(box: Sandbox, before: dict, after: dict) -> None:
    for sid, snap in before.items():
        if snap["type"] == "automated" or "snapworker:policy" not in snap["tags"]:
            assert after.get(sid) == snap, f"{sid} changed"


def test_plan_then_run_then_rerun(sandbox: Sandbox) -> None:
    box = sandbox
    seeded = seed(box)
    before = box.snapshots()

    # plan: a report, and nothing changes in AWS (the state DB gets its schema, no rows)
    p = plan_json(box.cli("plan", "--format", "json"))
    copies = [a for a in p["actions"] if a["action"] == "copy"]
    assert sorted(a["source"] for a in copies) == sorted(seeded[f"auto{d}"] for d in (1, 2, 3))
    assert all(a["policy"] == "prod-nightly" and a["cluster"] == "prod-a" for a in copies)
    assert any(
        seeded["auto40"] in n["message"] and "past retention" in n["message"] for n in p["notes"]
    )
    assert box.snapshots() == before
    assert box.journal() == []
    table = box.cli("plan")
    assert table.returncode == 0 and "policy prod-nightly  cluster prod-a" in table.stdout

    # run: copies (tagged), then a second run shares with the id and the alias
    r1 = box.cli("run")
    assert r1.returncode == 0, r1.stderr
    assert "3 succeeded, 0 failed" in r1.stdout
    snaps = box.snapshots()
    made = {
        sid: s for sid, s in snaps.items() if s["tags"].get("snapworker:policy") == "prod-nightly"
    }
    assert len(made) == 3
    for s in made.values():
        assert s["tags"]["snapworker:kind"] == "copy" and s["tags"]["snapworker:source-time"]
    r2 = box.cli("run")
    assert r2.returncode == 0, r2.stderr
    snaps = box.snapshots()
    assert all(snaps[sid]["accounts"] == sorted([ACC, ALIAS]) for sid in made)
    untouched(box, before, snaps)

    # run again: nothing to do
    r3 = box.cli("run")
    assert r3.returncode == 0 and r3.stdout.strip().splitlines()[-1] == "0 succeeded, 0 failed"
    assert box.snapshots() == snaps

    # 40 days later, with new automated snapshots: the old copies expire: revoke, then delete
    later = datetime.now(UTC) + timedelta(days=40)
    for d in (1, 2, 3):
        box.automated("prod-a", d, now=later)
    fake = {"SNAPWORKER_FAKE_NOW": later.isoformat()}
    assert box.cli("run", **fake).returncode == 0  # copies the new ones
    p = plan_json(box.cli("plan", "--format", "json", **fake))
    revokes = [a for a in p["actions"] if a["action"] == "revoke"]
    deletes = [a for a in p["actions"] if a["action"] == "delete"]
    assert sorted(a["snapshot"] for a in deletes) == sorted(made)
    assert sorted((a["snapshot"], a["grantee"]) for a in revokes) == sorted(
        (sid, acc) for sid in made for acc in (ACC, ALIAS)
    )
    r = box.cli("run", **fake)
    assert r.returncode == 0, r.stdout + r.stderr
    snaps = box.snapshots()
    assert not set(made) & set(snaps)
    journal = box.journal()
    for sid in made:
        kinds = [
            j["kind"] for j in journal if j["snapshot_id"] == sid and j["status"] == "completed"
        ]
        assert kinds[-3:] in (["revoke", "revoke", "delete"],), kinds
    untouched(box, before, snaps)
    assert box.cli("run", **fake).stdout.strip().splitlines()[-1] == "0 succeeded, 0 failed"

    status = box.cli("status")
    assert status.returncode == 0 and "3 deleted by snapworker" in status.stdout


def test_validate_and_bad_config_exit_2_without_aws_calls(sandbox: Sandbox) -> None:
    box = sandbox
    ok = box.cli("validate")
    assert ok.returncode == 0 and "ok (1 policy)" in ok.stdout
    box.config.write_text(
        box.config.read_text()
        .replace("keep_last: 3", "keep_last: -7")
        .replace('"111122223333"', '"11112222333"')
    )
    from snapworker.sandbox import moto_ext

    moto_ext.reset_call_counts()
    for cmd in ("validate", "plan", "run"):
        r = box.cli(cmd)
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        assert (
            "keep_last" in r.stderr and "share.accounts" in r.stderr and "prod-nightly" in r.stderr
        )
        assert "Traceback" not in r.stderr
    assert sum(moto_ext.call_counts().values()) == 0
