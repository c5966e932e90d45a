"""The fate of each snapshot on the HTML report's timeline, decided from the plan, never
anew: deleted (revoked first), held, kept by which rule (with the date retention would stop
keeping it, ``core.expiry``), expired but deferred by the per-run cap, still being made, or
planned (create, copy).

A fate is a short word for the CSS class and the tests (``data-fate``), a label a person
reads beside the snapshot, and the whole reason for the hover text: the same text
``plan --explain`` prints (``views.explanation``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from snapworker.core.expiry import expiry, rule_names
from snapworker.core.explain import Explanation
from snapworker.core.model import Action, Inventory, Sizes
from snapworker.core.planner import rules_of
from snapworker.core.retention import Candidate
from snapworker.views.explanation import render_explanation
from snapworker.views.sizes import Totals, size_cell, totals_line

FATES: tuple[tuple[str, str], ...] = (
    ("delete", "revoke and delete planned now"),
    ("held", "held: never revoked nor deleted"),
    ("expires", "kept until a date, then expires"),
    ("kept", "kept, no expiry date"),
    ("deferred", "expired, deletion deferred (per-run cap)"),
    ("pending", "not available yet: not judged"),
    ("copy", "copy planned"),
    ("create", "create planned"),
)
"""Every fate, in the legend's order, with what it means."""


@dataclass(frozen=True)
class Mark:
    """One snapshot on a timeline."""

    snapshot: str
    at: datetime
    fate: str
    label: str
    extras: tuple[str, ...]
    title: str
    until: datetime | None = None  # the expiry date, for the bar's length


@dataclass(frozen=True)
class Group:
    policy: str
    cluster: str
    marks: tuple[Mark, ...]
    horizon: datetime | None
    horizon_label: str
    totals: str = ""  # the sizes of its owned snapshots (views.sizes), "" when none reported


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def owned_mark(e: Explanation, cands: Sequence[Candidate], policy: Any, now: datetime) -> Mark:
    """The mark of an owned snapshot, from its explanation (the planner's own verdict)."""
    at = e.data_time or e.create_time
    title = render_explanation(e, "table")
    kinds = [a.kind for a in e.actions]
    extras = []
    shared = sum(1 for g in e.grants if g.authorized)
    if shared:
        extras.append(f"shared with {shared} account{'s' if shared != 1 else ''}")
    if e.drift:
        extras.append(f"{len(e.drift)} not listed by the policy (drift)")
    if "delete" in kinds:
        revokes = kinds.count("revoke")
        label = f"revoke {revokes}, then delete now" if revokes else "delete now"
        return Mark(e.snapshot, at, "delete", label, tuple(extras), title)
    shares = kinds.count("share")
    if shares:
        extras.append(f"share with {shares} planned")
    if "revoke" in kinds:
        extras.append(f"revoke {kinds.count('revoke')} planned")
    if "verify" in kinds:
        extras.append("restore drill planned")
    if e.kept is not None and e.kept.held:
        label = f"held: {e.hold_reason}" if e.hold_reason else "held"
        return Mark(e.snapshot, at, "held", label, tuple(extras), title)
    if e.kept is None or e.status != "available":
        label = f"status {e.status}: not judged by retention until available"
        return Mark(e.snapshot, at, "pending", label, tuple(extras), title)
    ex = expiry(e.snapshot, cands, rules_of(policy), now)
    if not ex.kept_by:  # expired, yet kept: over max_deletes_per_run
        label = "expired; deletion deferred (over max_deletes_per_run)"
        return Mark(e.snapshot, at, "deferred", label, tuple(extras), title)
    rules = ", ".join(rule_names(ex.kept_by)) or "retention"
    if ex.at is not None:
        label = f"kept by {rules}; expires {_day(ex.at)}"
        return Mark(e.snapshot, at, "expires", label, tuple(extras), title, until=ex.at)
    label = f"kept by {rules}: no expiry date"
    return Mark(e.snapshot, at, "kept", label, tuple(extras), title)


def planned_mark(a: Action, now: datetime) -> Mark:
    """A snapshot the plan makes now (create or copy): it does not exist yet."""
    at = a.data_time or a.fire_time or now
    src = f" from {a.source}" if a.source else ""
    return Mark(a.snapshot, at, a.kind, f"{a.kind} planned now{src}", (), f"{a.kind}: {a.reason}")


def sized_mark(m: Mark, sizes: Sizes | None) -> Mark:
    """The mark with its snapshot's size in its label (when reported); the hover text stays
    exactly what ``plan --explain`` prints."""
    if sizes is None:
        return m
    return replace(m, extras=(*m.extras, size_cell(sizes)))


def groups(
    explanations: Sequence[Explanation],
    planned: Sequence[Action],
    inventory: Inventory,
    policies: Mapping[str, Any],
    now: datetime,
    price: float | None = None,
) -> list[Group]:
    """The timelines: one per (policy, cluster), each owned snapshot once, newest first."""
    by_group: dict[tuple[str, str], list[Explanation]] = defaultdict(list)
    for e in explanations:
        if e.policy is not None and e.policy in policies:
            by_group[(e.policy, e.cluster)].append(e)
    made: dict[tuple[str, str], list[Action]] = defaultdict(list)
    for a in planned:
        made[(a.policy, a.cluster)].append(a)
    out = []
    for key in sorted(set(by_group) | set(made)):
        policy = policies[key[0]]
        items = by_group.get(key, [])
        cands = [
            Candidate(e.snapshot, e.data_time)
            for e in items
            if e.data_time is not None and _available(inventory, e.snapshot)
        ]
        total = Totals()
        marks = []
        for e in items:
            sizes = _sizes(inventory, e.snapshot)
            mark = sized_mark(owned_mark(e, cands, policy, now), sizes)
            total.add(e.snapshot, sizes, mark.fate == "delete")
            marks.append(mark)
        marks += [planned_mark(a, now) for a in made.get(key, [])]
        marks.sort(key=lambda m: (m.at, m.snapshot), reverse=True)
        horizon, text = _horizon(policy, cands, now)
        line = totals_line(total, price) if total.sized else ""
        out.append(Group(key[0], key[1], tuple(marks), horizon, text, line))
    return out


def _sizes(inventory: Inventory, sid: str) -> Sizes | None:
    snap = inventory.snapshots.get(sid)
    if snap is None or (snap.size_mb is None and snap.incremental_mb is None):
        return None
    return Sizes(snap.size_mb, snap.incremental_mb)


def _available(inventory: Inventory, sid: str) -> bool:
    snap = inventory.snapshots.get(sid)
    return snap is not None and snap.available


def _horizon(policy: Any, cands: Sequence[Candidate], now: datetime) -> tuple[datetime | None, str]:
    """The retention horizon: older than this, only the count rules keep a snapshot."""
    rules = rules_of(policy)
    if rules.max_age is not None:
        return now - rules.max_age, f"max_age_days {rules.max_age.days}"
    if rules.keep_within is not None:
        past = [c.data_time for c in cands if c.data_time <= now]
        if past:
            return max(past) - rules.keep_within, "keep_within of the newest"
    return None, ""
