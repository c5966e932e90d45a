"""Retention an auditor would sign, end to end: the CLI as a subprocess against moto's
server and a real SQLite file, with the clock moved by ``SNAPWORKER_FAKE_NOW``.

- unshare_after: a grant is revoked once it is that old, the snapshot stays, the state DB
  records when the grant was made and revoked, and later runs do not share it again;
- drift: a grant made by hand to an unlisted account is reported by ``plan`` (JSON and
  table), recorded by ``run`` so that ``status`` shows it, and revoked only once the policy
  says ``revoke_unlisted: true``;
- hold and release through the CLI: a held expired snapshot is kept (``plan`` says why)
  and not deleted by ``run``; released, it is; an unknown or unowned snapshot is refused
  with exit 2 and no AWS mutation;
- fail-safe expiry: ManualSnapshotRetentionPeriod on the copies, -1 while held, restored
  on release; ``plan`` warns when it is shorter than what the rules keep;
- ``plan --explain``: the whole decision for one snapshot.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snapworker.core import ids
from snapworker.core.model import OwnedRecord
from snapworker.core.ownership import ownership_tags
from snapworker.sandbox import moto_ext
from tests.e2e_support import Sandbox, plan_json

pytestmark = pytest.mark.e2e

ACC = "111122223333"
OTHER = "444455556666"

CONFIG = """\
state_url: sqlite:///{{db}}
aws:
  region: us-east-1
retry:
  attempts: 2
  wait_initial_seconds: 0
  wait_max_seconds: 0
policies:
  - name: prod-nightly
    select:
      clusters: ["prod-*"]
    copy_automated: true
    share:
      accounts: ["{acc}"]
      unshare_after: 2d
      revoke_unlisted: {revoke_unlisted}
    retention:
      max_age_days: {max_age}
      keep_last: 1
{extra}"""


def config(
    box: Sandbox, *, revoke_unlisted: bool = False, max_age: int = 35, extra: str = ""
) -> None:
    box.write_config(
        CONFIG.format(
            acc=ACC,
            revoke_unlisted=str(revoke_unlisted).lower(),
            max_age=max_age,
            extra=extra,
        )
    )


def at(days: float) -> dict[str, str]:
    """The CLI's clock, ``days`` from now."""
    return {"SNAPWORKER_FAKE_NOW": (datetime.now(UTC) + timedelta(days=days)).isoformat()}


def ok(result: Any) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def rows(box: Sandbox, sql: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(box.db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def owned(box: Sandbox) -> dict[str, dict[str, Any]]:
    return {
        sid: s
        for sid, s in box.snapshots().items()
        if s["tags"].get("snapworker:policy") == "prod-nightly"
    }


def seed_owned(box: Sandbox, *ages: float) -> list[str]:
    """Copies the policy owns (their tags prove it), of automated snapshots ``ages`` days old,
    oldest data first; the first ``run`` adopts them and shares them."""
    now = datetime.now(UTC)
    out = []
    for age in sorted(ages, reverse=True):
        data_time = now - timedelta(days=age)
        source = moto_ext.automated_snapshot_id("prod-a", data_time)
        sid = ids.copy_snapshot_id("prod-nightly", "prod-a", source)
        rec = OwnedRecord(sid, "prod-nightly", "prod-a", "copy", data_time, source_id=source)
        moto_ext.add_manual_snapshot(
            box.backend(), "prod-a", sid, create_time=data_time, tags=ownership_tags(rec)
        )
        out.append(sid)
    return out


def shared(box: Sandbox, *ages: float) -> list[str]:
    """:func:`seed_owned`, then one ``run`` that shares them with the listed account."""
    box.cluster("prod-a")
    sids = seed_owned(box, *ages)
    ok(box.cli("run"))
    snaps = box.snapshots()
    assert all(snaps[sid]["accounts"] == [ACC] for sid in sids)
    return sids


def test_unshare_after_revokes_the_grant_keeps_the_snapshot_and_never_shares_again(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    config(box)
    (sid,) = shared(box, 1)
    granted = rows(box, "select * from [grant]")
    assert [(g["snapshot_id"], g["account"], g["revoked_at"]) for g in granted] == [
        (sid, ACC, None)
    ]
    assert granted[0]["granted_at"]

    # past unshare_after (2d): revoked, the snapshot stays
    p = plan_json(box.cli("plan", "--format", "json", **at(2.5)))
    assert [(a["action"], a["snapshot"], a["grantee"]) for a in p["actions"]] == [
        ("revoke", sid, ACC)
    ]
    assert p["actions"][0]["reason"].startswith("unshare_after 2d: granted ")
    r = ok(box.cli("run", **at(2.5)))
    assert "1 succeeded, 0 failed" in r.stdout
    assert box.snapshots()[sid]["accounts"] == []
    (grant,) = rows(box, "select * from [grant]")
    granted_at = datetime.fromisoformat(grant["granted_at"]).replace(tzinfo=UTC)
    revoked_at = datetime.fromisoformat(grant["revoked_at"]).replace(tzinfo=UTC)
    assert timedelta(days=2.4) < revoked_at - granted_at < timedelta(days=2.6)

    # later runs do not share it again
    r = ok(box.cli("run", **at(4)))
    assert r.stdout.strip().splitlines()[-1] == "0 succeeded, 0 failed"
    assert box.snapshots()[sid]["accounts"] == []
    explained = ok(box.cli("plan", "--explain", sid, **at(4))).stdout
    assert "revoked at " in explained and "lapsed under unshare_after" in explained


def test_after_the_db_is_lost_an_existing_grant_is_timed_from_when_it_is_first_seen(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    config(box)
    (sid,) = shared(box, 1)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{box.db}{suffix}").unlink(missing_ok=True)

    # The next run adopts the copy and records the grant it finds as made now.
    r = ok(box.cli("run", **at(1)))
    assert "adopted 1 owned snapshot(s) from their tags" in r.stdout
    (grant,) = rows(box, "select * from [grant]")
    assert (grant["snapshot_id"], grant["account"], grant["revoked_at"]) == (sid, ACC, None)
    seen = datetime.fromisoformat(grant["granted_at"]).replace(tzinfo=UTC)
    assert abs(seen - (datetime.now(UTC) + timedelta(days=1))) < timedelta(hours=1)

    # unshare_after (2d) counts from then: kept at 1 + 1.5 days, revoked at 1 + 2.5 days.
    assert plan_json(box.cli("plan", "--format", "json", **at(2.5)))["actions"] == []
    p = plan_json(box.cli("plan", "--format", "json", **at(3.5)))
    assert [(a["action"], a["snapshot"], a["grantee"]) for a in p["actions"]] == [
        ("revoke", sid, ACC)
    ]
    ok(box.cli("run", **at(3.5)))
    assert box.snapshots()[sid]["accounts"] == []
    assert sid in box.snapshots()  # revoking access never deletes


def test_drift_is_reported_recorded_and_revoked_only_under_revoke_unlisted(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    config(box)
    (sid,) = shared(box, 1)
    box.client().authorize_snapshot_access(
        SnapshotIdentifier=sid, SnapshotClusterIdentifier="prod-a", AccountWithRestoreAccess=OTHER
    )

    p = plan_json(box.cli("plan", "--format", "json"))
    assert [(d["snapshot"], d["grantee"]) for d in p["drift"]] == [(sid, OTHER)]
    assert p["actions"] == []
    table = ok(box.cli("plan"))
    assert f"drift  {sid}: shared with {OTHER}, not listed by the policy" in table.stdout

    ok(box.cli("run"))
    assert box.snapshots()[sid]["accounts"] == sorted([ACC, OTHER])  # reported, not revoked
    recorded = rows(box, "select * from drift")
    assert [(d["run_id"], d["snapshot_id"], d["account"], d["revoked"]) for d in recorded] == [
        (2, sid, OTHER, 0)
    ]
    status = ok(box.cli("status")).stdout
    assert "as seen by run #2" in status
    assert f"prod-nightly/prod-a: {sid} -> {OTHER}: reported, not revoked" in status

    config(box, revoke_unlisted=True)
    r = ok(box.cli("run"))
    assert "1 succeeded, 0 failed" in r.stdout
    assert box.snapshots()[sid]["accounts"] == [ACC]
    (revoke,) = [j for j in box.journal() if j["kind"] == "revoke"]
    assert revoke["account"] == OTHER and revoke["reason"].startswith("drift:")
    status = json.loads(ok(box.cli("status", "--format", "json")).stdout)
    assert status["drift"]["run_id"] == 3
    assert [
        {k: v for k, v in g.items() if k not in ("target", "account", "region")}
        for g in status["drift"]["grants"]
    ] == [
        {
            "policy": "prod-nightly",
            "cluster": "prod-a",
            "snapshot": sid,
            "grantee": OTHER,
            "revoked": True,
        }
    ]


def test_hold_release_and_explain_through_the_cli(sandbox: Sandbox) -> None:
    box = sandbox
    config(box, max_age=5)
    older, newer = shared(box, 3, 1)
    box.manual("manual-keep-forever", "prod-a", 400, owner="dba")
    later = at(10)  # both copies past max_age_days 5; keep_last 1 keeps the newer

    # refusals: exit 2, a clear message, no AWS mutation
    moto_ext.reset_call_counts()
    for args, message in (
        (("hold", "no-such-snapshot", "--reason", "x"), "no snapshot 'no-such-snapshot'"),
        (("hold", "manual-keep-forever", "--reason", "x"), "is not owned by snapworker"),
    ):
        r = box.cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert message in r.stderr
    calls = moto_ext.call_counts()
    assert not {"CreateTags", "DeleteTags", "ModifyClusterSnapshot"} & set(calls), calls
    assert box.snapshots()["manual-keep-forever"]["tags"] == {"owner": "dba"}

    # explain, before the hold: every rule, the grant, the actions
    e = json.loads(ok(box.cli("plan", "--explain", older, "--format", "json", **later)).stdout)
    assert e["owner"] == {
        "owned": True,
        "policy": "prod-nightly",
        "proof": "tags",
        "why": "owned by policy prod-nightly: its snapworker:* tags match its id "
        "(tags are the source of truth)",
    }
    assert 12.5 < e["age_days"] < 13.5
    assert [(r["rule"], r["keeps"], r["why"]) for r in e["rules"]] == [
        ("keep_last 1", False, "#2 newest, not among the newest 1"),
        ("max_age_days 5", False, e["rules"][1]["why"]),
    ]
    assert e["rules"][1]["why"].endswith("days old, over 5")
    assert e["retention"].startswith("expired: ")
    (grant,) = e["grants"]
    assert grant["account"] == ACC and grant["authorized"] and grant["granted_at"]
    assert "due now" in grant["status"]  # unshare_after 2d lapsed too
    assert [a["action"] for a in e["actions"]] == ["revoke", "delete"]
    assert e["outcome"] == "revoke 1 grant(s), then delete"

    r = ok(box.cli("hold", older, "--reason", "legal case 42"))
    assert f"held {older}" in r.stdout
    assert box.snapshots()[older]["tags"]["snapworker:hold"] == "legal case 42"

    p = plan_json(box.cli("plan", "--format", "json", **later))
    (kept,) = [k for k in p["kept"] if k["snapshot"] == older]
    assert kept["held"] is True and "snapworker:hold=legal case 42" in kept["reason"]
    assert not [a for a in p["actions"] if a["snapshot"] == older]
    assert [a["action"] for a in p["actions"] if a["snapshot"] == newer] == ["revoke"]
    table = ok(box.cli("plan", **later)).stdout
    (line,) = [ln for ln in table.splitlines() if older in ln]
    assert line.split()[0] == "held" and "legal case 42" in line

    ok(box.cli("run", **later))
    snaps = box.snapshots()
    assert older in snaps and snaps[older]["accounts"] == [ACC]  # held: not even unshared
    assert snaps[newer]["accounts"] == []  # unshare_after lapsed, not held
    text = ok(box.cli("plan", "--explain", older, **later)).stdout
    assert "held: snapworker:hold=legal case 42" in text and "Result: held" in text

    r = ok(box.cli("release", older))
    assert f"released {older}" in r.stdout
    assert "snapworker:hold" not in box.snapshots()[older]["tags"]
    ok(box.cli("run", **later))
    snaps = box.snapshots()
    assert older not in snaps and newer in snaps
    assert snaps["manual-keep-forever"]["tags"] == {"owner": "dba"}

    text = ok(box.cli("plan", "--explain", "manual-keep-forever")).stdout
    assert "not owned: no snapworker:policy tag" in text and "Result: left alone" in text
    r = box.cli("plan", "--explain", older)
    assert r.returncode == 2
    assert f"no snapshot '{older}'" in r.stderr and "snapworker deleted it at" in r.stderr


def retention_periods(box: Sandbox) -> dict[str, int]:
    page = box.client().describe_cluster_snapshots(SnapshotType="manual")
    return {s["SnapshotIdentifier"]: s["ManualSnapshotRetentionPeriod"] for s in page["Snapshots"]}


def test_fail_safe_expiry_is_set_on_copies_suspended_by_a_hold_and_explained(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    config(box)
    box.write_config(
        box.config.read_text().replace(
            "      keep_last: 1\n", "      keep_last: 1\n      fail_safe_days: 30\n"
        )
    )
    box.cluster("prod-a")
    box.automated("prod-a", 1)
    box.manual("manual-keep-forever", "prod-a", 400)
    r = ok(box.cli("run"))
    assert "warning: prod-nightly: fail_safe_days 30 is shorter" in r.stderr
    assert "max_age_days 35 (~35 d)" in r.stderr and "keep_last 1 (no time bound)" in r.stderr
    (sid,) = owned(box)
    assert retention_periods(box) == {sid: 30, "manual-keep-forever": -1}
    text = ok(box.cli("plan", "--explain", sid)).stdout
    assert "AWS expiry: ManualSnapshotRetentionPeriod 30 days: AWS deletes it at " in text

    r = ok(box.cli("hold", sid, "--reason", "audit"))
    assert "ManualSnapshotRetentionPeriod set to -1" in r.stdout
    assert retention_periods(box)[sid] == -1
    e = json.loads(ok(box.cli("plan", "--explain", sid, "--format", "json")).stdout)
    assert (e["fail_safe_days"], e["retention_period"], e["aws_expiry"]) == (30, -1, None)
    assert e["hold"] == {"tag": "snapworker:hold", "reason": "audit"}
    r = ok(box.cli("release", sid))
    assert "ManualSnapshotRetentionPeriod 30 days" in r.stdout
    assert retention_periods(box)[sid] == 30
