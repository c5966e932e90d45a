"""Drift entries in the plan JSON say their remedy: ``"revoke"`` under ``revoke_unlisted:
true``, ``"report"`` otherwise (or when a hold blocks the revoke); only an entry whose grant
this plan revokes says ``"action": "revoke"``. Through the real CLI against moto's server."""

from __future__ import annotations

import json

import pytest

from tests.e2e_support import Sandbox, plan_json
from tests.test_e2e_retention import OTHER, config, ok, shared

pytestmark = pytest.mark.e2e


def _drift(box: Sandbox, *args: str) -> list[dict[str, object]]:
    return list(plan_json(box.cli("plan", "--format", "json", *args))["drift"])


def test_drift_says_its_remedy_and_claims_no_revoke_it_will_not_make(sandbox: Sandbox) -> None:
    box = sandbox
    config(box)
    (sid,) = shared(box, 1)
    box.client().authorize_snapshot_access(
        SnapshotIdentifier=sid, SnapshotClusterIdentifier="prod-a", AccountWithRestoreAccess=OTHER
    )
    base = {"policy": "prod-nightly", "cluster": "prod-a", "snapshot": sid, "grantee": OTHER}

    # revoke_unlisted: false (the default): reported only, and no "action": "revoke"
    (entry,) = _drift(box)
    assert entry["remedy"] == "report"
    assert "action" not in entry
    assert {k: entry[k] for k in base} == base
    explained = json.loads(ok(box.cli("plan", "--explain", sid, "--format", "json")).stdout)
    assert [(d["remedy"], "action" in d) for d in explained["drift"]] == [("report", False)]

    # revoke_unlisted: true: the plan revokes it, and says so
    config(box, revoke_unlisted=True)
    (entry,) = _drift(box)
    assert (entry["remedy"], entry["action"]) == ("revoke", "revoke")
    plan = plan_json(box.cli("plan", "--format", "json"))
    assert [(a["action"], a["grantee"]) for a in plan["actions"]] == [("revoke", OTHER)]

    # a hold blocks every revoke: reported only, even under revoke_unlisted: true
    ok(box.cli("hold", sid, "--reason", "legal"))
    (entry,) = _drift(box)
    assert entry["remedy"] == "report"
    assert "action" not in entry
