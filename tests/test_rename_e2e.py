"""Renaming a policy (issue 18, "Orphans"), through the real CLI against moto's server.

Without ``formerly``, the old policy's snapshots lose their policy: ``plan``, ``run`` and
``validate --aws`` warn once (one line for the policy, not one per snapshot), naming it,
its snapshot count and how many are still shared. With ``formerly: [old]`` the new policy
owns them: nothing is copied or created again, their tags are rewritten to the new name (a
journalled ``tag`` action per snapshot), a second run changes nothing, retention counts
them and a held one stays held. Every command runs at one fixed instant
(``SNAPWORKER_FAKE_NOW``), so no schedule fires between two of them whatever the day.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e_support import CONFIG, Sandbox, plan_json

pytestmark = pytest.mark.e2e

ACC = "111122223333"
ALIAS = "amazon-redshift-support"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
AT = {"SNAPWORKER_FAKE_NOW": NOW.isoformat()}
WITH_CREATE = CONFIG.replace(
    "    copy_automated: true\n",
    '    copy_automated: true\n    create:\n      schedule: "0 3 * * *"\n',
)
RENAMED = WITH_CREATE.replace("- name: prod-nightly", "- name: prod-daily")
FORMERLY = RENAMED.replace(
    "- name: prod-daily\n", "- name: prod-daily\n    formerly: [prod-nightly]\n"
)


def estate(box: Sandbox) -> dict[str, dict]:
    """prod-a with three automated snapshots, copied, created and shared by prod-nightly."""
    box.write_config(WITH_CREATE)
    box.cluster("prod-a", env="prod")
    for d in (1, 2, 3):
        box.automated("prod-a", d, now=NOW)
    for _ in range(2):  # copies and the create, then their shares
        r = box.cli("run", **AT)
        assert r.returncode == 0, r.stdout + r.stderr
    mine = {
        sid: s
        for sid, s in box.snapshots().items()
        if s["tags"].get("snapworker:policy") == "prod-nightly"
    }
    assert len(mine) == 4  # 3 copies and 1 create
    assert all(s["accounts"] == sorted([ACC, ALIAS]) for s in mine.values())
    return mine


def orphan_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "belong to policy 'prod-nightly'" in line]


def test_rename_without_formerly_warns_once_in_plan_run_and_validate(sandbox: Sandbox) -> None:
    box = sandbox
    mine = estate(box)
    box.write_config(RENAMED)
    expected = (
        "4 snapshots belong to policy 'prod-nightly', which the config no longer defines "
        "(4 still shared): rename it back, or add formerly: [prod-nightly] to the policy "
        "that replaces it"
    )

    plan = box.cli("plan", **AT)
    assert plan.returncode == 0, plan.stderr
    lines = orphan_lines(plan.stderr)
    assert len(lines) == 1 and lines[0].startswith("warning:") and expected in lines[0], plan.stderr

    validate = box.cli("validate", "--aws", **AT)
    assert validate.returncode == 0, validate.stderr
    lines = orphan_lines(validate.stderr)
    assert len(lines) == 1 and lines[0].startswith("warning:") and expected in lines[0], (
        validate.stderr
    )
    assert orphan_lines(box.cli("validate", **AT).stderr) == []  # no AWS, nothing known

    before = box.snapshots()
    run = box.cli("run", **AT)
    assert run.returncode == 0, run.stderr
    lines = orphan_lines(run.stderr)
    assert len(lines) == 1 and expected in lines[0], run.stderr
    after = box.snapshots()
    for sid in mine:  # left alone: not changed, not deleted
        assert after[sid] == before[sid]


def test_rename_with_formerly_carries_everything_over(sandbox: Sandbox) -> None:
    box = sandbox
    mine = estate(box)
    held = sorted(mine)[0]
    r = box.cli("hold", held, "--reason", "audit", **AT)
    assert r.returncode == 0, r.stdout + r.stderr
    box.write_config(FORMERLY)
    assert box.cli("validate", **AT).returncode == 0

    plan = box.cli("plan", "--format", "json", **AT)
    p = plan_json(plan)
    assert orphan_lines(plan.stderr) == []
    kinds = sorted({a["action"] for a in p["actions"]})
    assert kinds == ["tag"], p["actions"]  # no copy, no create, no share: only the re-tags
    assert sorted(a["snapshot"] for a in p["actions"]) == sorted(mine)
    assert all(a["policy"] == "prod-daily" for a in p["actions"])
    assert all("rewriting them to prod-daily" in a["reason"] for a in p["actions"])
    kept = {k["snapshot"]: k for k in p["kept"]}
    assert set(kept) == set(mine) and all(k["policy"] == "prod-daily" for k in kept.values())
    assert kept[held].get("held") is True
    assert "keep_last 3" in json.dumps([k["reason"] for k in kept.values()])
    table = box.cli("plan", **AT)
    assert table.returncode == 0 and "rewriting them to prod-daily" in table.stdout

    run = box.cli("run", **AT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 succeeded, 0 failed" in run.stdout
    snaps = box.snapshots()
    assert set(snaps) == set(mine) | {s for s, v in snaps.items() if v["type"] == "automated"}
    for sid in mine:  # same ids, new owner in the tags, grants and the hold kept
        assert snaps[sid]["tags"]["snapworker:policy"] == "prod-daily"
        assert snaps[sid]["accounts"] == sorted([ACC, ALIAS])
    assert snaps[held]["tags"]["snapworker:hold"] == "audit"
    tags = [j for j in box.journal() if j["kind"] == "tag" and j["status"] == "completed"]
    assert sorted(j["snapshot_id"] for j in tags) == sorted(mine)

    again = box.cli("run", **AT)
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == (
        "0 succeeded, 0 failed"
    )
    assert box.snapshots() == snaps

    # 40 days on: new automated snapshots are copied under the new name, and retention
    # (keep_last 3, max_age_days 35) counts the old ones: all expire but the held one.
    later = NOW + timedelta(days=40)
    for d in (1, 2, 3):
        box.automated("prod-a", d, now=later)
    fake = {"SNAPWORKER_FAKE_NOW": later.isoformat()}
    for _ in range(2):
        r = box.cli("run", **fake)
        assert r.returncode == 0, r.stdout + r.stderr
    snaps = box.snapshots()
    assert set(mine) & set(snaps) == {held}
    assert snaps[held]["tags"]["snapworker:hold"] == "audit"
    p = plan_json(box.cli("plan", "--format", "json", **fake))
    assert next(k for k in p["kept"] if k["snapshot"] == held).get("held") is True


def test_explain_an_orphaned_snapshot_shows_its_live_grants(sandbox: Sandbox) -> None:
    box = sandbox
    mine = estate(box)
    sid = sorted(mine)[0]
    box.write_config(RENAMED)
    r = box.cli("plan", "--explain", sid, **AT)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "none (the policy shares with no account)" not in out
    assert "belongs to no configured policy" in out and "still shared with 2 accounts" in out
    grants = out.split("\nGrants\n")[1].split("\n\n")[0].splitlines()
    assert [g.split()[0] for g in grants] == sorted([ACC, ALIAS]), out
    assert all("shared" in g and "nothing revokes it" in g for g in grants), out
    j = json.loads(box.cli("plan", "--explain", sid, "--format", "json", **AT).stdout)
    assert sorted(g["account"] for g in j["grants"] if g["authorized"]) == sorted([ACC, ALIAS])
    assert "belongs to no configured policy" in j["orphan"]
    # Its source, an automated snapshot, names the orphaned copy and the new policy's plan.
    src = mine[sid]["tags"].get("snapworker:source") or next(
        v["tags"]["snapworker:source"] for v in mine.values() if "snapworker:source" in v["tags"]
    )
    j = json.loads(box.cli("plan", "--explain", src, "--format", "json", **AT).stdout)
    copies = {c["policy"]: c for c in j["copies"]}
    assert copies["prod-nightly"]["state"] == "orphaned"
    assert copies["prod-daily"]["state"] == "planned"

    # The same snapshot with its policy in the config, but left out by --policy.
    box.write_config(WITH_CREATE + "  - name: other\n    select:\n      clusters: [nothing-*]\n")
    r = box.cli("plan", "--explain", sid, "--policy", "other", **AT)
    assert r.returncode == 0, r.stderr
    assert "left out of this plan (--policy)" in r.stdout and "still shared" in r.stdout
    assert "none (the policy shares" not in r.stdout and ALIAS in r.stdout


def test_explain_an_automated_snapshot_names_its_copy_per_policy(sandbox: Sandbox) -> None:
    box = sandbox
    mine = estate(box)
    copied = {
        v["tags"]["snapworker:source"]: sid
        for sid, v in mine.items()
        if "snapworker:source" in v["tags"]
    }
    src = sorted(copied)[0]
    fresh = box.automated("prod-a", 0.5, now=NOW)  # not copied yet
    old = box.automated("prod-a", 50, now=NOW)  # past max_age_days 35
    box.write_config(
        WITH_CREATE
        + "  - name: second\n    select:\n      clusters: [prod-a]\n    copy_automated: true\n"
        + "    retention:\n      keep_last: 10\n"
    )

    def explain(sid: str) -> dict:
        r = box.cli("plan", "--explain", sid, "--format", "json", **AT)
        assert r.returncode == 0, r.stderr
        return {c["policy"]: c for c in json.loads(r.stdout)["copies"]}

    c = explain(src)
    assert c["prod-nightly"]["state"] == "exists" and c["prod-nightly"]["copy"] == copied[src]
    assert c["second"]["state"] == "planned"
    c = explain(fresh)
    assert c["prod-nightly"]["state"] == "planned" and c["second"]["state"] == "planned"
    c = explain(old)
    assert c["prod-nightly"]["state"] == "not copied"
    assert "past retention" in c["prod-nightly"]["why"]
    text = box.cli("plan", "--explain", src, **AT).stdout
    assert f"prod-nightly: exists {copied[src]}" in text and "second: planned" in text
