"""What the planner decides for one policy and cluster, by concern: copies of automated
snapshots (and whether a source is already past retention), scheduled creates, retention
(kept with their rules, or expired), and grants (share, lapse, drift); plus the notes on a
policy's rules (horizons, the fail-safe).

Pure: no I/O, no clock. The planner (``core/planner.py``) calls these over the index that
``core/estate.py`` builds.
"""

from __future__ import annotations

from datetime import datetime

from snapworker.core import ids
from snapworker.core.durations import format_duration
from snapworker.core.estate import Index, Owned, OwnedIds
from snapworker.core.events import (
    AutomatedSnapshotSeen,
    Event,
    GrantDrifted,
    GrantLapsed,
    ScheduleDue,
    SnapshotNeedsShare,
)
from snapworker.core.model import (
    Cluster,
    Inventory,
    Kept,
    Note,
    Snapshot,
)
from snapworker.core.policy import Policy
from snapworker.core.retention import (
    DATA_TIME,
    NO_RULE,
    Candidate,
    Dated,
    RetentionRules,
    evaluate,
    expire_reason,
    keep_reasons,
    order_newest_first,
)


def plan_copies(
    policy: Policy,
    cluster: Cluster,
    inv: Inventory,
    idx: Index,
    mine: list[Owned],
    owned_ids: OwnedIds,
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
    expiring = past_retention(mine, cands, rules, now, tail)
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


def past_retention(
    mine: list[Owned],
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


def plan_creates(
    policy: Policy,
    cluster: Cluster,
    inv: Inventory,
    idx: Index,
    owned_ids: OwnedIds,
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


def plan_retention(
    policy: Policy,
    items: list[Owned],
    rules: RetentionRules,
    now: datetime,
    tail: list[str],
    kept: list[Kept],
) -> list[tuple[Owned, str]]:
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
    expired: list[tuple[Owned, str]] = []
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


def plan_grants(policy: Policy, o: Owned, idx: Index, now: datetime) -> list[Event]:
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
