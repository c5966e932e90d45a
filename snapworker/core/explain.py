"""``plan --explain SNAPSHOT``: the whole decision for one snapshot, as data. Pure.

Nothing is decided here that the planner does not decide: the actions, the kept entry, the
drift and the notes are the planner's own for this snapshot (``planner.plan`` over the same
inputs), and the rule-by-rule view comes from ``retention.evaluate`` over the same
candidates the planner judges (the owned, available snapshots of the policy and cluster).
What this module adds is the "why not" a person asks for: which rules do *not* keep the
snapshot and why (its rank for ``keep_last``, which newer snapshot stands for its bucket,
how far it is from the newest for ``keep_within``), why a snapshot is not owned, and the
history of each grant (made when, lapsing when under ``unshare_after``) from the state DB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from snapworker.core import ids
from snapworker.core.durations import format_duration
from snapworker.core.explain_copies import CopyView, copy_views
from snapworker.core.model import (
    TAG_CLUSTER,
    TAG_FIRE_TIME,
    TAG_KIND,
    TAG_POLICY,
    TAG_SOURCE,
    Action,
    GrantRecord,
    Inventory,
    Kept,
    Note,
    Plan,
    Snapshot,
    State,
)
from snapworker.core.ownership import owner_of, parse_utc
from snapworker.core.planner import index_estate, plan, renames_of, rules_of
from snapworker.core.policy import Policy
from snapworker.core.retention import (
    Candidate,
    RetentionRules,
    _bucket_label,
    evaluate,
    order_newest_first,
)

__all__ = ["CopyView", "Explanation", "GrantView", "RuleView", "UnknownSnapshot", "explain"]

_BUCKET_RULES = ("keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
_UNITS = {
    "keep_hourly": "hour",
    "keep_daily": "day",
    "keep_weekly": "ISO week",
    "keep_monthly": "month",
    "keep_yearly": "year",
}


class UnknownSnapshot(LookupError):
    """No snapshot of that id in the account (the message says what the state DB knows)."""


@dataclass(frozen=True)
class RuleView:
    """One retention rule of the owning policy, and whether it keeps this snapshot."""

    rule: str  # as configured, e.g. "keep_monthly 12"
    keeps: bool
    why: str


@dataclass(frozen=True)
class GrantView:
    """One account with (or meant to have) restore access to the snapshot."""

    account: str
    listed: bool  # the policy's share.accounts names it
    authorized: bool  # AWS lists it in AccountsWithRestoreAccess now
    granted_at: datetime | None  # when snapworker made the grant (state DB), if it did
    revoked_at: datetime | None
    lapses_at: datetime | None  # granted_at + unshare_after
    status: str


@dataclass(frozen=True)
class Explanation:
    snapshot: str
    cluster: str
    type: str
    status: str
    create_time: datetime
    now: datetime
    owned: bool
    policy: str | None
    proof: str | None  # "tags", "state", "journal"
    ownership: str  # how ownership is proven, or why the snapshot is not owned
    data_time: datetime | None
    hold_tag: str | None
    hold_reason: str | None
    rules: tuple[RuleView, ...] = ()
    retention: str = ""  # the overall retention verdict
    grants: tuple[GrantView, ...] = ()
    drift: tuple[Action, ...] = ()
    actions: tuple[Action, ...] = ()
    kept: Kept | None = None
    notes: tuple[Note, ...] = field(default_factory=tuple)
    fail_safe_days: int | None = None
    retention_period: int | None = None  # the snapshot's ManualSnapshotRetentionPeriod
    copies: tuple[CopyView, ...] = ()  # an automated snapshot: each policy's copy of it
    orphan: str | None = None  # owned, but its policy is not in the plan: why (else None)

    @property
    def aws_expiry(self) -> datetime | None:
        """When AWS itself deletes the snapshot (its retention period), if it will."""
        period = self.retention_period
        if period is None or period < 0:
            return None
        return self.create_time + timedelta(days=period)

    @property
    def age(self) -> timedelta | None:
        return None if self.data_time is None else self.now - self.data_time

    @property
    def outcome(self) -> str:
        """One line: what the plan does with the snapshot."""
        if self.orphan is not None:
            return f"left alone: {self.orphan}"
        if not self.owned:
            if self.type == "automated" and self.copies:
                return "; ".join(f"{c.policy}: copy {c.state}" for c in self.copies)
            return "left alone: snapworker never changes a snapshot it does not own"
        kinds = [a.kind for a in self.actions]
        if "delete" in kinds:
            revokes = sum(1 for k in kinds if k == "revoke")
            pre = f"revoke {revokes} grant(s), then " if revokes else ""
            return f"{pre}delete"
        if self.kept is not None:
            verb = "held" if self.kept.held else "kept"
            extra = [k for k in kinds if k != "delete"]
            return verb + (f"; also: {', '.join(extra)}" if extra else "")
        if kinds:
            return ", ".join(kinds)
        return "nothing to do"


def _why_not_owned(snap: Snapshot, account: str | None) -> str:
    if snap.type != "manual":
        return "automated snapshot: never owned (AWS manages its lifetime)"
    if account is not None and snap.owner_account not in (None, account):
        return f"belongs to account {snap.owner_account}, not this one ({account})"
    tags = snap.tags
    policy = tags.get(TAG_POLICY)
    if policy is None:
        return (
            "no snapworker:policy tag, no live state DB record and no pending journal entry "
            "for it: not made by snapworker (a look-alike name is not enough)"
        )
    if tags.get(TAG_CLUSTER) != snap.cluster:
        return (
            f"tagged for policy {policy!r} but snapworker:cluster is "
            f"{tags.get(TAG_CLUSTER)!r}, not its cluster {snap.cluster!r}"
        )
    kind = tags.get(TAG_KIND)
    if kind == "copy":
        expected = ids.copy_snapshot_id(policy, snap.cluster, tags.get(TAG_SOURCE, ""))
        return (
            f"tagged as a copy for policy {policy!r}, but its id is not the one snapworker "
            f"makes from those tags ({expected})"
        )
    if kind == "create":
        fire = parse_utc(tags.get(TAG_FIRE_TIME))
        if fire is None:
            return f"tagged as a create for policy {policy!r} without a readable fire time"
        expected = ids.create_snapshot_id(policy, snap.cluster, fire)
        return (
            f"tagged as a create for policy {policy!r}, but its id is not the one snapworker "
            f"makes from those tags ({expected})"
        )
    return f"tagged for policy {policy!r} with an unknown snapworker:kind {kind!r}"


def _proof_text(proof: str) -> str:
    return {
        "tags": "its snapworker:* tags match its id (tags are the source of truth)",
        "state": "the state DB records it as made by snapworker (its tags are missing)",
        "journal": "a pending journal entry made it (a crash came before its tags)",
        "former": "its snapworker:* tags name a former name of the policy (formerly), and "
        "its id is the one snapworker made under that name; the next run rewrites them",
    }.get(proof, proof)


def _single(rules: RetentionRules, name: str) -> RetentionRules:
    return RetentionRules(**{name: getattr(rules, name)}, timezone=rules.timezone)


def _rule_views(
    sid: str, cands: Sequence[Candidate], rules: RetentionRules, now: datetime
) -> tuple[list[RuleView], str]:
    if not rules.has_rules:
        return [], "no retention rule set: nothing expires"
    verdicts = {v.id: v for v in evaluate(cands, rules, now)}
    mine = verdicts[sid]
    ordered = order_newest_first(cands)
    rank = next(i for i, c in enumerate(ordered) if c.id == sid) + 1
    me = ordered[rank - 1]
    tz = ZoneInfo(rules.timezone)
    views: list[RuleView] = []
    names = ["keep_last", *_BUCKET_RULES, "keep_within", "max_age"]
    for name in names:
        value = getattr(rules, name)
        if value is None:
            continue
        alone = evaluate(cands, _single(rules, name), now)
        reasons = [
            r
            for v in alone
            if v.id == sid
            for r in v.keep_reasons
            if not r.startswith("data time in the future")
        ]
        label = _configured(name, value)
        if reasons:
            views.append(RuleView(label, True, "; ".join(reasons)))
            continue
        views.append(RuleView(label, False, _why_not(name, value, me, rank, alone, tz, now)))
    verdict = (
        "kept by " + "; ".join(mine.keep_reasons) if mine.kept else "expired: " + mine.expire_reason
    )
    return views, verdict


def _configured(name: str, value: object) -> str:
    if name == "max_age" and isinstance(value, timedelta):
        return f"max_age_days {value.days}"
    if isinstance(value, timedelta):
        return f"{name} {format_duration(value)}"
    return f"{name} {value}"


def _why_not(
    name: str,
    value: object,
    me: Candidate,
    rank: int,
    alone: Iterable[object],
    tz: ZoneInfo,
    now: datetime,
) -> str:
    if name == "keep_last":
        return f"#{rank} newest, not among the newest {value}"
    if name in _BUCKET_RULES:
        label = _bucket_label(name, me.data_time, tz)
        holder = None
        for v in alone:
            for r in getattr(v, "keep_reasons", ()):
                if r.endswith(f"(newest of {label})"):
                    holder = getattr(v, "id", None)
        unit = _UNITS[name]
        if value == 0:
            return "a count of 0 keeps nothing"
        if holder is not None:
            return f"{holder} is the newest of {unit} {label} and stands for it"
        return f"{unit} {label} is older than the {value} newest {unit}s with a snapshot"
    if name == "keep_within":
        assert isinstance(value, timedelta)
        return (
            f"more than {format_duration(value)} older than the newest snapshot "
            "(counted from the newest, not from now)"
        )
    if name == "max_age":
        assert isinstance(value, timedelta)
        age = now - me.data_time
        return f"{age.total_seconds() / 86400:.1f} days old, over {value.days}"
    return "does not keep it"


def _grant_views(
    snap: Snapshot,
    policy: Policy | None,
    grants: Sequence[GrantRecord],
    now: datetime,
    orphan: bool = False,
) -> list[GrantView]:
    """Each account with (or meant to have) restore access. ``orphan``: the snapshot's
    policy is not in the plan, so nothing decides about its grants: each is shown as AWS
    lists it, and none is called drift."""
    latest: dict[str, GrantRecord] = {}
    for record in sorted(grants, key=lambda r: r.granted_at):
        if record.snapshot_id == snap.id:
            latest[record.account] = record
    held = policy is not None and policy.hold_tag in snap.tags
    listed = set(policy.share.accounts) if policy is not None else set()
    after = policy.share.unshare_after if policy is not None else None
    out = []
    for account in sorted(set(snap.accounts) | listed | set(latest)):
        g = latest.get(account)
        authorized = account in snap.accounts
        lapses = g.granted_at + after if g is not None and after is not None else None
        if orphan:
            status = "shared" if authorized else "recorded as granted, but AWS no longer lists it"
            if g is not None and authorized:
                status += f" (snapworker granted it at {g.granted_at:%Y-%m-%d %H:%M}Z)"
            if authorized:
                status += "; no configured policy owns the snapshot: nothing revokes it"
        elif authorized and account not in listed:
            status = "drift: shared, but the policy does not list this account"
            if g is not None:
                status += f" (snapworker granted it at {g.granted_at:%Y-%m-%d %H:%M}Z)"
        elif authorized and g is not None:
            status = f"shared by snapworker at {g.granted_at:%Y-%m-%d %H:%M}Z"
            if lapses is not None:
                due = "due now" if lapses <= now else "then"
                status += f"; unshare_after {format_duration(after)}: revoke at "  # type: ignore[arg-type]
                status += f"{lapses:%Y-%m-%d %H:%M}Z ({due})"
        elif authorized:
            status = "shared, but the state DB has no record of snapworker granting it"
        elif g is not None and g.revoked_at is not None:
            status = f"revoked at {g.revoked_at:%Y-%m-%d %H:%M}Z"
            if g.revoked_reason is not None:
                status = f"{g.revoked_reason} (first missed {g.revoked_at:%Y-%m-%d %H:%M}Z)"
            elif after is not None:
                status += " (lapsed under unshare_after: not made again)"
        elif g is not None:
            status = "recorded as granted, but AWS no longer lists it"
        else:
            status = "not shared yet"
        if held and authorized:
            status += "; held: snapworker revokes nothing while the hold tag is set"
        out.append(
            GrantView(
                account=account,
                listed=account in listed,
                authorized=authorized,
                granted_at=g.granted_at if g is not None else None,
                revoked_at=g.revoked_at if g is not None else None,
                lapses_at=lapses,
                status=status,
            )
        )
    return out


def explain(
    snapshot_id: str,
    policies: Sequence[Policy],
    inventory: Inventory,
    state: State,
    now: datetime,
    account: str | None = None,
    all_policy_names: Iterable[str] | None = None,
    renames: Mapping[str, str] | None = None,
    *,
    planned: Plan | None = None,
) -> Explanation:
    """The whole decision for ``snapshot_id``; :class:`UnknownSnapshot` if AWS has none.
    ``renames``: every former policy name of the config -> its policy (default: those of
    ``policies``). ``planned``: the planner's plan over these same inputs, when the caller
    already has it (the HTML report explains every owned snapshot of one plan: one planner
    run, not one per snapshot)."""
    snap = inventory.snapshots.get(snapshot_id)
    if snap is None:
        rec = state.owned.get(snapshot_id)
        known = ""
        if rec is not None and rec.deleted_at is not None and rec.deleted_reason is not None:
            known = (
                f" (the state DB says it was {rec.deleted_reason}: first missed "
                f"{rec.deleted_at:%Y-%m-%d %H:%M}Z)"
            )
        elif rec is not None and rec.deleted_at is not None:
            known = (
                f" (the state DB says snapworker deleted it at {rec.deleted_at:%Y-%m-%d %H:%M}Z)"
            )
        elif rec is not None:
            known = " (the state DB knows it, but AWS does not list it)"
        raise UnknownSnapshot(f"no snapshot {snapshot_id!r} in this account and region{known}")

    renames = renames_of(policies) if renames is None else renames
    the_plan = planned or plan(policies, inventory, state, now, account, all_policy_names, renames)
    actions = tuple(a for a in the_plan.actions if a.snapshot == snapshot_id)
    kept = next((k for k in the_plan.kept if k.snapshot == snapshot_id), None)
    drift = tuple(d for d in the_plan.drift if d.snapshot == snapshot_id)
    notes = tuple(n for n in the_plan.notes if n.snapshot == snapshot_id)

    pending_made = {e.snapshot_id: e for e in state.pending if e.kind in ("create", "copy")}
    own = owner_of(snap, state, pending_made, account, renames)
    idx = index_estate(inventory, state, account, renames)
    base = {
        "snapshot": snap.id,
        "cluster": snap.cluster,
        "type": snap.type,
        "status": snap.status,
        "create_time": snap.create_time,
        "now": now,
        "retention_period": snap.retention_period,
    }
    if own is None:
        return Explanation(
            **base,  # type: ignore[arg-type]
            owned=False,
            policy=None,
            proof=None,
            ownership=_why_not_owned(snap, account),
            data_time=snap.create_time,
            hold_tag=None,
            hold_reason=None,
            notes=notes,
            actions=actions,
            copies=(
                tuple(copy_views(snap, policies, inventory, idx, the_plan))
                if snap.type == "automated"
                else ()
            ),
        )

    rec = own.record
    policy = next((p for p in policies if p.name == rec.policy), None)
    items = idx.owned.get(rec.policy, [])
    data_time = next((o.data_time for o in items if o.snap.id == snap.id), rec.data_time)
    ownership = f"owned by policy {rec.policy}: {_proof_text(own.proof)}"
    if policy is None:
        names = set(all_policy_names or ()) | {p.name for p in policies}
        orphan = (
            f"it belongs to no configured policy (policy {rec.policy} is not in the config)"
            if rec.policy not in names
            else f"its policy {rec.policy} is left out of this plan (--policy)"
        )
        if snap.accounts:
            n = len(snap.accounts)
            orphan += f", and is still shared with {n} account{'s' if n != 1 else ''}"
        ownership += "; " + orphan
        return Explanation(
            **base,  # type: ignore[arg-type]
            owned=True,
            policy=rec.policy,
            proof=own.proof,
            ownership=ownership,
            data_time=data_time,
            hold_tag=None,
            hold_reason=None,
            grants=tuple(_grant_views(snap, None, state.grants, now, orphan=True)),
            notes=notes,
            orphan=orphan,
        )

    rules = rules_of(policy)
    cands = [
        Candidate(o.snap.id, o.data_time)
        for o in items
        if o.snap.cluster == snap.cluster and o.snap.available
    ]
    if snap.available:
        views, verdict = _rule_views(snap.id, cands, rules, now)
    else:
        views, verdict = [], f"status '{snap.status}': not counted by retention until available"
    return Explanation(
        **base,  # type: ignore[arg-type]
        owned=True,
        policy=policy.name,
        proof=own.proof,
        ownership=ownership,
        data_time=data_time,
        hold_tag=policy.hold_tag,
        hold_reason=snap.tags.get(policy.hold_tag),
        rules=tuple(views),
        retention=verdict,
        grants=tuple(_grant_views(snap, policy, state.grants, now)),
        drift=drift,
        actions=actions,
        kept=kept,
        notes=notes,
        fail_safe_days=policy.retention.fail_safe_days,
    )
