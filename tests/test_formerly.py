"""``formerly`` in the core: ownership of a former name's snapshots is granted only through
it, survives the tag rewrite, and the delete guard follows it (issue 18, "Orphans")."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from snapworker.core import guards, ids
from snapworker.core.model import TAG_POLICY, Cluster, Inventory, OwnedRecord, Snapshot, State
from snapworker.core.ownership import owner_of, ownership_tags
from snapworker.core.planner import plan
from snapworker.core.policy import Policy, Retention, Select, ShareSpec

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD, NEW = "prod-nightly", "prod-daily"
ACC = "111122223333"


def copy_of(policy: str, source: str, age_days: int, tagged_as: str | None = None) -> Snapshot:
    """A copy ``policy`` made of ``source`` (its id made from ``policy``), its tags naming
    ``tagged_as`` (default: ``policy``)."""
    sid = ids.copy_snapshot_id(policy, "prod-a", source)
    t = NOW - timedelta(days=age_days)
    rec = OwnedRecord(sid, tagged_as or policy, "prod-a", "copy", t, source_id=source)
    return Snapshot(sid, "prod-a", "manual", "available", t, ownership_tags(rec), (ACC,))


def estate(*snaps: Snapshot) -> Inventory:
    return Inventory({"prod-a": Cluster("prod-a", "available")}, {s.id: s for s in snaps})


def policy(**kw: object) -> Policy:
    return Policy(
        NEW,
        select=Select(("prod-*",)),
        copy_automated=True,
        share=ShareSpec((ACC,)),
        retention=Retention(keep_last=2),
        **kw,  # type: ignore[arg-type]
    )


def test_a_former_name_is_owned_only_through_formerly() -> None:
    old = copy_of(OLD, "rs:prod-a-1", 3)
    retagged = copy_of(OLD, "rs:prod-a-2", 2, tagged_as=NEW)
    state = State()
    assert owner_of(old, state, {}, None, {}).record.policy == OLD  # type: ignore[union-attr]
    assert owner_of(retagged, state, {}, None, {}) is None  # tag says NEW, id made from OLD
    renames = {OLD: NEW}
    own = owner_of(old, state, {}, None, renames)
    assert own is not None and own.record.policy == NEW and own.proof == "former"
    own = owner_of(retagged, state, {}, None, renames)
    assert own is not None and own.record.policy == NEW and own.proof == "tags"
    # The delete guard follows formerly, and only it.
    bare = Snapshot(old.id, old.cluster, "manual", "available", old.create_time, old.tags)
    assert guards.delete_refusal(bare, NEW, "snapworker:hold", state, None) is not None
    assert guards.delete_refusal(bare, NEW, "snapworker:hold", state, None, renames) is None


def test_the_plan_retags_counts_and_copies_nothing_again() -> None:
    autos = [
        Snapshot(f"rs:prod-a-{d}", "prod-a", "automated", "available", NOW - timedelta(days=d))
        for d in (1, 2, 3)
    ]
    olds = [copy_of(OLD, a.id, d) for a, d in zip(autos, (1, 2, 3), strict=True)]
    inv = estate(*autos, *olds)
    without = plan([policy()], inv, State(), NOW, all_policy_names=[NEW])
    assert sorted(a.kind for a in without.actions) == ["copy", "copy"]  # keep_last 2
    warn = [n for n in without.notes if n.level == "warning" and n.policy == OLD]
    assert len(warn) == 1 and warn[0].message.startswith(
        "3 snapshots belong to policy 'prod-nightly', which the config no longer defines "
        "(3 still shared)"
    )
    p = plan([policy(formerly=(OLD,))], inv, State(), NOW, all_policy_names=[NEW])
    assert not [n for n in p.notes if n.level == "warning"]
    tags = [a for a in p.actions if a.kind == "tag"]
    assert sorted(a.snapshot for a in tags) == sorted(s.id for s in olds)
    assert all(a.policy == NEW and "rewriting them to prod-daily" in a.reason for a in tags)
    # keep_last 2 counts the old copies: the oldest goes, nothing is copied again
    assert [a.snapshot for a in p.actions if a.kind == "delete"] == [olds[2].id]
    assert not [a for a in p.actions if a.kind in ("copy", "create")]
    # After the rewrite: owned by tags under the new name, nothing more to do
    done = estate(
        *autos,
        *(replace(s, tags={**s.tags, TAG_POLICY: NEW}) for s in olds[:2]),
    )
    again = plan([policy(formerly=(OLD,))], done, State(), NOW, all_policy_names=[NEW])
    assert again.actions == () and {k.snapshot for k in again.kept} == {s.id for s in olds[:2]}
