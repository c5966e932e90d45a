"""Retention rules: which owned snapshots of one (policy, cluster) stay, and why.

Semantics are restic's ``forget`` (people already know them), over the snapshots' *data
time* (see DESIGN.md: for a copy, the time of the automated snapshot it was copied from):

- Snapshots are ordered newest first by data time; ties are broken by snapshot id,
  descending, so the order (and therefore every decision) is deterministic.
- A snapshot is kept when *any* rule keeps it; the result lists every rule that does.
- ``keep_last n`` keeps the n newest. ``keep_hourly/daily/weekly/monthly/yearly n`` walk
  the snapshots newest first and keep the first (newest) snapshot of each new bucket until
  n buckets are kept (``-1``: no limit). Buckets are calendar hours, days, ISO weeks
  (Monday to Sunday, ISO year), calendar months and years, in the policy's time zone.
- ``keep_within d`` keeps what is at most ``d`` older than the newest snapshot (counted
  from the newest, not from now, so a worker whose snapshots stopped does not expire them
  all); "the newest" is the newest by data time that is not in the future.
- ``max_age_days n`` keeps what is at most n days old, counted from now: exactly n days
  old is kept, older expires.
- A snapshot whose data time is in the future (clock skew) is always kept.
- With no rule at all, nothing expires.

The module is pure: the clock comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from snapworker.core.durations import format_duration


@dataclass(frozen=True)
class RetentionRules:
    """The rules of one policy, as plain data (the config's ``retention`` block)."""

    max_age: timedelta | None = None
    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: timedelta | None = None
    timezone: str = "UTC"

    @property
    def has_rules(self) -> bool:
        return any(
            v is not None
            for v in (
                self.max_age,
                self.keep_last,
                self.keep_hourly,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
                self.keep_yearly,
                self.keep_within,
            )
        )

    def describe(self) -> str:
        parts = []
        if self.max_age is not None:
            parts.append(f"max_age_days {self.max_age.days}")
        for name in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly"):
            if (v := getattr(self, name)) is not None:
                parts.append(f"{name} {v}")
        for name in ("keep_monthly", "keep_yearly"):
            if (v := getattr(self, name)) is not None:
                parts.append(f"{name} {v}")
        if self.keep_within is not None:
            parts.append(f"keep_within {format_duration(self.keep_within)}")
        return ", ".join(parts) or "no rule"


@dataclass(frozen=True)
class Candidate:
    """An owned snapshot as retention sees it: an id and the time of its data."""

    id: str
    data_time: datetime


@dataclass(frozen=True)
class Verdict:
    """The decision for one snapshot: the rules that keep it (none: it expires)."""

    id: str
    data_time: datetime
    keep_reasons: tuple[str, ...]
    expire_reason: str = ""

    @property
    def kept(self) -> bool:
        return bool(self.keep_reasons)


def order_newest_first(cands: Sequence[Candidate]) -> list[Candidate]:
    """Newest data first; ties broken by id, descending (documented, deterministic)."""
    return sorted(cands, key=lambda c: (c.data_time, c.id), reverse=True)


def _bucketers(tz: ZoneInfo) -> dict[str, Callable[[datetime], tuple[int, ...]]]:
    def local(t: datetime) -> datetime:
        return t.astimezone(tz)

    def iso_week(t: datetime) -> tuple[int, ...]:
        y, w, _ = local(t).isocalendar()
        return (y, w)

    return {
        "keep_hourly": lambda t: (local(t).year, local(t).month, local(t).day, local(t).hour),
        "keep_daily": lambda t: (local(t).year, local(t).month, local(t).day),
        "keep_weekly": iso_week,
        "keep_monthly": lambda t: (local(t).year, local(t).month),
        "keep_yearly": lambda t: (local(t).year,),
    }


def _bucket_label(name: str, t: datetime, tz: ZoneInfo) -> str:
    lt = t.astimezone(tz)
    if name == "keep_hourly":
        return lt.strftime("%Y-%m-%d %H:00")
    if name == "keep_daily":
        return lt.strftime("%Y-%m-%d")
    if name == "keep_weekly":
        y, w, _ = lt.isocalendar()
        return f"{y}-W{w:02d}"
    if name == "keep_monthly":
        return lt.strftime("%Y-%m")
    return lt.strftime("%Y")


def _age_text(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    if days >= 1:
        return f"{days:.0f} d" if days >= 10 else f"{days:.1f} d"
    return f"{delta.total_seconds() / 3600:.1f} h"


def evaluate(cands: Sequence[Candidate], rules: RetentionRules, now: datetime) -> list[Verdict]:
    """Decide every candidate of one (policy, cluster); the result is newest first."""
    ordered = order_newest_first(cands)
    reasons: dict[str, list[str]] = {c.id: [] for c in ordered}
    if not rules.has_rules:
        return [Verdict(c.id, c.data_time, ("no retention rule set",)) for c in ordered]
    tz = ZoneInfo(rules.timezone)

    for c in ordered:
        if c.data_time > now:
            reasons[c.id].append("data time in the future (clock skew?); kept")

    if rules.keep_last is not None:
        limit = len(ordered) if rules.keep_last == -1 else rules.keep_last
        for i, c in enumerate(ordered[:limit]):
            reasons[c.id].append(f"keep_last {rules.keep_last} (#{i + 1} newest)")

    for name, bucket in _bucketers(tz).items():
        count = getattr(rules, name)
        if count is None or count == 0:
            continue
        last: tuple[int, ...] | None = None
        kept = 0
        for c in ordered:
            if count != -1 and kept >= count:
                break
            b = bucket(c.data_time)
            if b != last:
                last = b
                kept += 1
                label = _bucket_label(name, c.data_time, tz)
                reasons[c.id].append(f"{name} {count} (newest of {label})")

    if rules.keep_within is not None:
        past = [c for c in ordered if c.data_time <= now]
        if past:
            newest = past[0].data_time
            floor = newest - rules.keep_within
            within = format_duration(rules.keep_within)
            for c in ordered:
                if floor <= c.data_time <= newest:
                    reasons[c.id].append(
                        f"keep_within {within} of the newest ({newest:%Y-%m-%d %H:%M}Z)"
                    )

    if rules.max_age is not None:
        for c in ordered:
            age = now - c.data_time
            if timedelta(0) <= age <= rules.max_age:
                reasons[c.id].append(f"age {_age_text(age)} <= max_age_days {rules.max_age.days}")

    verdicts = []
    for c in ordered:
        rs = tuple(reasons[c.id])
        expire = "" if rs else _expire_reason(c, rules, now)
        verdicts.append(Verdict(c.id, c.data_time, rs, expire))
    return verdicts


def _expire_reason(c: Candidate, rules: RetentionRules, now: datetime) -> str:
    parts = []
    if rules.max_age is not None:
        parts.append(f"age {_age_text(now - c.data_time)} > max_age_days {rules.max_age.days}")
    if rules.keep_last is not None:
        parts.append(f"not among the newest {rules.keep_last}")
    others = [
        n
        for n in ("keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
        if getattr(rules, n) is not None
    ]
    if others:
        parts.append("not the newest of a kept " + "/".join(o[5:] for o in others) + " bucket")
    if rules.keep_within is not None:
        parts.append(f"older than keep_within {format_duration(rules.keep_within)} of the newest")
    return "; ".join(parts)
