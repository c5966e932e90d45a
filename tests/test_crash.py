"""Crash anywhere: SIGKILL ``snapworker run`` just before and just after each of its AWS
mutations (create, copy, tag, share, revoke, delete), then rerun until nothing is left:
the end state equals that of an uninterrupted run, no snapshot is made twice, no delete
happens while an account is authorized, and the journal completes every action once."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from snapworker.core import ids
from snapworker.core.model import OwnedRecord
from snapworker.core.ownership import ownership_tags
from snapworker.sandbox import moto_ext
from tests.e2e_support import CONFIG, Sandbox, reset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACC = "111122223333"
ALIAS = "amazon-redshift-support"
SCENARIO_CONFIG = CONFIG.replace(
    "    copy_automated: true",
    '    create:\n      schedule: "0 3 * * *"\n    copy_automated: true',
)
FIRST_RUN_MUTATIONS = 10  # create 1, copy+tag 2x2, share 2, revoke 2, delete 1
# One seed time for the reference and every killed run, so their inventories are identical.
SEED_NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def owned_copy(box: Sandbox, source: str, source_age: float, accounts: list[str]) -> str:
    t = SEED_NOW - timedelta(days=source_age)
    sid = ids.copy_snapshot_id("prod-nightly", "prod-a", source)
    rec = OwnedRecord(sid, "prod-nightly", "prod-a", "copy", t, source_id=source)
    moto_ext.add_manual_snapshot(
        box.backend(), "prod-a", sid, create_time=t, tags=ownership_tags(rec), accounts=accounts
    )
    return sid


def seed(box: Sandbox) -> None:
    box.write_config(SCENARIO_CONFIG)
    box.cluster("prod-a", env="prod")
    box.automated("prod-a", 1, now=SEED_NOW)
    box.automated("prod-a", 2, now=SEED_NOW)
    for age, accounts in ((3, [ACC]), (4, [ACC]), (5, [ACC, ALIAS]), (60, [ACC, ALIAS])):
        owned_copy(box, f"rs:prod-a-old-{age}", age, accounts)
    box.manual("manual-keep-forever", "prod-a", 400, owner="dba")


def converge(box: Sandbox, limit: int = 5) -> int:
    for n in range(limit):
        r = box.cli("run")
        assert r.returncode == 0, r.stdout + r.stderr
        if r.stdout.strip().splitlines()[-1] == "0 succeeded, 0 failed":
            return n
    raise AssertionError("did not converge")


def end_state(box: Sandbox) -> dict[str, tuple]:
    return {
        sid: (s["type"], s["status"], tuple(sorted(s["tags"].items())), tuple(s["accounts"]))
        for sid, s in box.snapshots().items()
    }


@pytest.fixture(scope="module")
def reference(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    box = Sandbox(moto_url, tmp_path_factory.mktemp("reference"))
    reset(moto_url)
    seed(box)
    converge(box)
    state = end_state(box)
    reset(moto_url)
    return state


def test_reference_scenario_has_every_kind_of_mutation(sandbox: Sandbox) -> None:
    seed(sandbox)
    r = sandbox.cli("run")
    assert r.returncode == 0
    counts = moto_ext.call_counts()
    mutations = {
        k: v
        for k, v in counts.items()
        if k
        in (
            "CreateClusterSnapshot",
            "CopyClusterSnapshot",
            "CreateTags",
            "AuthorizeSnapshotAccess",
            "RevokeSnapshotAccess",
            "DeleteClusterSnapshot",
        )
    }
    assert sum(mutations.values()) == FIRST_RUN_MUTATIONS, mutations
    assert len(mutations) == 6


KILL_POINTS = [
    f"{stage}:{n}" for n in range(1, FIRST_RUN_MUTATIONS + 1) for stage in ("before", "after")
]


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_killed_run_converges_to_the_uninterrupted_end_state(
    sandbox: Sandbox, reference: dict[str, tuple], kill_at: str
) -> None:
    box = sandbox
    seed(box)
    killed = box.cli("run", SNAPWORKER_KILL_AT=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    converge(box)
    assert end_state(box) == reference
    # every action of the scenario completed exactly once in the journal
    journal = box.journal()
    completed = Counter(j["key"] for j in journal if j["status"] == "completed")
    assert all(n == 1 for n in completed.values()), completed
    assert not [j for j in journal if j["status"] == "pending"]
    # never a delete while an account was authorized: the expired snapshot's revokes
    # completed before its delete started
    deletes = [j for j in journal if j["kind"] == "delete" and j["status"] == "completed"]
    assert len(deletes) == 1
    sid = deletes[0]["snapshot_id"]
    revokes = [j for j in journal if j["snapshot_id"] == sid and j["kind"] == "revoke"]
    assert {j["account"] for j in revokes if j["status"] == "completed"} == {ACC, ALIAS}
    assert all(
        j["finished_at"] <= deletes[0]["started_at"] for j in revokes if j["status"] == "completed"
    )
