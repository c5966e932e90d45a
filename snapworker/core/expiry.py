"""When retention would stop keeping a snapshot, if nothing new arrives. Pure.

The HTML report's timeline says, of each kept snapshot, the date it expires. That is a
question about the future, answered with retention's own rules (``retention.evaluate``),
never a second copy of them: with the same owned snapshots (no new one made, none deleted
by hand), the verdict can change only at a few instants, and this module evaluates the
rules at each in turn and returns the first one at which they keep the snapshot no longer.

The instants at which a verdict can change:

- ``data_time + max_age`` of every candidate, plus one microsecond (``max_age_days`` keeps
  what is *at most* that old);
- the data time of every candidate in the future (clock skew): from then on it is no longer
  "in the future", and may become the newest that ``keep_within`` counts from.

Between those instants nothing changes, and once retention stops keeping a snapshot it never
keeps it again (ages only grow, "in the future" only ends, the newest that ``keep_within``
counts from only moves forward), so a binary search over the instants finds the first.

``keep_last``, the ``keep_*`` buckets and ``keep_within`` (counted from the newest, not from
now) do not depend on the clock otherwise: a snapshot they keep has no expiry date until a
newer snapshot arrives. That is what the report says then ("kept by keep_last: no expiry
date").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from snapworker.core.retention import Dated, RetentionRules, evaluate

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Expiry:
    """``at``: the first instant retention would not keep the snapshot (None: no such
    instant while no newer snapshot arrives); ``kept_by``: the rules that keep it from then
    on when ``at`` is None, else the rules that keep it now."""

    at: datetime | None
    kept_by: tuple[str, ...]


def expiry(sid: str, cands: Sequence[Dated], rules: RetentionRules, now: datetime) -> Expiry:
    """When retention stops keeping ``sid`` (one of ``cands``, the owned available
    snapshots of its policy and cluster), given no new snapshot. ``at`` is ``now`` when it
    is not kept now."""
    mine = _verdict(sid, cands, rules, now)
    if not mine:
        return Expiry(now, ())
    instants = set()
    for c in cands:
        if rules.max_age is not None:
            instants.add(c.data_time + rules.max_age + _TICK)
        if c.data_time > now:
            instants.add(c.data_time)
    # Kept-ness only ever ends as time passes (ages grow past max_age, "in the future" ends,
    # keep_within's newest only moves forward; the rest ignore the clock): a binary search
    # over the instants finds the first at which it is not kept, in O(log n) evaluations.
    times = sorted(i for i in instants if i > now)
    if not times:
        return Expiry(None, mine)
    last = _verdict(sid, cands, rules, times[-1])
    if last:
        return Expiry(None, last)
    lo, hi = 0, len(times) - 1  # not kept at times[hi]; kept before times[lo]
    while lo < hi:
        mid = (lo + hi) // 2
        if _verdict(sid, cands, rules, times[mid]):
            lo = mid + 1
        else:
            hi = mid
    return Expiry(times[lo], mine)


def _verdict(
    sid: str, cands: Sequence[Dated], rules: RetentionRules, at: datetime
) -> tuple[str, ...]:
    v = evaluate(cands, rules, at, only={sid})
    return v[0].keep_reasons if v else ()


def rule_names(reasons: Sequence[str]) -> list[str]:
    """The rule names in keep reasons ("keep_last 3 (#1 newest)" -> "keep_last"), in order,
    without repeats."""
    names: list[str] = []
    for r in reasons:
        word = r.split(" ", 1)[0]
        name = "max_age_days" if word == "age" else word
        if name.startswith(("keep_", "max_age")) and name not in names:
            names.append(name)
        elif r.startswith("data time in the future") and "clock skew" not in names:
            names.append("clock skew")
        elif r.startswith("no retention rule") and "no rule" not in names:
            names.append("no rule")
    return names
