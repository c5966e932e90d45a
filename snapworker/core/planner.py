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

import fnmatch
import gc
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter

from snapworker.core import ids, verify
from snapworker.core.durations import format_duration
from snapworker.core.events import (
    AutomatedSnapshotSeen,
    Event,
    GrantDrifted,
    GrantLapsed,
    OwnershipTagsMissing,
    ScheduleDue,
    SnapshotExpired,
    SnapshotNeedsShare,
    handle,
)
from snapworker.core.model import (
    ACTION_ORDER,
    TAG_POLICY,
    TAG_SCRATCH,
    Action,
    Cluster,
    GrantRecord,
    Inventory,
    Kept,
    Note,
    OwnedRecord,
    Plan,
    Snapshot,
    State,
)
from snapworker.core.ownership import Ownership, owned_record
from snapworker.core.policy import Policy
from snapworker.core.retention import (
    DATA_TIME,
    NO_RULE,
    Candidate,
    Dated,
    RetentionRules,
    evaluate,
    expire_reason,
    expire_tail,
    keep_reasons,
    order_newest_first,
)
from snapworker.core.schedule import latest_fire


def rules_of(policy: Policy) -> RetentionRules:
    r = policy.retention
    return RetentionRules(
        max_age=timedelta(days=r.max_age_days) if r.max_age_days is not None else None,
        keep_last=r.keep_last,
        keep_hourly=r.keep_hourly,
        keep_daily=r.keep_daily,
        keep_weekly=r.keep_weekly,
        keep_monthly=r.keep_monthly,
        keep_yearly=r.keep_yearly,
        keep_within=r.keep_within,
        timezone=policy.timezone,
    )


def selects(policy: Policy, cluster: Cluster) -> bool:
    """Glob patterns over the id (any may match), and every tag must match. A restore
    drill's scratch cluster (tagged ``snapworker:scratch``) is never selected."""
    if TAG_SCRATCH in cluster.tags:
        return False
    if not any(fnmatch.fnmatchcase(cluster.id, pat) for pat in policy.select.clusters):
        return False
    return all(cluster.tags.get(k) == v for k, v in policy.select.tags.items())


class _Owned:
    """An owned snapshot as the planner sees it: the snapshot, the record and proof of
    ownership (see ``ownership.owned_record``), the time of its data, and the fields the
    planner reads most, copied out once. Built once per owned snapshot per plan."""

    __slots__ = ("available", "cluster", "data_time", "id", "proof", "record", "snap")
    snap: Snapshot
    record: OwnedRecord
    proof: str
    data_time: datetime
    id: str
    cluster: str
    available: bool

    def __init__(self, snap: Snapshot, record: OwnedRecord, proof: str, data_time: datetime):
        self.snap = snap
        self.record = record
        self.proof = proof
        self.data_time = data_time
        self.id = snap.id
        self.cluster = snap.cluster
        self.available = snap.status == "available"

    @property
    def tagged(self) -> bool:
        return self.proof == "tags"

    @property
    def own(self) -> Ownership:
        return Ownership(self.record, self.proof == "tags", self.proof)


class _Ids:
    """The ids of some owned snapshots, as a set built at the first lookup: a plan looks an
    id up only when the id it would make is already in the inventory (rare)."""

    __slots__ = ("_ids", "_items")

    def __init__(self, items: list[_Owned]) -> None:
        self._items = items
        self._ids: set[str] | None = None

    def __contains__(self, sid: str) -> bool:
        if self._ids is None:
            self._ids = {o.id for o in self._items}
        return sid in self._ids


@dataclass
class _Index:
    """Everything the planner derives once from the inventory and the state."""

    owned: dict[str, list[_Owned]] = field(default_factory=lambda: defaultdict(list))
    copied: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    last_fire: dict[tuple[str, str], datetime] = field(default_factory=dict)
    grants: dict[tuple[str, str], GrantRecord] = field(default_factory=dict)
    automated: dict[str, list[Snapshot]] = field(default_factory=lambda: defaultdict(list))


def _note_fire(idx: _Index, rec: OwnedRecord) -> None:
    if rec.made_for == "create" and rec.fire_time is not None:
        key = (rec.policy, rec.cluster)
        if key not in idx.last_fire or idx.last_fire[key] < rec.fire_time:
            idx.last_fire[key] = rec.fire_time


def _index(inv: Inventory, state: State, account: str | None) -> _Index:
    """One pass over the state DB's records and one over the inventory: O(R + S)."""
    idx = _Index()
    pending_made = {e.snapshot_id: e for e in state.pending if e.kind in ("create", "copy")}
    owned, copied, automated = idx.owned, idx.copied, idx.automated
    for rec in state.owned.values():
        if rec.source_id:
            copied[rec.policy].add(rec.source_id)
        if rec.made_for == "create":
            _note_fire(idx, rec)
    recorded = state.owned.get
    for snap in inv.snapshots.values():
        if snap.type == "automated":
            automated[snap.cluster].append(snap)
            continue
        db = recorded(snap.id)
        found = owned_record(snap, db, pending_made, account)
        if found is None:
            continue
        rec, proof = found
        data_time = rec.data_time
        if data_time is None:
            src = inv.snapshots.get(rec.source_id or "")
            data_time = src.create_time if src is not None else snap.create_time
        owned[rec.policy].append(_Owned(snap, rec, proof, data_time))
        if rec is db:
            continue  # the state DB's own record: noted by the loop above
        if rec.source_id:
            copied[rec.policy].add(rec.source_id)
        if rec.made_for == "create":
            _note_fire(idx, rec)
    for g in sorted(state.grants, key=lambda g: g.granted_at):
        idx.grants[(g.snapshot_id, g.account)] = g
    return idx


def plan(
    policies: Sequence[Policy],
    inventory: Inventory,
    state: State,
    now: datetime,
    account: str | None = None,
    all_policy_names: Iterable[str] | None = None,
) -> Plan:
    """What a tick would do now. ``account``: this AWS account, when known (snapshots of
    other accounts are never owned). ``all_policy_names``: every policy of the config, to
    report snapshots owned by a policy that no longer exists."""
    # Planning allocates a few objects per snapshot and makes no reference cycles, so the
    # cyclic garbage collector only walks an ever larger heap (a third of the time at
    # 100,000 snapshots); reference counting frees everything without it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _plan(policies, inventory, state, now, account, all_policy_names)
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
) -> Plan:
    inventory, scratch_notes = _without_scratch(inventory, state)
    idx = _index(inventory, state, account)
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
    for name in sorted(set(idx.owned) - known):
        # Sorted: the inventory's order must not change the plan (its notes included).
        for o in sorted(idx.owned[name], key=lambda o: (o.snap.cluster, o.snap.id)):
            notes.append(
                Note(
                    name,
                    o.snap.cluster,
                    "owned by a policy not in the config; left alone",
                    o.snap.id,
                )
            )
    return Plan(
        generated_at=now,
        actions=tuple(sorted(actions, key=_action_order)),
        kept=tuple(sorted(kept, key=_KEPT_ORDER)),
        notes=tuple(notes),
        drift=tuple(sorted(drift, key=_action_order)),
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
    idx: _Index,
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
    idx: _Index,
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
    grouped: dict[str, list[_Owned]] = defaultdict(list)
    untagged: list[Event] = []
    for o in owned:
        grouped[o.cluster].append(o)
        if o.proof != "tags":
            untagged.append(OwnershipTagsMissing(o.record, o.proof))
    # Each cluster's snapshots in retention's order (newest first), sorted once: the copies'
    # "already past retention" check and retention itself both walk it.
    by_cluster = {cid: order_newest_first(items) for cid, items in grouped.items()}
    owned_ids = _Ids(owned)

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
                _copies(policy, cluster, inv, idx, mine, owned_ids, rules, tail, now, notes)
            )
        if fire is not None:
            events.extend(_creates(policy, cluster, inv, idx, owned_ids, fire, notes))

    events.extend(untagged)

    expired: list[tuple[_Owned, str]] = []
    for cluster_id in sorted(by_cluster):
        expired.extend(_retention(policy, by_cluster[cluster_id], rules, now, tail, kept))
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
            events.extend(_grants(policy, o, idx, now))
    return events


def _copies(
    policy: Policy,
    cluster: Cluster,
    inv: Inventory,
    idx: _Index,
    mine: list[_Owned],
    owned_ids: _Ids,
    rules: RetentionRules,
    tail: list[str],
    now: datetime,
    notes: list[Note],
) -> list[Event]:
    """``tail``: ``expire_tail(rules)``."""
    copied = idx.copied.get(policy.name, set())
    sources: list[tuple[Snapshot, str]] = []
    for src in sorted(idx.automated.get(cluster.id, []), key=lambda s: (s.create_time, s.id)):
        if src.id in copied or not src.available:
            continue
        target = ids.copy_snapshot_id(policy.name, cluster.id, src.id)
        if target in inv.snapshots:
            if target in owned_ids:
                continue  # copied already (its record lost, its tags kept)
            notes.append(
                Note(
                    policy.name,
                    cluster.id,
                    f"cannot copy {src.id}: target id {target} is taken by a snapshot "
                    "snapworker does not own",
                    target,
                    "warning",
                )
            )
            continue
        sources.append((src, target))
    if not sources:
        return []  # nothing to copy: no retention verdict needed
    # "Already past retention": retention over the owned snapshots plus the sources copied
    # in this tick would not keep it. Judging the sources together (not one by one) avoids
    # copying an old source that the next tick would delete again.
    cands = [Candidate(t, s.create_time) for s, t in sources]
    expiring = _past_retention(mine, cands, rules, now, tail)
    out: list[Event] = []
    for src, target in sources:
        why = expiring.get(target)
        if why is not None:
            notes.append(
                Note(
                    policy.name,
                    cluster.id,
                    f"not copied: {src.id} is already past retention ({why})",
                    src.id,
                )
            )
            continue
        out.append(AutomatedSnapshotSeen(policy.name, cluster.id, src.id, src.create_time, target))
    return out


def _past_retention(
    mine: list[_Owned],
    cands: list[Candidate],
    rules: RetentionRules,
    now: datetime,
    tail: list[str],
) -> dict[str, str]:
    """The expiry reason of each of ``cands`` that retention would not keep, judged with
    ``mine`` (the owned snapshots of the cluster, newest first): what
    ``evaluate([*mine, *cands], rules, now, only=<their ids>)`` says, without sorting
    ``mine`` again. The candidates (a few new sources) are inserted into its order by binary
    search; ``keep_reasons`` then walks the ranking rules over all and judges them alone.
    Their ids are new (not owned); should two be alike, ``evaluate`` itself decides.
    ``tail``: ``expire_tail(rules)``."""
    if len({c.id for c in cands}) != len(cands):
        return {
            v.id: v.expire_reason
            for v in evaluate([*mine, *cands], rules, now, only={c.id for c in cands})
            if not v.kept
        }
    if not rules.has_rules:
        return {}  # NO_RULE keeps everything
    merged: list[Dated] = list(mine)
    positions: list[int] = []
    lo = 0
    for c in order_newest_first(cands):  # each goes after the one before: positions hold
        key = (c.data_time, c.id)
        hi = len(merged)
        while lo < hi:
            mid = (lo + hi) // 2
            m = merged[mid]
            if (m.data_time, m.id) > key:
                lo = mid + 1
            else:
                hi = mid
        merged.insert(lo, c)
        positions.append(lo)
        lo += 1
    reasons: list[list[str] | None] = [None] * len(merged)
    for i in positions:
        reasons[i] = []
    keep_reasons(list(map(DATA_TIME, merged)), reasons, positions, rules, now)
    return {
        merged[i].id: expire_reason(merged[i].data_time, rules, now, tail)
        for i in positions
        if not reasons[i]
    }


def _creates(
    policy: Policy,
    cluster: Cluster,
    inv: Inventory,
    idx: _Index,
    owned_ids: _Ids,
    fire: datetime,
    notes: list[Note],
) -> list[Event]:
    """``fire``: the schedule's latest fire time at or before now (see ``latest_fire``)."""
    spec = policy.create
    assert spec is not None
    last = idx.last_fire.get((policy.name, cluster.id))
    if last is not None and last >= fire:
        return []
    sid = ids.create_snapshot_id(policy.name, cluster.id, fire)
    if sid in inv.snapshots:
        if sid not in owned_ids:
            notes.append(
                Note(
                    policy.name,
                    cluster.id,
                    f"cannot create {sid}: the id is taken by a snapshot snapworker does not own",
                    sid,
                    "warning",
                )
            )
        return []
    if cluster.status != "available":
        notes.append(
            Note(
                policy.name,
                cluster.id,
                f"snapshot due (fire time {fire:%Y-%m-%d %H:%M}Z) but the cluster is "
                f"'{cluster.status}'; it is taken once the cluster is available",
                sid,
                "warning",
            )
        )
        return []
    return [ScheduleDue(policy.name, cluster.id, fire, sid, spec.schedule)]


def _retention(
    policy: Policy,
    items: list[_Owned],
    rules: RetentionRules,
    now: datetime,
    tail: list[str],
    kept: list[Kept],
) -> list[tuple[_Owned, str]]:
    """Kept snapshots go to ``kept``; the expired ones are returned with their reason.
    ``items``: the cluster's owned snapshots, newest first; ``tail``: ``expire_tail(rules)``.
    The verdicts are ``retention.evaluate``'s over the available ones, computed by the same
    ``keep_reasons`` without building a Candidate and a Verdict per snapshot."""
    name, hold_tag = policy.name, policy.hold_tag
    ordered = [o for o in items if o.available]
    for o in items if len(ordered) < len(items) else ():
        if not o.available:
            kept.append(
                Kept(
                    name,
                    o.cluster,
                    o.id,
                    f"status '{o.snap.status}': not counted by retention, "
                    "never deleted until available",
                    o.data_time,
                )
            )
    reasons: list[list[str]]
    if rules.has_rules:
        reasons = [[] for _ in ordered]
        keep_reasons(list(map(DATA_TIME, ordered)), reasons, range(len(ordered)), rules, now)
    else:
        reasons = [[NO_RULE]] * len(ordered)  # read only
    expired: list[tuple[_Owned, str]] = []
    keep = kept.append
    for o, rs in zip(ordered, reasons, strict=True):
        hold = o.snap.tags.get(hold_tag)
        if rs:
            reason = "; ".join(rs)
            if hold is not None:
                reason += f"; held ({hold_tag}={hold})"
            keep(Kept(name, o.cluster, o.id, reason, o.data_time, hold is not None))
        elif hold is not None:
            kept.append(
                Kept(
                    name,
                    o.cluster,
                    o.id,
                    f"held ({hold_tag}={hold}); retention alone would expire it: "
                    f"{expire_reason(o.data_time, rules, now, tail)}",
                    o.data_time,
                    True,
                )
            )
        else:
            expired.append((o, expire_reason(o.data_time, rules, now, tail)))
    return expired


def _grants(policy: Policy, o: _Owned, idx: _Index, now: datetime) -> list[Event]:
    out: list[Event] = []
    snap = o.snap
    held = policy.hold_tag in snap.tags
    wanted = policy.share.accounts
    after = policy.share.unshare_after
    for account in wanted:
        grant = idx.grants.get((snap.id, account))
        if account in snap.accounts:
            if (
                after is not None
                and grant is not None
                and grant.revoked_at is None
                and grant.granted_at + after <= now
                and not held
            ):
                out.append(
                    GrantLapsed(
                        policy.name,
                        snap.cluster,
                        snap.id,
                        account,
                        grant.granted_at,
                        format_duration(after),
                    )
                )
        elif (
            after is not None
            and grant is not None
            and (
                (grant.revoked_at is not None and grant.revoked_reason is None)
                or grant.granted_at + after <= now
            )
        ):
            # Lapsed under unshare_after: not made again. That includes a grant already past
            # its time that someone revoked outside snapworker: sharing it again would only
            # be revoked by the next tick. One revoked outside snapworker before its time is
            # shared again, as the policy says.
            continue
        else:
            out.append(SnapshotNeedsShare(policy.name, snap.cluster, snap.id, account))
    for account in snap.accounts:
        if account not in wanted:
            out.append(
                GrantDrifted(
                    policy.name,
                    snap.cluster,
                    snap.id,
                    account,
                    revoke=policy.share.revoke_unlisted and not held,
                )
            )
    return out


def owned_snapshots(
    policies: Sequence[Policy], inventory: Inventory, state: State, account: str | None = None
) -> Mapping[str, OwnedRecord]:
    """Every snapshot the worker owns, by id (used by ``hold``/``release`` and reports)."""
    idx = _index(inventory, state, account)
    return {o.id: o.record for items in idx.owned.values() for o in items}


def rule_horizons(policy: Policy) -> list[tuple[str, float]]:
    """How far back (days, ``inf``: no bound) each set rule may keep a snapshot, when one is
    made at least as often as its buckets: keep_daily n reaches about n days back, keep_weekly
    7n, keep_monthly 31n, keep_yearly 366n; keep_last has no time bound (it keeps the newest
    n however old). Used to compare the rules with ``fail_safe_days``."""
    r = policy.retention
    out: list[tuple[str, float]] = []
    per_bucket = {
        "keep_hourly": 1 / 24,
        "keep_daily": 1.0,
        "keep_weekly": 7.0,
        "keep_monthly": 31.0,
        "keep_yearly": 366.0,
    }
    if r.keep_last is not None and r.keep_last != 0:
        out.append((f"keep_last {r.keep_last}", float("inf")))
    for name, days in per_bucket.items():
        n = getattr(r, name)
        if n is not None and n != 0:
            out.append((f"{name} {n}", float("inf") if n == -1 else n * days))
    if r.keep_within is not None:
        out.append(
            (f"keep_within {format_duration(r.keep_within)}", r.keep_within.total_seconds() / 86400)
        )
    if r.max_age_days is not None:
        out.append((f"max_age_days {r.max_age_days}", float(r.max_age_days)))
    return out


def fail_safe_notes(policy: Policy) -> list[Note]:
    """How ``retention.fail_safe_days`` (AWS's own expiry) meets the policy's rules and holds."""
    days = policy.retention.fail_safe_days
    if days is None:
        return []
    notes = [
        Note(
            policy.name,
            None,
            f"fail_safe_days {days}: snapshots this policy makes carry "
            f"ManualSnapshotRetentionPeriod {days}, so AWS deletes each {days} days after AWS "
            "made it (not after its data time), even if snapworker is gone; a hold tag does "
            "not stop AWS: `snapworker hold` sets the period to -1 while held and `release` "
            "restores it",
        )
    ]
    longer = [(name, reach) for name, reach in rule_horizons(policy) if reach > days]
    if longer:
        shown = ", ".join(
            f"{name} (no time bound)" if reach == float("inf") else f"{name} (~{reach:.0f} d)"
            for name, reach in longer
        )
        notes.append(
            Note(
                policy.name,
                None,
                f"fail_safe_days {days} is shorter than what these rules keep: {shown}; AWS "
                f"will delete snapshots older than {days} days that the rules would keep",
                level="warning",
            )
        )
    return notes
