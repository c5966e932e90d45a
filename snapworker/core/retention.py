"""Retention rules: which owned snapshots of one (policy, cluster) stay, and why.

Semantics are restic's ``forget`` (people already know them), over the snapshots' *data
time* (see docs/design.md: for a copy, the time of the automated snapshot it was copied from):

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

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import compress, islice
from operator import attrgetter
from typing import Protocol, TypeVar
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
        return (
            self.max_age is not None
            or self.keep_last is not None
            or self.keep_hourly is not None
            or self.keep_daily is not None
            or self.keep_weekly is not None
            or self.keep_monthly is not None
            or self.keep_yearly is not None
            or self.keep_within is not None
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


class Dated(Protocol):
    """What retention reads of a snapshot: a :class:`Candidate`, or any object with the
    same two attributes (the planner passes its own records, not copies of them)."""

    @property
    def id(self) -> str: ...

    @property
    def data_time(self) -> datetime: ...


D = TypeVar("D", bound=Dated)
_NEWEST_KEY = attrgetter("data_time", "id")
_ID = attrgetter("id")
DATA_TIME = attrgetter("data_time")
_BUCKET_RULES = ("keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def order_newest_first(cands: Iterable[D]) -> list[D]:
    """Newest data first; ties broken by id, descending (documented, deterministic)."""
    return sorted(cands, key=_NEWEST_KEY, reverse=True)


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
    # Also inlined in keep_reasons (max_age): change both together.
    days = delta.total_seconds() / 86400
    if days >= 1:
        return f"{days:.0f} d" if days >= 10 else f"{days:.1f} d"
    return f"{delta.total_seconds() / 3600:.1f} h"


def evaluate(
    cands: Sequence[Dated],
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
    subject: Sequence[int] = (
        range(len(ordered))
        if only is None
        else list(compress(range(len(ordered)), map(only.__contains__, map(_ID, ordered))))
    )
    if not rules.has_rules:
        return [Verdict(ordered[i].id, ordered[i].data_time, (NO_RULE,)) for i in subject]
    # One list of reasons per id (candidates sharing an id share it), None for the
    # candidates whose verdicts are not returned.
    by_id: dict[str, list[str]] = {}
    reasons: list[list[str] | None] = [None] * len(ordered)
    for i in subject:
        reasons[i] = by_id.setdefault(ordered[i].id, [])
    keep_reasons(list(map(DATA_TIME, ordered)), reasons, subject, rules, now)
    verdicts = []
    tail = expire_tail(rules)  # the same for every candidate: built once, not per snapshot
    for i in subject:
        c = ordered[i]
        rs = tuple(by_id[c.id])
        expire = "" if rs else expire_reason(c.data_time, rules, now, tail)
        verdicts.append(Verdict(c.id, c.data_time, rs, expire))
    return verdicts


NO_RULE = "no retention rule set"
"""The one keep reason when the policy sets no retention rule (nothing expires)."""
_FUTURE = "data time in the future (clock skew?); kept"


def keep_reasons(
    times: Sequence[datetime],
    reasons: Sequence[list[str] | None],
    subject: Iterable[int],
    rules: RetentionRules,
    now: datetime,
) -> None:
    """The rules' work, shared by :func:`evaluate` and the planner: append to ``reasons[i]``
    every rule that keeps the i-th snapshot of ``times`` (data times, newest first as
    :func:`order_newest_first` orders them: the rules rely on that order). ``reasons[i]``
    is None for a snapshot that only ranks the others; ``subject``: the indexes whose
    reasons are wanted (none None). An empty list left: the snapshot expires
    (:func:`expire_reason` says why). ``rules`` must set a rule (``has_rules``; with none,
    :data:`NO_RULE` keeps everything).

    Cost: O(n) per rule, most of it in the reason texts of the subject."""
    # The subject's times and reason lists, side by side (newest first, as ``times``):
    # walked by the per-snapshot rules.
    own_times: Sequence[datetime]
    own_reasons: Sequence[list[str]]
    if subject == range(len(times)):
        own_times, own_reasons = times, reasons  # type: ignore[assignment]
    else:
        subject = sorted(subject)
        own_times = [times[i] for i in subject]
        own_reasons = [reasons[i] for i in subject]  # type: ignore[misc]
    # Newest first: the snapshots in the future (clock skew) are the first ``future``.
    future = 0
    for t, r in zip(own_times, own_reasons, strict=True):
        if t <= now:
            break
        r.append(_FUTURE)
        future += 1

    keep_last = rules.keep_last
    if keep_last is not None:
        limit = len(times) if keep_last == -1 else keep_last
        for i in range(len(times))[:limit]:  # slices as ``ordered[:limit]`` did
            if (ranked := reasons[i]) is not None:
                ranked.append(f"keep_last {keep_last} (#{i + 1} newest)")

    tz = ZoneInfo(rules.timezone)
    bucketers = None
    for name in _BUCKET_RULES:
        count = getattr(rules, name)
        if count is None or count == 0:
            continue
        if bucketers is None:
            bucketers = _bucketers(tz)
        bucket = bucketers[name]
        last: tuple[int, ...] | None = None
        kept = 0
        for i, t in enumerate(times):
            if count != -1 and kept >= count:
                break
            b = bucket(t)
            if b != last:
                last = b
                kept += 1
                if (ranked := reasons[i]) is not None:
                    label = _bucket_label(name, t, tz)
                    ranked.append(f"{name} {count} (newest of {label})")

    if rules.keep_within is not None:
        newest = next((t for t in times if t <= now), None)
        if newest is not None:
            floor = newest - rules.keep_within
            text = (
                f"keep_within {format_duration(rules.keep_within)} of the newest "
                f"({newest:%Y-%m-%d %H:%M}Z)"
            )
            for t, r in zip(own_times, own_reasons, strict=True):
                if floor <= t <= newest:
                    r.append(text)

    if rules.max_age is not None:
        max_age = rules.max_age
        suffix = f" <= max_age_days {max_age.days}"
        # Past the ``future`` ones, ages grow: the first older than max_age ends the walk.
        for t, r in islice(zip(own_times, own_reasons, strict=True), future, None):
            age = now - t  # >= 0: not in the future
            if age > max_age:
                break
            # _age_text, inlined: this is the one text built for every kept snapshot. Its
            # f"{days:.0f}" is str(round(days)), which costs a third: both round the exact
            # value, half to even (tests/test_gfs.py checks the texts against _age_text).
            secs = age.total_seconds()
            days = secs / 86400
            if days >= 10:
                text = f"age {round(days)} d{suffix}"
            elif days >= 1:
                text = f"age {days:.1f} d{suffix}"
            else:
                text = f"age {secs / 3600:.1f} h{suffix}"
            r.append(text)


def expire_reason(
    data_time: datetime, rules: RetentionRules, now: datetime, tail: list[str] | None = None
) -> str:
    """Why a snapshot of ``data_time`` that no rule keeps expires. ``tail``: what
    :func:`expire_tail` returns for ``rules`` (the same for every snapshot: build it once)."""
    parts = []
    if rules.max_age is not None:
        parts.append(f"age {_age_text(now - data_time)} > max_age_days {rules.max_age.days}")
    parts.extend(expire_tail(rules) if tail is None else tail)
    return "; ".join(parts)


def expire_tail(rules: RetentionRules) -> list[str]:
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
