"""GFS retention (``core.retention.evaluate``) against an independent implementation.

The reference below is written from the documented rules, not from retention.py: buckets
are computed with ``dateutil.tz`` (not ``zoneinfo``) as wall-clock strings, an ISO week is
named by its Monday's date (not ``isocalendar``), and a bucket rule is computed by grouping
(the newest snapshot of each bucket, then the n newest buckets) instead of restic's walk.
Table-driven cases run both over generated timelines (every hour for two years; daily and
twice-daily snapshots across the DST changes of Europe/Berlin and America/New_York; month
ends; a leap day; ISO years with 53 weeks), and spell out the expected result where a
person can check it by hand. Hypothesis then checks the algebra: union semantics, adding a
rule or raising a count never removes a kept snapshot, and the planner never acts on a
held snapshot.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil import tz as dtz
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from snapworker.core import ids
from snapworker.core.durations import format_duration
from snapworker.core.model import GrantRecord, Snapshot, State
from snapworker.core.planner import plan, rules_of
from snapworker.core.retention import (
    Candidate,
    RetentionRules,
    _age_text,
    evaluate,
    keep_reasons,
)
from tests import factories

BUCKET_RULES = ("keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
COUNT_RULES = ("keep_last", *BUCKET_RULES)

# ------------------------------------------------------------------ the reference implementation


@functools.lru_cache(maxsize=200_000)
def _wall(t: datetime, zone: str) -> datetime:
    """Wall-clock time in ``zone``, via dateutil (independent of zoneinfo)."""
    tzinfo = dtz.gettz(zone)
    assert tzinfo is not None, zone
    return t.astimezone(tzinfo)


def _bucket(rule: str, t: datetime, zone: str) -> str:
    w = _wall(t, zone)
    if rule == "keep_hourly":
        return w.strftime("%Y-%m-%d %H")  # the repeated hour of a fall-back is one bucket
    if rule == "keep_daily":
        return w.strftime("%Y-%m-%d")
    if rule == "keep_weekly":
        monday = w.date() - timedelta(days=w.weekday())
        return f"week of {monday.isoformat()}"
    if rule == "keep_monthly":
        return w.strftime("%Y-%m")
    assert rule == "keep_yearly"
    return w.strftime("%Y")


def reference(
    snaps: Iterable[tuple[str, datetime]], rules: dict[str, Any], now: datetime, zone: str
) -> dict[str, set[str]]:
    """id -> the names of the rules that keep it (empty: expires). ``rules`` holds the
    config's names: keep_*, keep_within (timedelta), max_age_days (int)."""
    items = list(snaps)
    keeps: dict[str, set[str]] = {sid: set() for sid, _ in items}
    if not any(v is not None for v in rules.values()):
        return {sid: {"no rule"} for sid, _ in items}
    newest_first = sorted(items, key=lambda s: (s[1], s[0]), reverse=True)
    for sid, t in items:
        if t > now:
            keeps[sid].add("future")
    n = rules.get("keep_last")
    if n is not None:
        for sid, _ in newest_first[: len(items) if n == -1 else n]:
            keeps[sid].add("keep_last")
    for rule in BUCKET_RULES:
        n = rules.get(rule)
        if not n:
            continue
        best: dict[str, tuple[datetime, str]] = {}
        for sid, t in items:
            b = _bucket(rule, t, zone)
            if b not in best or (t, sid) > best[b]:
                best[b] = (t, sid)
        chosen = sorted(best.values(), reverse=True)
        for _, sid in chosen if n == -1 else chosen[:n]:
            keeps[sid].add(rule)
    within = rules.get("keep_within")
    if within is not None:
        past = [t for _, t in items if t <= now]
        if past:
            top = max(past)
            for sid, t in items:
                if top - within <= t <= top:
                    keeps[sid].add("keep_within")
    days = rules.get("max_age_days")
    if days is not None:
        for sid, t in items:
            if timedelta(0) <= now - t <= timedelta(days=days):
                keeps[sid].add("max_age_days")
    return keeps


def to_rules(rules: dict[str, Any], zone: str) -> RetentionRules:
    days = rules.get("max_age_days")
    return RetentionRules(
        max_age=timedelta(days=days) if days is not None else None,
        keep_last=rules.get("keep_last"),
        keep_hourly=rules.get("keep_hourly"),
        keep_daily=rules.get("keep_daily"),
        keep_weekly=rules.get("keep_weekly"),
        keep_monthly=rules.get("keep_monthly"),
        keep_yearly=rules.get("keep_yearly"),
        keep_within=rules.get("keep_within"),
        timezone=zone,
    )


def rule_of(reason: str) -> str:
    """The rule a reason of ``evaluate`` names."""
    if reason.startswith("age "):
        return "max_age_days"
    if reason.startswith("data time in the future"):
        return "future"
    if reason == "no retention rule set":
        return "no rule"
    return reason.split()[0]


def actual(
    snaps: Iterable[tuple[str, datetime]], rules: dict[str, Any], now: datetime, zone: str
) -> dict[str, set[str]]:
    verdicts = evaluate([Candidate(s, t) for s, t in snaps], to_rules(rules, zone), now)
    return {v.id: {rule_of(r) for r in v.keep_reasons} for v in verdicts}


# ---------------------------------------------------------------------------- the timelines


def every(start: datetime, step: timedelta, count: int) -> list[tuple[str, datetime]]:
    """``count`` snapshots ``step`` apart, from ``start`` (aware)."""
    out = []
    for i in range(count):
        t = (start + step * i).astimezone(UTC)
        out.append((f"s-{t:%Y%m%dT%H%M}", t))
    return out


def local_daily(
    zone: str, first: date, days: int, *times: tuple[int, int]
) -> list[tuple[str, datetime]]:
    """Snapshots at the given local wall-clock times each day (DST-aware instants)."""
    tzinfo = ZoneInfo(zone)
    out = []
    for d in range(days):
        day = first + timedelta(days=d)
        for hh, mm in times:
            t = datetime(day.year, day.month, day.day, hh, mm, tzinfo=tzinfo).astimezone(UTC)
            out.append((f"s-{day:%Y%m%d}-{hh:02d}{mm:02d}", t))
    return out


HOURLY_TWO_YEARS = every(datetime(2023, 1, 1, tzinfo=UTC), timedelta(hours=1), 2 * 8760)
NOW_2Y = datetime(2025, 1, 1, 6, 30, tzinfo=UTC)

GFS = {
    "keep_last": 5,
    "keep_hourly": 48,
    "keep_daily": 14,
    "keep_weekly": 8,
    "keep_monthly": 18,
    "keep_yearly": 3,
}

CASES: list[tuple[str, list[tuple[str, datetime]], dict[str, Any], datetime, str]] = [
    ("hourly-2y-utc-gfs", HOURLY_TWO_YEARS, GFS, NOW_2Y, "UTC"),
    ("hourly-2y-berlin-gfs", HOURLY_TWO_YEARS, GFS, NOW_2Y, "Europe/Berlin"),
    ("hourly-2y-newyork-gfs", HOURLY_TWO_YEARS, GFS, NOW_2Y, "America/New_York"),
    (
        "hourly-2y-unlimited",
        HOURLY_TWO_YEARS,
        {"keep_daily": -1, "keep_weekly": -1, "keep_monthly": -1, "keep_yearly": -1},
        NOW_2Y,
        "Europe/Berlin",
    ),
    (
        "hourly-2y-within-and-age",
        HOURLY_TWO_YEARS,
        {"keep_within": timedelta(days=3, hours=12), "max_age_days": 10, "keep_monthly": 6},
        NOW_2Y,
        "America/New_York",
    ),
    (
        "berlin-twice-daily-dst-2024",
        local_daily("Europe/Berlin", date(2024, 3, 20), 230, (0, 30), (23, 30)),
        {"keep_daily": 400, "keep_weekly": 40, "keep_monthly": 12},
        datetime(2024, 12, 1, tzinfo=UTC),
        "Europe/Berlin",
    ),
    (
        "newyork-twice-daily-dst-2024",
        local_daily("America/New_York", date(2024, 3, 1), 280, (0, 15), (23, 45)),
        {"keep_daily": 400, "keep_weekly": 60, "keep_monthly": 12, "keep_last": 3},
        datetime(2024, 12, 15, tzinfo=UTC),
        "America/New_York",
    ),
    (
        "berlin-hourly-across-fall-back",
        every(datetime(2024, 10, 26, 20, tzinfo=UTC), timedelta(minutes=20), 30),
        {"keep_hourly": 100},
        datetime(2024, 10, 28, tzinfo=UTC),
        "Europe/Berlin",
    ),
    (
        "newyork-hourly-across-spring-forward",
        every(datetime(2024, 3, 10, 4, tzinfo=UTC), timedelta(minutes=30), 16),
        {"keep_hourly": 100, "keep_daily": 3},
        datetime(2024, 3, 12, tzinfo=UTC),
        "America/New_York",
    ),
    (
        "month-ends-and-leap-day-utc",
        local_daily("UTC", date(2023, 12, 1), 500, (23, 59), (0, 1)),
        {"keep_monthly": 100, "keep_yearly": 10, "max_age_days": 365},
        datetime(2025, 4, 14, tzinfo=UTC),
        "UTC",
    ),
    (
        "iso-week-53-2026",
        local_daily("UTC", date(2026, 12, 14), 35, (12, 0)),
        {"keep_weekly": 100},
        datetime(2027, 2, 1, tzinfo=UTC),
        "UTC",
    ),
    (
        "iso-week-53-2020-newyork",
        local_daily("America/New_York", date(2020, 12, 14), 35, (0, 30), (23, 30)),
        {"keep_weekly": 100, "keep_yearly": 5},
        datetime(2021, 2, 1, tzinfo=UTC),
        "America/New_York",
    ),
    (
        "ties-on-equal-data-time",
        [(f"s-{c}", datetime(2024, 5, 1, 12, tzinfo=UTC)) for c in "abcdef"]
        + [(f"t-{c}", datetime(2024, 5, 2, 12, tzinfo=UTC)) for c in "xyz"],
        {"keep_last": 2, "keep_daily": 2},
        datetime(2024, 6, 1, tzinfo=UTC),
        "UTC",
    ),
    (
        "future-data-time-is-kept",
        every(datetime(2024, 5, 1, tzinfo=UTC), timedelta(days=1), 12),
        {"keep_last": 2, "keep_within": timedelta(days=2)},
        datetime(2024, 5, 8, 12, tzinfo=UTC),
        "UTC",
    ),
]


@pytest.mark.parametrize(
    ("snaps", "rules", "now", "zone"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_matches_the_reference(
    snaps: list[tuple[str, datetime]], rules: dict[str, Any], now: datetime, zone: str
) -> None:
    got = actual(snaps, rules, now, zone)
    want = reference(snaps, rules, now, zone)
    diff = {sid: (got[sid], want[sid]) for sid in want if got[sid] != want[sid]}
    assert not diff, f"{len(diff)} differ, e.g. {sorted(diff.items())[:5]}"
    assert any(want.values()) and not all(want.values()), "a case that keeps all or none"


# ---------------------------------------------------- expected results a person can check


def kept_by(
    snaps: list[tuple[str, datetime]], rules: dict[str, Any], now: datetime, zone: str, rule: str
) -> list[str]:
    """The ids ``rule`` keeps, newest first, with the reason labels ``evaluate`` gives."""
    verdicts = evaluate([Candidate(s, t) for s, t in snaps], to_rules(rules, zone), now)
    return [
        f"{v.id} {r[r.index('(') :]}"
        for v in verdicts
        for r in v.keep_reasons
        if rule_of(r) == rule
    ]


def test_monthly_keeps_the_last_snapshot_of_each_local_month_leap_day_included() -> None:
    # 00:30 and 23:30 Berlin time every day of 2024: the month's newest is the 23:30 of its
    # last day, local time (in UTC that is 21:30 or 22:30 of the same day).
    snaps = local_daily("Europe/Berlin", date(2024, 1, 1), 366, (0, 30), (23, 30))
    now = datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert kept_by(snaps, {"keep_monthly": 12}, now, "Europe/Berlin", "keep_monthly") == [
        f"s-2024{m}-2330 (newest of 2024-{m[:2]})"
        for m in (
            "1231", "1130", "1031", "0930", "0831", "0731",
            "0630", "0531", "0430", "0331", "0229", "0131",
        )
    ]  # fmt: skip


def test_daily_buckets_are_local_days_not_utc_days() -> None:
    # New York 23:45 is 03:45/04:45 UTC of the next day: a UTC bucketing would pair each
    # 23:45 with the next day's 00:15. Local days keep the 23:45 of every day.
    snaps = local_daily("America/New_York", date(2024, 3, 8), 4, (0, 15), (23, 45))
    now = datetime(2024, 3, 20, tzinfo=UTC)
    assert kept_by(snaps, {"keep_daily": 10}, now, "America/New_York", "keep_daily") == [
        "s-20240311-2345 (newest of 2024-03-11)",
        "s-20240310-2345 (newest of 2024-03-10)",  # the spring-forward day (23 hours)
        "s-20240309-2345 (newest of 2024-03-09)",
        "s-20240308-2345 (newest of 2024-03-08)",
    ]


def test_weekly_uses_iso_weeks_and_iso_years_week_53() -> None:
    # Daily at noon UTC: the newest of an ISO week is its Sunday. 2026 has 53 ISO weeks:
    # Sunday 2027-01-03 closes 2026-W53; 2024-12-29 closes 2024-W52 and Monday
    # 2024-12-30 starts 2025-W01.
    snaps = local_daily("UTC", date(2026, 12, 21), 21, (12, 0))
    now = datetime(2027, 2, 1, tzinfo=UTC)
    assert kept_by(snaps, {"keep_weekly": 10}, now, "UTC", "keep_weekly") == [
        "s-20270110-1200 (newest of 2027-W01)",
        "s-20270103-1200 (newest of 2026-W53)",
        "s-20261227-1200 (newest of 2026-W52)",
    ]
    snaps = local_daily("UTC", date(2024, 12, 23), 14, (12, 0))
    assert kept_by(snaps, {"keep_weekly": 10}, now, "UTC", "keep_weekly") == [
        "s-20250105-1200 (newest of 2025-W01)",
        "s-20241229-1200 (newest of 2024-W52)",
    ]


def test_hourly_repeated_hour_of_a_fall_back_is_one_bucket() -> None:
    # Berlin 2024-10-27: 02:00-03:00 happens twice (CEST, then CET). Buckets are wall-clock
    # hours, so both real hours share the bucket "02:00"; its newest snapshot (02:40 CET)
    # stands for it.
    snaps = every(datetime(2024, 10, 26, 23, 40, tzinfo=UTC), timedelta(minutes=30), 6)
    now = datetime(2024, 10, 28, tzinfo=UTC)
    assert kept_by(snaps, {"keep_hourly": 10}, now, "Europe/Berlin", "keep_hourly") == [
        "s-20241027T0210 (newest of 2024-10-27 03:00)",  # 03:10 CET
        "s-20241027T0140 (newest of 2024-10-27 02:00)",  # 02:40 CET; 02:10/02:40 CEST, 02:10 CET
        "s-20241026T2340 (newest of 2024-10-27 01:00)",  # 01:40 CEST
    ]


def test_yearly_and_leap_day_max_age() -> None:
    snaps = local_daily("UTC", date(2023, 12, 30), 760, (12, 0))
    later = datetime(2026, 6, 1, tzinfo=UTC)
    assert kept_by(snaps, {"keep_yearly": 5}, later, "UTC", "keep_yearly") == [
        "s-20260127-1200 (newest of 2026)",
        "s-20251231-1200 (newest of 2025)",
        "s-20241231-1200 (newest of 2024)",
        "s-20231231-1200 (newest of 2023)",
    ]
    # max_age_days 365 across the leap day: 2024-03-01 12:00 is exactly 365 days before
    # 2025-03-01 12:00 (kept); 2024-02-29 12:00 is 366 days old (expires).
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    ages = {
        v.id: v.kept
        for v in evaluate(
            [Candidate(s, t) for s, t in snaps], to_rules({"max_age_days": 365}, "UTC"), now
        )
    }
    assert ages["s-20240301-1200"] and not ages["s-20240229-1200"]


def test_ties_on_equal_data_time_break_by_id_descending() -> None:
    t = datetime(2024, 5, 1, 12, tzinfo=UTC)
    snaps = [(sid, t) for sid in ("b", "d", "a", "c")]
    now = datetime(2024, 6, 1, tzinfo=UTC)
    assert kept_by(snaps, {"keep_last": 2}, now, "UTC", "keep_last") == [
        "d (#1 newest)",
        "c (#2 newest)",
    ]
    assert kept_by(snaps, {"keep_daily": 1}, now, "UTC", "keep_daily") == [
        "d (newest of 2024-05-01)"
    ]


def test_reason_names_every_rule_that_keeps_a_snapshot() -> None:
    snaps = local_daily("UTC", date(2024, 1, 1), 60, (12, 0))
    now = datetime(2024, 3, 1, tzinfo=UTC)
    rules = {
        "keep_last": 1,
        "keep_daily": 3,
        "keep_weekly": 2,
        "keep_monthly": 2,
        "keep_yearly": 1,
        "keep_within": timedelta(days=1),
        "max_age_days": 2,
    }
    verdicts = evaluate([Candidate(s, t) for s, t in snaps], to_rules(rules, "UTC"), now)
    newest = verdicts[0]
    assert newest.id == "s-20240229-1200"
    assert newest.keep_reasons == (
        "keep_last 1 (#1 newest)",
        "keep_daily 3 (newest of 2024-02-29)",
        "keep_weekly 2 (newest of 2024-W09)",
        "keep_monthly 2 (newest of 2024-02)",
        "keep_yearly 1 (newest of 2024)",
        "keep_within 1d of the newest (2024-02-29 12:00Z)",
        "age 12.0 h <= max_age_days 2",
    )
    january = next(v for v in verdicts if v.id == "s-20240131-1200")
    assert january.keep_reasons == ("keep_monthly 2 (newest of 2024-01)",)
    gone = next(v for v in verdicts if v.id == "s-20240130-1200")
    assert not gone.kept and "not the newest of a kept" in gone.expire_reason


# ------------------------------------------------------------------------- properties

BASE = datetime(2023, 1, 2, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu")
COUNTS = st.sampled_from([-1, 0, 1, 2, 3, 5, 8, 40])

snapshot_lists = st.lists(
    # a 20-minute grid over about 2.3 years: ties, shared buckets and DST nights all occur
    st.integers(min_value=0, max_value=60_000).map(lambda n: BASE + timedelta(minutes=20 * n)),
    min_size=1,
    max_size=30,
).map(lambda times: [(f"s{i:02d}", t) for i, t in enumerate(times)])
nows = st.integers(min_value=0, max_value=70_000).map(lambda n: BASE + timedelta(minutes=20 * n))
rule_values: dict[str, st.SearchStrategy[Any]] = {
    **{name: COUNTS for name in COUNT_RULES},
    "keep_within": st.integers(min_value=0, max_value=24 * 400).map(lambda h: timedelta(hours=h)),
    "max_age_days": st.integers(min_value=1, max_value=900),
}
rule_sets = st.dictionaries(
    st.sampled_from(sorted(rule_values)), st.none(), min_size=1, max_size=len(rule_values)
).flatmap(lambda keys: st.fixed_dictionaries({k: rule_values[k] for k in keys}))
PROPS = settings(max_examples=150, deadline=None)


def kept_in(
    snaps: list[tuple[str, datetime]], rules: dict[str, Any], now: datetime, zone: str
) -> set[str]:
    return {sid for sid, why in actual(snaps, rules, now, zone).items() if why}


@PROPS
@given(snapshot_lists, rule_sets, nows, st.sampled_from(ZONES))
def test_kept_is_the_union_of_what_each_rule_keeps_alone(
    snaps: list[tuple[str, datetime]], rules: dict[str, Any], now: datetime, zone: str
) -> None:
    union: set[str] = set()
    for name, value in rules.items():
        union |= kept_in(snaps, {name: value}, now, zone)
    assert kept_in(snaps, rules, now, zone) == union
    assert actual(snaps, rules, now, zone) == reference(snaps, rules, now, zone)


@PROPS
@given(snapshot_lists, rule_sets, nows, st.sampled_from(ZONES), st.data())
def test_adding_a_rule_never_removes_a_kept_snapshot(
    snaps: list[tuple[str, datetime]],
    rules: dict[str, Any],
    now: datetime,
    zone: str,
    data: st.DataObject,
) -> None:
    missing = sorted(set(rule_values) - set(rules))
    if not missing:
        return
    name = data.draw(st.sampled_from(missing))
    more = {**rules, name: data.draw(rule_values[name])}
    assert kept_in(snaps, rules, now, zone) <= kept_in(snaps, more, now, zone)


@PROPS
@given(snapshot_lists, rule_sets, nows, st.sampled_from(ZONES), st.data())
def test_raising_a_count_or_a_duration_never_removes_a_kept_snapshot(
    snaps: list[tuple[str, datetime]],
    rules: dict[str, Any],
    now: datetime,
    zone: str,
    data: st.DataObject,
) -> None:
    name = data.draw(st.sampled_from(sorted(rules)))
    value = rules[name]
    if name in COUNT_RULES:
        if value == -1:
            return
        raised: Any = data.draw(st.sampled_from([-1, value + 1, value + 7, value * 3 + 1]))
    elif name == "keep_within":
        raised = value + timedelta(hours=data.draw(st.integers(min_value=1, max_value=2000)))
    else:
        raised = value + data.draw(st.integers(min_value=1, max_value=400))
    assert kept_in(snaps, rules, now, zone) <= kept_in(snaps, {**rules, name: raised}, now, zone)


ACC = "111122223333"
OTHER = "444455556666"
HOLD_TAG = "legal-hold"


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=2, max_value=400),  # age in days of the data
            st.booleans(),  # held
            st.sets(st.sampled_from([ACC, OTHER, "amazon-redshift-support"])),  # shared with
        ),
        min_size=1,
        max_size=12,
        unique_by=lambda c: c[0],
    ),
    st.booleans(),
)
def test_a_held_snapshot_is_never_revoked_nor_deleted(
    cases: list[tuple[int, bool, set[str]]], revoke_unlisted: bool
) -> None:
    """Every rule would act on these snapshots: all are past max_age_days with keep_last 0,
    grants made long ago lapse under unshare_after, unlisted accounts are revoked under
    revoke_unlisted. The hold tag (a per-policy key) alone must stop each of those."""
    now = factories.NOW
    pol = factories.policy(
        hold_tag=HOLD_TAG,
        retention={"max_age_days": 1, "keep_last": 0},
        share={"accounts": [ACC], "unshare_after": "1d", "revoke_unlisted": revoke_unlisted},
        limits={"max_deletes_per_run": 10_000},
    )
    snaps, grants = [], []
    for age, held, accounts in cases:
        src = factories.automated("prod-a", factories.days_ago(age, now))
        extra = {HOLD_TAG: f"case {age}"} if held else {}
        snap = factories.owned_copy(pol.name, src, accounts, extra_tags=extra)
        snaps.append((snap, held))
        if ACC in accounts:
            grants.append(GrantRecord(snap.id, ACC, now - timedelta(days=age)))
    inv = factories.inventory([factories.cluster("prod-a")], [s for s, _ in snaps])
    result = plan([pol.core], inv, State(grants=tuple(grants)), now)
    acted = {(a.snapshot, a.kind) for a in result.actions}
    for snap, held in snaps:
        if held:
            assert not {k for s, k in acted if s == snap.id} & {"revoke", "delete"}, snap.id
            kept = [k for k in result.kept if k.snapshot == snap.id]
            assert kept and kept[0].held and f"{HOLD_TAG}=case" in kept[0].reason
        else:  # the same snapshot unheld: the rules do act on it
            assert (snap.id, "delete") in acted
            assert all((snap.id, "revoke") in acted for _ in snap.accounts)


def test_the_plan_names_every_rule_that_keeps_each_snapshot() -> None:
    """Kept.reason (what `plan` prints) is the verdict's every reason, in the policy's zone."""
    pol = factories.policy(
        create={"schedule": "0 3 * * *", "timezone": "America/New_York"},
        retention={"keep_last": 1, "keep_daily": 2, "keep_monthly": 2, "keep_within": "1d"},
        share={"accounts": []},
    )
    now = datetime(2024, 3, 11, 12, tzinfo=UTC)
    times = [datetime(2024, 3, d, 3, 30, tzinfo=UTC) for d in (11, 10, 9)]  # 23:30 NY, day before
    times.append(datetime(2024, 2, 20, 3, 30, tzinfo=UTC))
    snaps = [factories.owned_copy(pol.name, factories.automated("prod-a", t)) for t in times]
    result = plan(
        [pol.core], factories.inventory([factories.cluster("prod-a")], snaps), State(), now
    )
    reasons = {k.snapshot: k.reason for k in result.kept}
    assert reasons[snaps[0].id] == (
        "keep_last 1 (#1 newest); keep_daily 2 (newest of 2024-03-10); "
        "keep_monthly 2 (newest of 2024-03); keep_within 1d of the newest (2024-03-11 03:30Z)"
    )
    assert reasons[snaps[1].id] == (
        "keep_daily 2 (newest of 2024-03-09); keep_within 1d of the newest (2024-03-11 03:30Z)"
    )
    assert reasons[snaps[3].id] == "keep_monthly 2 (newest of 2024-02)"
    assert [a.snapshot for a in result.actions if a.kind == "delete"] == [snaps[2].id]


# ------------------------------------------ the planner's verdicts are evaluate's, exactly

# The planner does not call ``evaluate`` per snapshot: it sorts each cluster once and runs
# the rules (``retention.keep_reasons``) over its own records, and judges the sources of
# new copies by inserting them into that order. These check it against ``evaluate`` (itself
# checked against the reference above), word for word.

STATUSES = st.sampled_from(["available", "available", "available", "creating"])


def policy_for(rules: dict[str, Any], zone: str) -> Any:
    retention = {
        name: format_duration(value) if name == "keep_within" else value
        for name, value in rules.items()
    }
    return factories.policy(
        retention=retention,
        create={"schedule": "0 3 * * *", "timezone": zone},
        share={"accounts": []},
        limits={"max_deletes_per_run": 10_000},
    )


def copies_of(pol: str, times: list[tuple[str, datetime]], statuses: list[str]) -> list[Any]:
    """Owned copies (adopted from their tags) of sources that are gone, one per time."""
    return [
        factories.owned_copy(
            pol,
            Snapshot(f"rs:prod-a-gone-{sid}", "prod-a", "automated", "available", t),
            status=status,
        )
        for (sid, t), status in zip(times, statuses, strict=True)
    ]


@PROPS
@given(snapshot_lists, rule_sets, nows, st.sampled_from(ZONES), st.data())
def test_the_plan_keeps_and_deletes_exactly_what_evaluate_decides(
    snaps: list[tuple[str, datetime]],
    rules: dict[str, Any],
    now: datetime,
    zone: str,
    data: st.DataObject,
) -> None:
    assume(rules.get("keep_within") != timedelta(0))  # not a valid config value
    pol = policy_for(rules, zone)
    statuses = data.draw(st.lists(STATUSES, min_size=len(snaps), max_size=len(snaps)))
    made = copies_of(pol.name, snaps, statuses)
    result = plan([pol], factories.inventory([factories.cluster("prod-a")], made), State(), now)

    times = {s.id: t for s, (_, t) in zip(made, snaps, strict=True)}
    verdicts = evaluate(
        [Candidate(s.id, times[s.id]) for s in made if s.available], rules_of(pol), now
    )
    kept = {k.snapshot: k.reason for k in result.kept}
    deleted = {a.snapshot: a.reason for a in result.actions if a.kind == "delete"}
    for v in verdicts:
        if v.kept:
            assert kept[v.id] == "; ".join(v.keep_reasons)
            assert v.id not in deleted
        else:
            assert deleted[v.id] == v.expire_reason
            assert v.id not in kept
    for s in made:
        if not s.available:
            assert kept[s.id].startswith(f"status '{s.status}'") and s.id not in deleted
    assert len(result.kept) + len(deleted) == len(made)


@PROPS
@given(snapshot_lists, snapshot_lists, rule_sets, nows, st.sampled_from(ZONES), st.data())
def test_the_plan_copies_exactly_the_sources_evaluate_would_keep(
    owned: list[tuple[str, datetime]],
    sources: list[tuple[str, datetime]],
    rules: dict[str, Any],
    now: datetime,
    zone: str,
    data: st.DataObject,
) -> None:
    """A source is copied when retention over the owned snapshots (any status) and all the
    sources to copy would keep it; otherwise a note gives the expiry reason."""
    assume(rules.get("keep_within") != timedelta(0))
    pol = policy_for(rules, zone)
    statuses = data.draw(st.lists(STATUSES, min_size=len(owned), max_size=len(owned)))
    made = copies_of(pol.name, owned, statuses)
    autos = [
        Snapshot(f"rs:prod-a-new-{sid}", "prod-a", "automated", "available", t)
        for sid, t in sources
    ]
    inv = factories.inventory([factories.cluster("prod-a")], [*made, *autos])
    result = plan([pol], inv, State(), now)

    targets = {a.id: ids.copy_snapshot_id(pol.name, "prod-a", a.id) for a in autos}
    verdicts = {
        v.id: v
        for v in evaluate(
            [
                *(Candidate(s.id, t) for s, (_, t) in zip(made, owned, strict=True)),
                *(Candidate(targets[a.id], a.create_time) for a in autos),
            ],
            rules_of(pol),
            now,
            only=set(targets.values()),
        )
    }
    copied = {a.source: a.snapshot for a in result.actions if a.kind == "copy"}
    notes = {n.snapshot: n.message for n in result.notes if n.message.startswith("not copied")}
    for a in autos:
        verdict = verdicts[targets[a.id]]
        if verdict.kept:
            assert copied[a.id] == targets[a.id] and a.id not in notes
        else:
            assert a.id not in copied
            assert notes[a.id] == (
                f"not copied: {a.id} is already past retention ({verdict.expire_reason})"
            )


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.integers(min_value=0, max_value=900 * 86_400 * 10**6),  # any age, to the µs
        st.integers(min_value=0, max_value=2 * 900).map(lambda h: h * 43_200 * 10**6),  # d/2
    ).map(lambda us: timedelta(microseconds=us))
)
def test_max_age_reason_texts_are_age_text_s(age: timedelta) -> None:
    """keep_reasons builds the max_age text inline (the one text of most kept snapshots);
    it must read as ``_age_text`` writes it, half days (ties) included."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    reasons: list[list[str] | None] = [[]]
    keep_reasons([now - age], reasons, range(1), RetentionRules(max_age=timedelta(days=900)), now)
    assert reasons == [[f"age {_age_text(age)} <= max_age_days 900"]]
