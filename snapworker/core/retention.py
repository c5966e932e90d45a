"""Retention rules: which owned snapshots of one (policy, cluster) stay, and why.

Semantics are restic's ``forget`` (people already know them), over the snapshots' *data
time* (see DESIGN.md: for a copy, the time of the automated snapshot it was copied from):

- Snapshots are ordered newest first by data time; ties are broken by snapshot id,
  descending, so the order (and therefore every decision) is deterministic.
- A snapshot is kept when *any* rule keeps it; the result lists every rule that does.
- ``keep_last n`` keeps the n newest. ``keep_hourly/daily/weekly/monthly/yearly n`` walk
  the snapshots newest first and keep the first (newest) snapshot of each new bucket until
  n buckets are kept (``-1``: no limit; ``0``: the rule keeps nothing). Buckets are calendar
  hours, days, ISO weeks (Monday to Sunday, ISO year), calendar months and years, in the
  policy's time zone, by wall-clock time there:

  - hour ``YYYY-MM-DD HH:00``: the hour repeated when clocks go back is *one* bucket (both
    real hours), the hour skipped when they go forward does not exist;
  - day ``YYYY-MM-DD``: a day of 23 or 25 hours is one bucket; a snapshot at 23:30 in New
    York is on that local day, not on the next UTC day;
  - week ``YYYY-Www`` (ISO 8601): Monday 00:00 to Sunday 24:00, numbered in the ISO year,
    so 2024-12-30 is in 2025-W01 and 2027-01-03 in 2026-W53 (years with 53 weeks exist);
  - month ``YYYY-MM`` (the last day of February is the 28th or, in a leap year, the 29th);
    year ``YYYY``.

  The reason names the bucket: ``keep_monthly 12 (newest of 2024-02)``.
- ``keep_within d`` keeps what is at most ``d`` older than the newest snapshot (counted
  from the newest, not from now, so a worker whose snapshots stopped does not expire them
  all); "the newest" is the newest by data time that is not in the future.
- ``max_age_days n`` keeps what is at most n days old, counted from now: exactly n days
  old is kept, older expires.
- A snapshot whose data time is in the future (clock skew) is always kept; it still takes
  its place in the order (a ``keep_last`` slot, its bucket).
- With no rule at all, nothing expires. Otherwise the kept set is the union of what each
  rule alone keeps, so adding a rule, or raising a count or a duration, never expires a
  snapshot that was kept (``tests/test_gfs.py`` checks this with hypothesis).

The module is pure: the clock comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
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
    def hourly(t: datetime) -> tuple[int, ...]:
        lt = t.astimezone(tz)  # once per snapshot, not once per field
        return (lt.year, lt.month, lt.day, lt.hour)

    def daily(t: datetime) -> tuple[int, ...]:
        lt = t.astimezone(tz)
        return (lt.year, lt.month, lt.day)

    def iso_week(t: datetime) -> tuple[int, ...]:
        y, w, _ = t.astimezone(tz).isocalendar()
        return (y, w)

    def monthly(t: datetime) -> tuple[int, ...]:
        lt = t.astimezone(tz)
        return (lt.year, lt.month)

    return {
        "keep_hourly": hourly,
        "keep_daily": daily,
        "keep_weekly": iso_week,
        "keep_monthly": monthly,
        "keep_yearly": lambda t: (t.astimezone(tz).year,),
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


def evaluate(
    cands: Sequence[Candidate],
    rules: RetentionRules,
    now: datetime,
    only: Collection[str] | None = None,
) -> list[Verdict]:
    """Decide every candidate of one (policy, cluster); the result is newest first.

    ``only``: return the verdicts of these ids alone. The ranking rules (keep_last, the
    buckets, keep_within's newest) still walk all the candidates, which rank one another;
    the per-snapshot rules and the reason texts, most of the cost, cover the verdicts
    returned only. The planner's "already past retention" check of a few sources among
    many owned snapshots uses it.

    Cost: O(n log n) for the sort, then O(n) per rule.
    """
    ordered = order_newest_first(cands)
    # The candidates whose verdicts are returned; the per-candidate rules (clock skew,
    # keep_within, max_age) look at these alone, the ranking rules at all of them.
    subject = ordered if only is None else [c for c in ordered if c.id in only]
    if not rules.has_rules:
        return [Verdict(c.id, c.data_time, ("no retention rule set",)) for c in subject]
    reasons: dict[str, list[str]] = {c.id: [] for c in subject}
    tz = ZoneInfo(rules.timezone)

    for c in subject:
        if c.data_time > now:
            reasons[c.id].append("data time in the future (clock skew?); kept")

    if rules.keep_last is not None:
        limit = len(ordered) if rules.keep_last == -1 else rules.keep_last
        for i, c in enumerate(ordered[:limit]):
            if (r := reasons.get(c.id)) is not None:
                r.append(f"keep_last {rules.keep_last} (#{i + 1} newest)")

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
                if (r := reasons.get(c.id)) is not None:
                    label = _bucket_label(name, c.data_time, tz)
                    r.append(f"{name} {count} (newest of {label})")

    if rules.keep_within is not None:
        newest = next((c.data_time for c in ordered if c.data_time <= now), None)
        if newest is not None:
            floor = newest - rules.keep_within
            within = format_duration(rules.keep_within)
            for c in subject:
                if floor <= c.data_time <= newest:
                    reasons[c.id].append(
                        f"keep_within {within} of the newest ({newest:%Y-%m-%d %H:%M}Z)"
                    )

    if rules.max_age is not None:
        zero, max_age, days = timedelta(0), rules.max_age, rules.max_age.days
        for c in subject:
            age = now - c.data_time
            if zero <= age <= max_age:
                reasons[c.id].append(f"age {_age_text(age)} <= max_age_days {days}")

    verdicts = []
    tail = _expire_tail(rules)  # the same for every candidate: built once, not per snapshot
    for c in subject:
        rs = tuple(reasons[c.id])
        expire = "" if rs else _expire_reason(c, rules, now, tail)
        verdicts.append(Verdict(c.id, c.data_time, rs, expire))
    return verdicts


def _expire_reason(
    c: Candidate, rules: RetentionRules, now: datetime, tail: list[str] | None = None
) -> str:
    parts = []
    if rules.max_age is not None:
        parts.append(f"age {_age_text(now - c.data_time)} > max_age_days {rules.max_age.days}")
    parts.extend(_expire_tail(rules) if tail is None else tail)
    return "; ".join(parts)


def _expire_tail(rules: RetentionRules) -> list[str]:
    """The parts of an expiry reason that do not depend on the snapshot."""
    parts = []
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
    return parts
