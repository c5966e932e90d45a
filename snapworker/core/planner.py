"""The planner: (policies, observed inventory, recorded state, now) -> Plan. Pure.

For each policy it detects events (see ``snapworker.core.events``) and lets their handlers
turn them into actions; every owned snapshot not acted on is listed as kept, with the rule
that keeps it. Nothing here does I/O or reads the clock, so the dry-run report, the daemon
and ``run`` all see the same decisions, and the tests feed it plain data.

Complexity, for S snapshots, R state DB records, C clusters and P policies:
O(R + P * (S log S + C)), no step comparing snapshots pairwise. One pass over the records
and one over the inventory classify ownership (the id hash only for what the state DB does
not vouch for, memoised across ticks); per policy, each cluster's owned snapshots are
sorted once, newest first (O(n log n), O(n) when the inventory already lists them in time
order), and that one order serves retention's linear walk and the "already past retention"
check of new copies, whose few sources are inserted into it by binary search; one more
pass for the grants, then one sort of the actions and of the kept list. What dominates is
constant work per snapshot: its ownership check and record (~30% at 100,000 snapshots),
then for each kept one the reason text and the ``Kept`` row (~35%). ``bench/planner.py``
measures it: 100,000 snapshots over 1,000 clusters in ~0.4 s of one core, ~6x the time of
10,000 (at 10,000 the per-cluster work, two id hashes and the rules' set-up, still weighs).
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter

from snapworker.core import verify
from snapworker.core.decisions import (
    fail_safe_notes,
    plan_copies,
    plan_creates,
    plan_grants,
    plan_retention,
    rule_horizons,
)
from snapworker.core.estate import (
    Index,
    Owned,
    OwnedIds,
    index_estate,
    owned_snapshots,
    renames_of,
    rules_of,
    selects,
)
from snapworker.core.events import (
    Event,
    GrantDrifted,
    OwnershipTagsMissing,
    SnapshotExpired,
    handle,
)
from snapworker.core.model import (
    ACTION_ORDER,
    TAG_POLICY,
    Action,
    Inventory,
    Kept,
    Note,
    Plan,
    Sizes,
    State,
)
from snapworker.core.policy import Policy
from snapworker.core.retention import (
    expire_tail,
    order_newest_first,
)
from snapworker.core.schedule import latest_fire

__all__ = [
    "fail_safe_notes",
    "index_estate",
    "orphan_notes",
    "owned_snapshots",
    "plan",
    "renames_of",
    "rule_horizons",
    "rules_of",
    "selects",
]


def plan(
    policies: Sequence[Policy],
    inventory: Inventory,
    state: State,
    now: datetime,
    account: str | None = None,
    all_policy_names: Iterable[str] | None = None,
    renames: Mapping[str, str] | None = None,
) -> Plan:
    """What a tick would do now. ``account``: this AWS account, when known (snapshots of
    other accounts are never owned). ``all_policy_names``: every policy of the config, to
    report snapshots owned by a policy that no longer exists. ``renames``: every former
    name (``formerly``) of the config's policies -> its policy (default: those of
    ``policies``), so that a policy left out by ``--policy`` still has its former names."""
    # Planning allocates a few objects per snapshot and makes no reference cycles, so the
    # cyclic garbage collector only walks an ever larger heap (a third of the time at
    # 100,000 snapshots); reference counting frees everything without it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if renames is None:
            renames = renames_of(policies)
        return _plan(policies, inventory, state, now, account, all_policy_names, renames)
    finally:
        if collecting:
            gc.enable()


def _plan(
    policies: Sequence[Policy],
    inventory: Inventory,
    state: State,
    now: datetime,
    account: str | None,
    all_policy_names: Iterable[str] | None,
    renames: Mapping[str, str],
) -> Plan:
    inventory, scratch_notes = _without_scratch(inventory, state)
    idx = index_estate(inventory, state, account, renames)
    actions: list[Action] = []
    kept: list[Kept] = []
    notes: list[Note] = list(scratch_notes)
    drift: list[Action] = []
    for policy in policies:
        events = _detect(policy, inventory, idx, now, kept, notes)
        if policy.verify is not None:
            deleting = {e.snapshot for e in events if isinstance(e, SnapshotExpired)}
            actions.extend(_verifications(policy, idx, state, deleting, now, notes))
        for event in events:
            if isinstance(event, GrantDrifted):
                drift.append(
                    Action(
                        event.policy,
                        event.cluster,
                        "revoke",
                        event.snapshot,
                        f"drift: shared with {event.account}, which the policy does not list",
                        account=event.account,
                    )
                )
            actions.extend(handle(event))
        notes.extend(fail_safe_notes(policy))
    known = set(all_policy_names or ()) | {p.name for p in policies}
    notes.extend(orphan_notes(idx, known))
    return Plan(
        generated_at=now,
        actions=tuple(sorted(actions, key=_action_order)),
        kept=tuple(sorted(kept, key=_KEPT_ORDER)),
        notes=tuple(notes),
        drift=tuple(sorted(drift, key=_action_order)),
        sizes=_sizes(inventory, kept, actions),
        account=account,
    )


def _sizes(inventory: Inventory, kept: list[Kept], actions: list[Action]) -> dict[str, Sizes]:
    """The reported sizes of every kept or acted-on snapshot that has one."""
    snaps = inventory.snapshots
    out: dict[str, Sizes] = {}
    for sid in [k.snapshot for k in kept] + [a.snapshot for a in actions]:
        s = snaps.get(sid)
        if s is not None and (s.size_mb is not None or s.incremental_mb is not None):
            out[sid] = Sizes(s.size_mb, s.incremental_mb)
    return out


def orphan_notes(idx: Index, known: Iterable[str]) -> list[Note]:
    """The snapshots owned by a policy the config no longer defines (a rename, a removal):
    one warning per such policy (how many, how many still shared, what to do), then one
    ``info`` line per snapshot. Left alone: no policy may change them."""
    notes: list[Note] = []
    for name in sorted(set(idx.owned) - set(known)):
        # Sorted: the inventory's order must not change the plan (its notes included).
        items = sorted(idx.owned[name], key=lambda o: (o.snap.cluster, o.snap.id))
        if not items:
            continue
        notes.append(Note(name, None, orphan_warning(name, items), level="warning"))
        for o in items:
            notes.append(
                Note(
                    name,
                    o.snap.cluster,
                    "owned by a policy not in the config; left alone",
                    o.snap.id,
                )
            )
    return notes


def orphan_warning(name: str, items: Sequence[Owned]) -> str:
    """The one line that says a policy's snapshots lost their policy (``plan``, ``run`` and
    ``validate --aws`` print it)."""
    shared = sum(1 for o in items if o.snap.accounts)
    n = len(items)
    return (
        f"{n} snapshot{'s belong' if n != 1 else ' belongs'} to policy {name!r}, which the "
        f"config no longer defines ({shared} still shared): rename it back, or add formerly: "
        f"[{name}] to the policy that replaces it; until then snapworker leaves them alone "
        "(no retention, no revoke)"
    )


def _without_scratch(inv: Inventory, state: State) -> tuple[Inventory, list[Note]]:
    """The inventory without restore drills' scratch clusters (tagged, or recorded in the
    state DB: a crash may come between the restore and its tag), which no policy may select;
    a leftover one is noted (``run`` deletes it before anything else)."""
    recorded = {v.scratch_cluster: v for v in state.verifications}
    scratch = {cid: c for cid, c in inv.clusters.items() if verify.is_scratch(c, recorded.keys())}
    if not scratch:
        return inv, []
    notes = [
        Note(
            c.tags.get(TAG_POLICY) or (recorded[cid].policy if cid in recorded else "?"),
            cid,
            f"scratch cluster of a restore drill (status '{c.status}'), not selected by "
            "any policy; the next run deletes it if no drill is using it",
            level="warning",
        )
        for cid, c in sorted(scratch.items())
    ]
    clusters = {cid: c for cid, c in inv.clusters.items() if cid not in scratch}
    return Inventory(clusters=clusters, snapshots=inv.snapshots), notes


def _verifications(
    policy: Policy,
    idx: Index,
    state: State,
    deleting: set[str],
    now: datetime,
    notes: list[Note],
) -> list[Action]:
    """The restore drills due for ``policy`` (see ``snapworker.core.verify``); a snapshot
    this plan deletes is never restored."""
    spec = policy.verify
    assert spec is not None
    owned: dict[str, list[verify.OwnedSnap]] = defaultdict(list)
    for o in idx.owned.get(policy.name, []):
        if o.snap.id not in deleting:
            owned[o.snap.cluster].append(
                verify.OwnedSnap(o.snap.id, o.snap.cluster, o.data_time, o.snap.available)
            )
    actions, due_notes = verify.due_verifications(
        policy.name, spec.schedule, spec.timezone, owned, state.verifications, now
    )
    notes.extend(due_notes)
    return actions


_KEPT_ORDER = attrgetter("policy", "cluster", "snapshot")


def _action_order(a: Action) -> tuple[str, str, int, str, str]:
    return (a.policy, a.cluster, ACTION_ORDER.index(a.kind), a.snapshot, a.account or "")


def _detect(
    policy: Policy,
    inv: Inventory,
    idx: Index,
    now: datetime,
    kept: list[Kept],
    notes: list[Note],
) -> list[Event]:
    rules = rules_of(policy)
    tail = expire_tail(rules)  # the part of every expiry reason that is the same
    events: list[Event] = []
    # In the inventory's order: whatever comes out of it is sorted (the actions, the kept
    # list, the expired snapshots by data time and id), so the plan does not depend on it.
    owned = idx.owned.get(policy.name, [])
    grouped: dict[str, list[Owned]] = defaultdict(list)
    untagged: list[Event] = []
    for o in owned:
        grouped[o.cluster].append(o)
        if o.proof != "tags":
            former = o.snap.tags.get(TAG_POLICY) if o.proof == "former" else None
            untagged.append(OwnershipTagsMissing(o.record, o.proof, former))
    # Each cluster's snapshots in retention's order (newest first), sorted once: the copies'
    # "already past retention" check and retention itself both walk it.
    by_cluster = {cid: order_newest_first(items) for cid, items in grouped.items()}
    owned_ids = OwnedIds(owned)

    selected = sorted((c for c in inv.clusters.values() if selects(policy, c)), key=lambda c: c.id)
    if not selected:
        notes.append(Note(policy.name, None, "selects no cluster", level="warning"))
    # The fire time depends on the policy and the clock only: computed once, not per cluster.
    fire = (
        latest_fire(policy.create.schedule, policy.create.timezone, now)
        if policy.create is not None and selected
        else None
    )
    for cluster in selected:
        if policy.copy_automated:
            mine = by_cluster.get(cluster.id, [])
            events.extend(
                plan_copies(policy, cluster, inv, idx, mine, owned_ids, rules, tail, now, notes)
            )
        if fire is not None:
            events.extend(plan_creates(policy, cluster, inv, idx, owned_ids, fire, notes))

    events.extend(untagged)

    expired: list[tuple[Owned, str]] = []
    for cluster_id in sorted(by_cluster):
        expired.extend(plan_retention(policy, by_cluster[cluster_id], rules, now, tail, kept))
    expired.sort(key=lambda e: (e[0].data_time, e[0].snap.id))
    cap = policy.limits.max_deletes_per_run
    deleting = set()
    for o, reason in expired[:cap]:
        deleting.add(o.snap.id)
        events.append(
            SnapshotExpired(
                policy.name, o.snap.cluster, o.snap.id, o.data_time, o.snap.accounts, reason
            )
        )
    for o, reason in expired[cap:]:
        kept.append(
            Kept(
                policy.name,
                o.snap.cluster,
                o.snap.id,
                f"expired ({reason}) but over max_deletes_per_run {cap}: deferred to a later run",
                o.data_time,
            )
        )
        notes.append(
            Note(
                policy.name,
                o.snap.cluster,
                f"deletion deferred: over max_deletes_per_run {cap}",
                o.snap.id,
                "warning",
            )
        )

    # With no unshare_after, a snapshot shared with exactly the listed accounts raises no
    # grant event (the common case, checked without the per-account walk of ``_grants``).
    settled = tuple(policy.share.accounts) if policy.share.unshare_after is None else None
    for o in owned:
        if o.available and o.id not in deleting and o.snap.accounts != settled:
            events.extend(plan_grants(policy, o, idx, now))
    return events
