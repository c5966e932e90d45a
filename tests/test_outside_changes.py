"""What changed outside snapworker, through the real CLI against moto's server: an owned
snapshot deleted by hand and a grant revoked by hand are recorded as such by the next `run`
(one warning each, in that run only), `status` shows them in their own sections (table,
json and markdown), their grants are no longer counted as open, and `plan` records nothing."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from tests.e2e_support import Sandbox

pytestmark = pytest.mark.e2e

ACC = "111122223333"
ALIAS = "amazon-redshift-support"


def _status(box: Sandbox) -> dict[str, Any]:
    r = box.cli("status", "--format", "json")
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def _owned_copies(box: Sandbox) -> list[str]:
    return sorted(
        sid
        for sid, s in box.snapshots().items()
        if s["type"] == "manual" and s["tags"].get("snapworker:policy") == "prod-nightly"
    )


def _gone_rows(box: Sandbox) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(box.db)
    try:
        return list(
            con.execute(
                "select snapshot_id, deleted_reason from owned_snapshot "
                "where deleted_reason is not null"
            )
        )
    finally:
        con.close()


def test_deleted_and_revoked_by_hand_are_recorded_once_and_shown(sandbox: Sandbox) -> None:
    box = sandbox
    box.cluster("prod-a", env="prod")
    for d in (1, 2, 3):
        box.automated("prod-a", d)
    for _ in range(2):  # copies, then shares once they are available
        r = box.cli("run")
        assert r.returncode == 0, r.stdout + r.stderr
    copies = _owned_copies(box)
    assert len(copies) == 3
    assert all(box.snapshots()[c]["accounts"] == sorted([ACC, ALIAS]) for c in copies)
    before = _status(box)
    assert len(before["open_grants"]) == 6
    assert before["deleted_outside"] == [] and before["grants_revoked_outside"] == []

    # By hand, with boto3: revoke both grants of one copy and delete it; revoke one grant
    # of another copy.
    client = box.client()
    deleted, revoked = copies[0], copies[1]
    for account in (ACC, ALIAS):
        client.revoke_snapshot_access(
            SnapshotIdentifier=deleted,
            SnapshotClusterIdentifier="prod-a",
            AccountWithRestoreAccess=account,
        )
    client.delete_cluster_snapshot(SnapshotIdentifier=deleted, SnapshotClusterIdentifier="prod-a")
    client.revoke_snapshot_access(
        SnapshotIdentifier=revoked, SnapshotClusterIdentifier="prod-a", AccountWithRestoreAccess=ACC
    )

    # plan (a dry run) records nothing and says nothing of it
    p = box.cli("plan")
    assert p.returncode == 0, p.stderr
    assert "outside snapworker" not in p.stdout + p.stderr
    assert _gone_rows(box) == []
    assert len(_status(box)["open_grants"]) == 6

    # the next run records both, and warns once about each
    r = box.cli("run")
    assert r.returncode == 0, r.stdout + r.stderr
    warned = [
        line
        for line in r.stderr.splitlines()
        if line.startswith("warning:") and "outside snapworker" in line
    ]
    assert len(warned) == 2, r.stderr
    assert any(
        deleted in line and "deleted outside snapworker" in line and "first missed" in line
        for line in warned
    ), warned
    assert any(
        revoked in line and ACC in line and "revoked outside snapworker" in line for line in warned
    ), warned
    assert _gone_rows(box) == [(deleted, "deleted outside snapworker")]

    after = _status(box)
    assert [(o["snapshot"], o["policy"], o["cluster"]) for o in after["deleted_outside"]] == [
        (deleted, "prod-nightly", "prod-a")
    ]
    assert after["deleted_outside"][0]["first_missed"]
    assert [(g["snapshot"], g["grantee"]) for g in after["grants_revoked_outside"]] == [
        (revoked, ACC)
    ]
    # The deleted copy's two grants are closed (the revoked one is shared again by that
    # run, as the policy says).
    assert len(after["open_grants"]) == 4
    assert deleted not in {g["snapshot"] for g in after["open_grants"]}
    assert box.snapshots()[revoked]["accounts"] == sorted([ACC, ALIAS])
    owned = {o["snapshot"]: o for o in after["owned"]}
    assert owned[deleted]["deleted_reason"] == "deleted outside snapworker"

    table = box.cli("status")
    assert table.returncode == 0, table.stderr
    assert "2 live, 0 deleted by snapworker, 1 deleted outside snapworker" in table.stdout
    assert "Deleted outside snapworker: 1" in table.stdout
    assert f"prod-nightly/prod-a: {deleted} (first missed" in table.stdout
    assert "Grants revoked outside snapworker: 1" in table.stdout
    assert f"{revoked} -> {ACC} (first missed" in table.stdout
    assert "Open grants: 4" in table.stdout
    md = box.cli("status", "--format", "markdown")
    assert md.returncode == 0, md.stderr
    assert "## Deleted outside snapworker: 1" in md.stdout
    assert "## Grants revoked outside snapworker: 1" in md.stdout

    # a third run warns about neither again, and changes nothing of it
    again = box.cli("run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "outside snapworker" not in again.stdout + again.stderr, again.stderr
    assert _status(box)["deleted_outside"] == after["deleted_outside"]
    assert _status(box)["grants_revoked_outside"] == after["grants_revoked_outside"]
    assert len(_status(box)["open_grants"]) == 4

    # and `plan --explain` on the deleted one says what the state DB knows
    ex = box.cli("plan", "--explain", deleted)
    assert ex.returncode == 2
    assert "deleted outside snapworker" in ex.stderr, ex.stderr
