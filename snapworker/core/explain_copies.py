"""``plan --explain`` on an automated snapshot: its copies, by policy. Pure.

An automated snapshot is never owned; what the worker decides about it is whether each
policy copies it. For every policy of the plan that copies the snapshot's cluster (or that
already holds a copy of it), one :class:`CopyView`; and one for each copy held by a policy
not in the plan (``orphaned``). Each says the copy's id, and whether it exists,
is planned, was made and since deleted, or why it is not made (already past retention, the
id taken, the snapshot not yet available). The verdicts are the planner's own (its copy
actions and notes for this snapshot); this module only looks them up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from snapworker.core import ids
from snapworker.core.estate import Index, selects
from snapworker.core.model import Inventory, Plan, Snapshot
from snapworker.core.policy import Policy

__all__ = ["CopyView", "copy_views"]


@dataclass(frozen=True)
class CopyView:
    """One policy's copy of an automated snapshot."""

    policy: str
    copy: str  # the copy's id (existing, planned, or the one the policy would make)
    state: str  # "exists", "planned", "deleted", "not copied", "not selected", "orphaned"
    why: str


def copy_views(
    src: Snapshot, policies: Sequence[Policy], inventory: Inventory, idx: Index, plan: Plan
) -> list[CopyView]:
    out: list[CopyView] = []
    cluster = inventory.clusters.get(src.cluster)
    for policy in policies:
        mine = [o for o in idx.owned.get(policy.name, []) if o.record.source_id == src.id]
        made = ids.copy_snapshot_id(policy.name, src.cluster, src.id)
        target = mine[0].id if mine else made
        planned = next(
            (
                a
                for a in plan.actions
                if a.policy == policy.name and a.kind == "copy" and a.source == src.id
            ),
            None,
        )
        copying = policy.copy_automated and cluster is not None and selects(policy, cluster)
        if mine:
            o = mine[0]
            former = "" if o.id == made else ", made under a former name of the policy"
            out.append(
                CopyView(policy.name, o.id, "exists", f"copied (status '{o.snap.status}'{former})")
            )
        elif planned is not None:
            out.append(CopyView(policy.name, planned.snapshot, "planned", planned.reason))
        elif src.id in idx.copied.get(policy.name, ()):
            out.append(
                CopyView(
                    policy.name,
                    target,
                    "deleted",
                    "copied before, and the copy is gone (deleted by retention, or by hand): "
                    "each automated snapshot is copied at most once",
                )
            )
        elif copying:
            note = next(
                (
                    n.message
                    for n in plan.notes
                    if n.policy == policy.name and n.snapshot in (src.id, target)
                ),
                None,
            )
            if note is None and not src.available:
                note = f"not copied yet: status '{src.status}' (copied once available)"
            out.append(CopyView(policy.name, target, "not copied", note or "not copied"))
        elif policy.copy_automated:
            out.append(
                CopyView(
                    policy.name,
                    target,
                    "not selected",
                    f"the policy copies automated snapshots, but does not select cluster "
                    f"{src.cluster}" + ("" if cluster is not None else " (no such cluster now)"),
                )
            )
    names = {p.name for p in policies}
    for name in sorted(set(idx.owned) - names):
        for o in idx.owned[name]:
            if o.record.source_id == src.id:
                why = (
                    f"a copy made by policy {name}, which is not in this plan (not in the "
                    "config, or left out by --policy): left alone"
                )
                out.append(CopyView(name, o.id, "orphaned", why))
    return out
