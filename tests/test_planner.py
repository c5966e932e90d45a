"""The planner on plain data with an injected clock: every rule of issue #2 and its edges."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from datetime import timedelta

import pytest

from snapworker.core import ids
from snapworker.core.model import (
    DELETED_OUTSIDE,
    REVOKED_OUTSIDE,
    SUPPORT_ALIAS,
    TAG_POLICY,
    Action,
    GrantRecord,
    Kept,
    OwnedRecord,
    State,
)
from snapworker.core.planner import plan
from tests.factories import (
    EMPTY,
    NOW,
    automated,
    cluster,
    days_ago,
    inventory,
    owned_copy,
    owned_create,
    policy,
    unowned,
)

ACC = "111122223333"


def kinds(p):  # (kind, snapshot, account) triples
    return [(a.kind, a.snapshot, a.account) for a in p.actions]


def shared(s):
    return (ACC, SUPPORT_ALIAS)


# -- copy --------------------------------------------------------------------------------


def test_copies_each_automated_snapshot_not_yet_copied():
    a1, a2 = automated("prod-a", days_ago(1)), automated("prod-a", days_ago(2))
    inv = inventory([cluster("prod-a")], [a1, a2])
    p = plan([policy().core], inv, EMPTY, NOW)
    copies = [a for a in p.actions if a.kind == "copy"]
    assert [(c.source, c.snapshot) for c in copies] == sorted(
        [
            (a1.id, ids.copy_snapshot_id("prod-nightly", "prod-a", a1.id)),
            (a2.id, ids.copy_snapshot_id("prod-nightly", "prod-a", a2.id)),
        ],
        key=lambda x: x[1],
    )
    assert all(c.data_time in (a1.create_time, a2.create_time) for c in copies)
    assert all("not yet copied" in c.reason for c in copies)


def test_copy_is_made_at_most_once_ever_even_after_retention_deleted_it():
    a1 = automated("prod-a", days_ago(1))
    target = ids.copy_snapshot_id("prod-nightly", "prod-a", a1.id)
    state = State(
        owned={
            target: OwnedRecord(
                target,
                "prod-nightly",
                "prod-a",
                "copy",
                a1.create_time,
                source_id=a1.id,
                deleted_at=NOW,
            )
        }
    )
    p = plan([policy().core], inventory([cluster("prod-a")], [a1]), state, NOW)
    assert not [a for a in p.actions if a.kind == "copy"]


def test_existing_owned_copy_is_not_copied_again():
    a1 = automated("prod-a", days_ago(1))
    p = plan(
        [policy().core],
        inventory([cluster("prod-a")], [a1, owned_copy("prod-nightly", a1)]),
        EMPTY,
        NOW,
    )
    assert not [a for a in p.actions if a.kind == "copy"]


def test_source_already_past_retention_is_not_copied():
    old = automated("prod-a", days_ago(50))
    newer = [automated("prod-a", days_ago(d)) for d in (1, 2, 3)]
    copies = [owned_copy("prod-nightly", s, shared(s)) for s in newer]
    inv = inventory([cluster("prod-a")], [old, *newer, *copies])
    p = plan([policy().core], inv, EMPTY, NOW)
    assert not [a for a in p.actions if a.kind == "copy"]
    assert any("already past retention" in n.message for n in p.notes)


def test_old_source_is_copied_when_keep_last_still_keeps_it():
    old = automated("prod-a", days_ago(50))
    p = plan([policy().core], inventory([cluster("prod-a")], [old]), EMPTY, NOW)
    assert [a.source for a in p.actions if a.kind == "copy"] == [old.id]


def test_sources_are_judged_together_so_a_copy_is_never_made_only_to_be_deleted():
    autos = [automated("prod-a", days_ago(d)) for d in (1, 2, 40, 50)]
    p = plan([policy().core], inventory([cluster("prod-a")], autos), EMPTY, NOW)
    assert sorted(a.source or "" for a in p.actions if a.kind == "copy") == sorted(
        s.id for s in autos[:3]
    )
    assert any(autos[3].id in n.message and "past retention" in n.message for n in p.notes)


def test_automated_snapshot_still_creating_is_not_copied_yet():
    a1 = automated("prod-a", days_ago(0.1), status="creating")
    p = plan([policy().core], inventory([cluster("prod-a")], [a1]), EMPTY, NOW)
    assert not p.actions


def test_unselected_cluster_is_not_copied():
    a1 = automated("dev-a", days_ago(1))
    p = plan([policy().core], inventory([cluster("dev-a")], [a1]), EMPTY, NOW)
    assert not p.actions


def test_tag_selection_requires_every_tag():
    pol = policy(select={"clusters": ["prod-*"], "tags": {"env": "prod", "team": "bi"}})
    a1, b1 = automated("prod-a", days_ago(1)), automated("prod-b", days_ago(1))
    inv = inventory(
        [cluster("prod-a", env="prod", team="bi"), cluster("prod-b", env="prod")], [a1, b1]
    )
    assert [a.cluster for a in plan([pol.core], inv, EMPTY, NOW).actions] == ["prod-a"]


def test_copy_target_taken_by_unowned_snapshot_is_reported_not_copied():
    a1 = automated("prod-a", days_ago(1))
    squatter = unowned(ids.copy_snapshot_id("prod-nightly", "prod-a", a1.id), "prod-a", NOW)
    p = plan([policy().core], inventory([cluster("prod-a")], [a1, squatter]), EMPTY, NOW)
    assert not p.actions
    assert any("does not own" in n.message and n.level == "warning" for n in p.notes)


# -- create ------------------------------------------------------------------------------


def test_create_is_due_at_once_on_a_never_snapshotted_cluster():
    pol = policy(create={"schedule": "0 3 * * *"}, copy_automated=False)
    p = plan([pol.core], inventory([cluster("prod-a")], []), EMPTY, NOW)
    fire = NOW.replace(hour=3, minute=0)
    assert kinds(p) == [("create", ids.create_snapshot_id("prod-nightly", "prod-a", fire), None)]
    assert p.actions[0].fire_time == fire


def test_create_not_due_again_within_the_same_fire_time_then_due_at_the_next():
    pol = policy(create={"schedule": "0 3 * * *"}, copy_automated=False)
    fire = NOW.replace(hour=3, minute=0)
    made = owned_create("prod-nightly", "prod-a", fire, shared(None))
    inv = inventory([cluster("prod-a")], [made])
    assert plan([pol.core], inv, EMPTY, NOW).actions == ()
    tomorrow = NOW + timedelta(days=1)
    p = plan([pol.core], inv, EMPTY, tomorrow)
    assert [a.kind for a in p.actions] == ["create"]
    assert p.actions[0].fire_time == fire + timedelta(days=1)


def test_create_exactly_at_fire_time_is_due():
    pol = policy(create={"schedule": "0 3 * * *"}, copy_automated=False)
    fire = NOW.replace(hour=3, minute=0)
    made = owned_create("prod-nightly", "prod-a", fire - timedelta(days=1), shared(None))
    p = plan([pol.core], inventory([cluster("prod-a")], [made]), EMPTY, fire)
    assert [a.fire_time for a in p.actions if a.kind == "create"] == [fire]


def test_create_on_busy_cluster_is_a_note_not_an_action():
    pol = policy(create={"schedule": "0 3 * * *"}, copy_automated=False)
    p = plan([pol.core], inventory([cluster("prod-a", status="paused")], []), EMPTY, NOW)
    assert p.actions == ()
    assert any("'paused'" in n.message for n in p.notes)


# -- share -------------------------------------------------------------------------------


def test_shares_owned_available_snapshot_with_each_account_not_yet_authorized():
    a1 = automated("prod-a", days_ago(1))
    c = owned_copy("prod-nightly", a1, accounts=[ACC])
    p = plan([policy().core], inventory([cluster("prod-a")], [a1, c]), EMPTY, NOW)
    assert kinds(p) == [("share", c.id, SUPPORT_ALIAS)]


def test_snapshot_still_creating_is_not_shared():
    a1 = automated("prod-a", days_ago(1))
    c = owned_copy("prod-nightly", a1, status="creating")
    p = plan([policy().core], inventory([cluster("prod-a")], [a1, c]), EMPTY, NOW)
    assert p.actions == ()
    assert any("creating" in k.reason for k in p.kept)


# -- retention ---------------------------------------------------------------------------


def _estate(ages, accounts=(ACC, SUPPORT_ALIAS)):
    autos = [automated("prod-a", days_ago(d)) for d in ages]
    return autos, [owned_copy("prod-nightly", s, accounts) for s in autos]


def test_expired_snapshot_is_revoked_for_every_account_then_deleted():
    _, copies = _estate([1, 2, 3, 40])
    p = plan([policy().core], inventory([cluster("prod-a")], copies), EMPTY, NOW)
    old = copies[3].id
    assert kinds(p) == [
        ("revoke", old, ACC),
        ("revoke", old, SUPPORT_ALIAS),
        ("delete", old, None),
    ]
    delete = p.actions[-1]
    assert "age 40 d > max_age_days 35" in delete.reason
    assert "not among the newest 3" in delete.reason
    assert {k.snapshot for k in p.kept} == {c.id for c in copies[:3]}


def test_exactly_at_max_age_is_kept_one_second_more_expires():
    _, copies = _estate([1, 2, 3, 35])
    inv = inventory([cluster("prod-a")], copies)
    assert [a.kind for a in plan([policy().core], inv, EMPTY, NOW).actions] == []
    later = NOW + timedelta(seconds=1)
    assert [a.kind for a in plan([policy().core], inv, EMPTY, later).actions][-1] == "delete"


def test_keep_last_is_a_floor_whatever_the_ages():
    _, copies = _estate([100, 200, 300, 400])
    p = plan([policy().core], inventory([cluster("prod-a")], copies), EMPTY, NOW)
    deleted = [a.snapshot for a in p.actions if a.kind == "delete"]
    assert deleted == [copies[3].id]
    assert {k.snapshot for k in p.kept} == {c.id for c in copies[:3]}


def test_keep_last_larger_than_the_number_of_snapshots_keeps_all():
    _, copies = _estate([100, 200])
    pol = policy(retention={"max_age_days": 35, "keep_last": 10})
    p = plan([pol.core], inventory([cluster("prod-a")], copies), EMPTY, NOW)
    assert not [a for a in p.actions if a.kind in ("revoke", "delete")]
    assert len(p.kept) == 2


def test_keep_last_never_counts_a_snapshot_deleted_outside_snapworker():
    # Three newer copies the state DB holds as deleted outside snapworker: gone, so the
    # floor of 3 keeps the three newest copies that AWS still lists.
    _, gone = _estate([1, 2, 3])
    _, copies = _estate([100, 200, 300, 400])
    records = {
        c.id: OwnedRecord(
            c.id,
            "prod-nightly",
            "prod-a",
            "copy",
            c.create_time,
            source_id=c.tags["snapworker:source"],
            deleted_at=days_ago(0.5),
            deleted_reason=DELETED_OUTSIDE,
        )
        for c in gone
    }
    state = State(owned=records)
    p = plan([policy().core], inventory([cluster("prod-a")], copies), state, NOW)
    assert [a.snapshot for a in p.actions if a.kind == "delete"] == [copies[3].id]
    assert {k.snapshot for k in p.kept} == {c.id for c in copies[:3]}
    # The same id listed again without tags is not owned by that record: not counted,
    # never acted on.
    lookalike = unowned(gone[0].id, "prod-a", days_ago(1))
    inv = inventory([cluster("prod-a")], [*copies, lookalike])
    p2 = plan([policy().core], inv, state, NOW)
    assert [a.snapshot for a in p2.actions if a.kind == "delete"] == [copies[3].id]
    assert lookalike.id not in {a.snapshot for a in p2.actions}
    assert lookalike.id not in {k.snapshot for k in p2.kept}


def test_unshare_after_shares_again_a_grant_revoked_outside_before_its_time():
    # Closed as revoked outside snapworker before unshare_after ran out: the policy still
    # wants it, so it is shared again; once its time is up it is not.
    _, copies = _estate([1], accounts=())
    pol = policy(copy_automated=False, share={"accounts": [ACC], "unshare_after": "1d"})
    inv = inventory([cluster("prod-a")], copies)
    early = GrantRecord(
        copies[0].id, ACC, NOW - timedelta(hours=23), NOW - timedelta(hours=1), REVOKED_OUTSIDE
    )
    assert kinds(plan([pol.core], inv, State(grants=(early,)), NOW)) == [
        ("share", copies[0].id, ACC)
    ]
    late = dataclasses.replace(early, granted_at=NOW - timedelta(days=2))
    assert plan([pol.core], inv, State(grants=(late,)), NOW).actions == ()


def test_ties_in_create_time_are_broken_by_id_deterministically():
    t = days_ago(100)
    snaps = [owned_create("prod-nightly", c, t) for c in ("prod-a",)]
    # Two copies with the same data time on one cluster.
    a = automated("prod-a", t)
    b = automated("prod-a", t).__class__("rs:prod-a-b-tie", "prod-a", "automated", "available", t)
    ca, cb = owned_copy("prod-nightly", a), owned_copy("prod-nightly", b)
    pol = policy(retention={"keep_last": 2}, share={"accounts": []})
    inv = inventory([cluster("prod-a")], [*snaps, ca, cb])
    p1 = plan([pol.core], inv, EMPTY, NOW)
    p2 = plan([pol.core], inventory([cluster("prod-a")], [cb, ca, *snaps]), EMPTY, NOW)
    assert p1 == p2
    deleted = [x.snapshot for x in p1.actions if x.kind == "delete"]
    assert deleted == [min(ca.id, cb.id, snaps[0].id)]


def test_cap_smaller_than_expired_set_deletes_oldest_first_and_reports_the_rest():
    _, copies = _estate([1, 2, 3, 40, 50, 60, 70], accounts=())
    pol = policy(limits={"max_deletes_per_run": 2})
    p = plan([pol.core], inventory([cluster("prod-a")], copies), EMPTY, NOW)
    assert [a.snapshot for a in p.actions if a.kind == "delete"] == [copies[6].id, copies[5].id]
    deferred = [k for k in p.kept if "deferred" in k.reason]
    assert {k.snapshot for k in deferred} == {copies[3].id, copies[4].id}
    assert all("max_deletes_per_run 2" in k.reason for k in deferred)


def test_cap_zero_deletes_nothing():
    _, copies = _estate([1, 2, 3, 40], accounts=())
    pol = policy(limits={"max_deletes_per_run": 0})
    p = plan([pol.core], inventory([cluster("prod-a")], copies), EMPTY, NOW)
    assert not [a for a in p.actions if a.kind in ("revoke", "delete")]
    assert any("deferred" in k.reason for k in p.kept)


def test_no_retention_rule_expires_nothing():
    _, copies = _estate([100, 200, 300, 400, 500], accounts=())
    pol = policy(retention={}, share={"accounts": []})
    p = plan([pol.core], inventory([cluster("prod-a")], copies), EMPTY, NOW)
    assert p.actions == ()
    assert all(k.reason == "no retention rule set" for k in p.kept)


def test_retention_continues_after_the_cluster_is_gone():
    _, copies = _estate([1, 2, 3, 40], accounts=())
    p = plan([policy().core], inventory([], copies), EMPTY, NOW)
    assert [a.snapshot for a in p.actions if a.kind == "delete"] == [copies[3].id]
    assert any("selects no cluster" in n.message for n in p.notes)


def test_expiring_snapshot_is_not_shared_first():
    _, copies = _estate([1, 2, 3, 40], accounts=())
    p = plan([policy().core], inventory([cluster("prod-a")], copies), EMPTY, NOW)
    assert not [a for a in p.actions if a.kind == "share" and a.snapshot == copies[3].id]


def test_held_snapshot_is_never_revoked_or_deleted_and_counts_toward_keep_last():
    autos = [automated("prod-a", days_ago(d)) for d in (1, 2, 40, 50)]
    copies = [owned_copy("prod-nightly", s, [ACC]) for s in autos]
    held = owned_copy("prod-nightly", autos[0], [ACC], extra_tags={"snapworker:hold": "legal"})
    copies[0] = held
    pol = policy(retention={"max_age_days": 35, "keep_last": 3}, share={"accounts": [ACC]})
    p = plan([pol.core], inventory([cluster("prod-a")], copies), EMPTY, NOW)
    assert not [a for a in p.actions if a.snapshot == held.id]
    assert [a.snapshot for a in p.actions if a.kind == "delete"] == [copies[3].id]
    assert any(k.held and "legal" in k.reason for k in p.kept)


# -- ownership ---------------------------------------------------------------------------


def test_unowned_and_automated_snapshots_are_never_acted_on():
    old_auto = automated("prod-a", days_ago(400))
    lookalike = unowned(
        ids.create_snapshot_id("prod-nightly", "prod-a", days_ago(400)), "prod-a", days_ago(400)
    )
    manual = unowned("manual-keep-forever", "prod-a", days_ago(900))
    pol = policy(retention={"max_age_days": 1}, copy_automated=False)
    p = plan([pol.core], inventory([cluster("prod-a")], [old_auto, lookalike, manual]), EMPTY, NOW)
    assert p.actions == ()
    assert p.kept == ()


def test_tags_that_do_not_match_the_id_do_not_prove_ownership():
    _, copies = _estate([400], accounts=())
    forged = copies[0].__class__(
        "sw-prod-nightly-forged",
        "prod-a",
        "manual",
        "available",
        days_ago(400),
        dict(copies[0].tags),
        (),
    )
    pol = policy(retention={"max_age_days": 1}, copy_automated=False)
    assert plan([pol.core], inventory([cluster("prod-a")], [forged]), EMPTY, NOW).actions == ()


@pytest.mark.parametrize(
    ("recorded_days", "tagged_days", "deleted"),
    [
        (40, 40, True),  # tag and record agree: past max_age_days 35
        (40, 20, False),  # a later source-time tag keeps it (the later time decides)
        (20, 40, False),  # an earlier tag does not expire what the record keeps
        (40, None, True),  # no tag: the record decides
    ],
)
def test_tag_and_record_disagreeing_on_the_source_time_err_towards_keeping(
    recorded_days: int, tagged_days: int | None, deleted: bool
):
    pol = policy(retention={"max_age_days": 35}, copy_automated=False)
    src = automated("prod-a", days_ago(recorded_days))
    copy = owned_copy("prod-nightly", src, copy_time=days_ago(recorded_days))
    tags = dict(copy.tags)
    del tags["snapworker:source-time"]
    if tagged_days is not None:
        tags["snapworker:source-time"] = days_ago(tagged_days).strftime("%Y-%m-%dT%H:%M:%SZ")
    copy = dataclasses.replace(copy, tags=tags)
    rec = OwnedRecord(copy.id, "prod-nightly", "prod-a", "copy", src.create_time, source_id=src.id)
    p = plan([pol.core], inventory([cluster("prod-a")], [copy]), State(owned={copy.id: rec}), NOW)
    assert (("delete", copy.id, None) in kinds(p)) is deleted


def test_snapshot_of_another_account_is_never_owned():
    _, copies = _estate([400], accounts=())
    foreign = copies[0].__class__(**{**copies[0].__dict__, "owner_account": "999999999999"})
    pol = policy(retention={"max_age_days": 1}, copy_automated=False)
    p = plan([pol.core], inventory([], [foreign]), EMPTY, NOW, account="123456789012")
    assert p.actions == ()


def test_snapshot_of_another_policy_is_left_to_it():
    _, copies = _estate([1, 2, 3, 400], accounts=())
    other = policy("other", retention={"max_age_days": 1}, copy_automated=False)
    p = plan([other.core], inventory([cluster("prod-a")], copies), EMPTY, NOW)
    assert p.actions == ()


def test_untagged_copy_recorded_in_state_is_owned_and_retagged():
    a1 = automated("prod-a", days_ago(1))
    c = owned_copy("prod-nightly", a1, shared(None))
    bare = c.__class__(**{**c.__dict__, "tags": {}})
    state = State(
        owned={
            c.id: OwnedRecord(
                c.id, "prod-nightly", "prod-a", "copy", a1.create_time, source_id=a1.id
            )
        }
    )
    p = plan([policy().core], inventory([cluster("prod-a")], [a1, bare]), state, NOW)
    assert kinds(p) == [("tag", c.id, None)]
    assert p.actions[0].source == a1.id


def test_drift_is_reported_not_revoked_unless_configured():
    _, copies = _estate([1], accounts=(ACC, SUPPORT_ALIAS, "444455556666"))
    inv = inventory([cluster("prod-a")], copies)
    p = plan([policy(copy_automated=False).core], inv, EMPTY, NOW)
    assert [(d.snapshot, d.account) for d in p.drift] == [(copies[0].id, "444455556666")]
    assert p.actions == ()
    pol = policy(
        copy_automated=False, share={"accounts": [ACC, SUPPORT_ALIAS], "revoke_unlisted": True}
    )
    assert kinds(plan([pol.core], inv, EMPTY, NOW)) == [("revoke", copies[0].id, "444455556666")]


def test_unshare_after_revokes_a_lapsed_grant_and_never_regrants():
    _, copies = _estate([1], accounts=(ACC,))
    pol = policy(copy_automated=False, share={"accounts": [ACC], "unshare_after": "30d"})
    grant = GrantRecord(copies[0].id, ACC, NOW - timedelta(days=31))
    inv = inventory([cluster("prod-a")], copies)
    p = plan([pol.core], inv, State(grants=(grant,)), NOW)
    assert kinds(p) == [("revoke", copies[0].id, ACC)]
    assert "unshare_after 30d" in p.actions[0].reason
    revoked = GrantRecord(copies[0].id, ACC, grant.granted_at, NOW)
    after = copies[0].__class__(**{**copies[0].__dict__, "accounts": ()})
    assert (
        plan(
            [pol.core], inventory([cluster("prod-a")], [after]), State(grants=(revoked,)), NOW
        ).actions
        == ()
    )


def test_plan_is_deterministic_and_json_shaped_by_kind():
    autos, copies = _estate([1, 2, 3, 40, 50])
    inv = inventory([cluster("prod-a"), cluster("prod-b")], [*autos, *copies[1:]])
    p1 = plan([policy().core], inv, EMPTY, NOW)
    p2 = plan(
        [policy().core],
        inventory(reversed(list(inv.clusters.values())), reversed(list(inv.snapshots.values()))),
        EMPTY,
        NOW,
    )
    assert p1 == p2
    for a in p1.actions:
        assert (a.source is not None) == (a.kind == "copy")
        assert (a.account is not None) == (a.kind in ("share", "revoke"))
    assert all(TAG_POLICY not in a.snapshot for a in p1.actions)


# -- regressions found by tests/test_properties.py ---------------------------------------


def test_unshare_after_does_not_reshare_a_lapsed_grant_someone_revoked_outside():
    # The state DB still holds the grant open (it was revoked outside snapworker) and its
    # time is up: sharing it again would only be revoked by the next tick.
    _, copies = _estate([1], accounts=())
    pol = policy(copy_automated=False, share={"accounts": [ACC], "unshare_after": "1d"})
    lapsed = GrantRecord(copies[0].id, ACC, NOW - timedelta(days=1))
    inv = inventory([cluster("prod-a")], copies)
    assert plan([pol.core], inv, State(grants=(lapsed,)), NOW).actions == ()
    fresh = GrantRecord(copies[0].id, ACC, NOW - timedelta(hours=23))
    assert kinds(plan([pol.core], inv, State(grants=(fresh,)), NOW)) == [
        ("share", copies[0].id, ACC)
    ]


def test_notes_on_snapshots_of_a_removed_policy_do_not_depend_on_inventory_order():
    _, copies = _estate([1, 2, 3], accounts=())
    other = policy("other", copy_automated=False)
    p1 = plan([other.core], inventory([cluster("prod-a")], copies), EMPTY, NOW)
    p2 = plan([other.core], inventory([cluster("prod-a")], reversed(copies)), EMPTY, NOW)
    assert [n.snapshot for n in p1.notes if n.snapshot] == sorted(c.id for c in copies)
    assert p1 == p2


# -- the records a plan is made of --------------------------------------------------------


def test_kept_and_action_are_the_dataclasses_their_fields_say():
    """Kept and Action are plain frozen, slotted dataclasses (a plan makes one per kept
    snapshot): the parameters, defaults and instances their fields say, frozen."""
    for cls in (Kept, Action):
        fields = dataclasses.fields(cls)
        params = inspect.signature(cls).parameters
        assert list(params) == [f.name for f in fields]
        for f in fields:
            default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
            assert params[f.name].default == default
    k = Kept("p", "prod-a", "s1", "keep_last 3 (#1 newest)", NOW, True)
    assert (k.policy, k.cluster, k.snapshot, k.reason, k.data_time, k.held) == (
        "p",
        "prod-a",
        "s1",
        "keep_last 3 (#1 newest)",
        NOW,
        True,
    )
    assert not hasattr(k, "__dict__")  # slotted
    same = Kept(
        policy="p",
        cluster="prod-a",
        snapshot="s1",
        reason="keep_last 3 (#1 newest)",
        data_time=NOW,
        held=True,
    )
    assert k == same and hash(k) == hash(same)
    assert repr(k) == (
        "Kept(policy='p', cluster='prod-a', snapshot='s1', reason='keep_last 3 (#1 newest)', "
        f"data_time={NOW!r}, held=True)"
    )
    assert pickle.loads(pickle.dumps(k)) == k
    assert dataclasses.replace(k, held=False) == Kept("p", "prod-a", "s1", k.reason, NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.reason = "changed"  # type: ignore[misc]
    a = Action("p", "prod-a", "delete", "s1", "expired")
    assert (a.source, a.account, a.data_time, a.fire_time) == (None, None, None, None)
    assert a.key == "p|delete|s1"
    with pytest.raises(TypeError):
        Kept("p", "prod-a", "s1")  # type: ignore[call-arg]
