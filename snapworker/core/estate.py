"""The estate as the planner sees it: which snapshots each policy owns (and how that is
proven), their data times, the recorded grants and fire times, indexed once per plan.

Pure: no I/O, no clock. ``index_estate`` is one pass over the state DB's records and one over
the inventory (the id hash only for what the state DB does not vouch for, memoised).
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from snapworker.core.model import (
    TAG_SCRATCH,
    Cluster,
    GrantRecord,
    Inventory,
    OwnedRecord,
    Snapshot,
    State,
)
from snapworker.core.ownership import Ownership, Renames, owned_record
from snapworker.core.policy import Policy
from snapworker.core.retention import (
    RetentionRules,
)


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


class Owned:
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


class OwnedIds:
    """The ids of some owned snapshots, as a set built at the first lookup: a plan looks an
    id up only when the id it would make is already in the inventory (rare)."""

    __slots__ = ("_ids", "_items")

    def __init__(self, items: list[Owned]) -> None:
        self._items = items
        self._ids: set[str] | None = None

    def __contains__(self, sid: str) -> bool:
        if self._ids is None:
            self._ids = {o.id for o in self._items}
        return sid in self._ids


@dataclass
class Index:
    """Everything the planner derives once from the inventory and the state."""

    owned: dict[str, list[Owned]] = field(default_factory=lambda: defaultdict(list))
    copied: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    last_fire: dict[tuple[str, str], datetime] = field(default_factory=dict)
    grants: dict[tuple[str, str], GrantRecord] = field(default_factory=dict)
    automated: dict[str, list[Snapshot]] = field(default_factory=lambda: defaultdict(list))


def renames_of(policies: Sequence[Policy]) -> dict[str, str]:
    """Each former name (``formerly``) -> the policy that lists it (the config refuses a name
    listed twice, or listed by one policy while another has it)."""
    return {old: p.name for p in policies for old in p.formerly}


def note_fire(idx: Index, rec: OwnedRecord, policy: str | None = None) -> None:
    """``policy``: the policy the record now belongs to (its own, unless renamed)."""
    if rec.made_for == "create" and rec.fire_time is not None:
        key = (policy or rec.policy, rec.cluster)
        if key not in idx.last_fire or idx.last_fire[key] < rec.fire_time:
            idx.last_fire[key] = rec.fire_time


def index_estate(
    inv: Inventory, state: State, account: str | None, renames: Renames | None = None
) -> Index:
    """One pass over the state DB's records and one over the inventory: O(R + S).
    ``renames``: former policy names -> their policy (``renames_of``); what a former name
    owns, copied or made is indexed under the policy that now has it."""
    idx = Index()
    renames = renames or {}
    pending_made = {e.snapshot_id: e for e in state.pending if e.kind in ("create", "copy")}
    owned, copied, automated = idx.owned, idx.copied, idx.automated
    for rec in state.owned.values():
        name = renames.get(rec.policy, rec.policy) if renames else rec.policy
        if rec.source_id:
            copied[name].add(rec.source_id)
        if rec.made_for == "create":
            note_fire(idx, rec, name)
    recorded = state.owned.get
    for snap in inv.snapshots.values():
        if snap.type == "automated":
            automated[snap.cluster].append(snap)
            continue
        db = recorded(snap.id)
        found = owned_record(snap, db, pending_made, account, renames)
        if found is None:
            continue
        rec, proof = found
        data_time = rec.data_time
        if data_time is None:
            src = inv.snapshots.get(rec.source_id or "")
            data_time = src.create_time if src is not None else snap.create_time
        owned[rec.policy].append(Owned(snap, rec, proof, data_time))
        if rec is db:
            continue  # the state DB's own record: noted by the loop above (a renamed one's
            # copy comes back as a new record: noted again below, which changes nothing)
        if rec.source_id:
            copied[rec.policy].add(rec.source_id)
        if rec.made_for == "create":
            note_fire(idx, rec)
    for g in sorted(state.grants, key=lambda g: g.granted_at):
        idx.grants[(g.snapshot_id, g.account)] = g
    return idx


def owned_snapshots(
    policies: Sequence[Policy],
    inventory: Inventory,
    state: State,
    account: str | None = None,
    renames: Renames | None = None,
) -> Mapping[str, OwnedRecord]:
    """Every snapshot the worker owns, by id (used by ``hold``/``release`` and reports); a
    former name's under the policy that now has it (``renames``, default: ``policies``')."""
    idx = index_estate(
        inventory, state, account, renames if renames is not None else renames_of(policies)
    )
    return {o.id: o.record for items in idx.owned.values() for o in items}
