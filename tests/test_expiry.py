"""``core.expiry``: the first instant retention would stop keeping a snapshot, given no new
one, found by re-running retention itself (never a second copy of its rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from snapworker.core.expiry import expiry, rule_names
from snapworker.core.retention import Candidate, RetentionRules, evaluate

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def cands(*ages_days: float) -> list[Candidate]:
    return [Candidate(f"s{i}", NOW - timedelta(days=a)) for i, a in enumerate(ages_days)]


def kept_at(sid: str, cs: list[Candidate], rules: RetentionRules, t: datetime) -> bool:
    return next(v for v in evaluate(cs, rules, t) if v.id == sid).kept


def test_max_age_alone_expires_just_after_data_time_plus_max_age() -> None:
    cs = cands(1, 10, 30)
    rules = RetentionRules(max_age=timedelta(days=35))
    e = expiry("s1", cs, rules, NOW)
    assert e.at == cs[1].data_time + timedelta(days=35) + US
    assert rule_names(e.kept_by) == ["max_age_days"]
    assert e.at is not None
    assert kept_at("s1", cs, rules, e.at - US) and not kept_at("s1", cs, rules, e.at)


def test_keep_last_keeps_for_good_max_age_until_then() -> None:
    cs = cands(1, 2, 3, 20, 30)
    rules = RetentionRules(max_age=timedelta(days=35), keep_last=3)
    newest = expiry("s0", cs, rules, NOW)
    assert newest.at is None and rule_names(newest.kept_by) == ["keep_last"]
    fourth = expiry("s3", cs, rules, NOW)
    assert fourth.at == cs[3].data_time + timedelta(days=35) + US


def test_not_kept_now_expires_now_and_no_rule_never() -> None:
    cs = cands(1, 50)
    assert expiry("s1", cs, RetentionRules(max_age=timedelta(days=35)), NOW).at == NOW
    forever = expiry("s1", cs, RetentionRules(), NOW)
    assert forever.at is None and rule_names(forever.kept_by) == ["no rule"]


def test_keep_within_counts_from_the_newest_so_a_snapshot_from_the_future_moves_it() -> None:
    """A snapshot dated in the future (clock skew) becomes the newest when the clock reaches
    it; keep_within then counts from it, and the old one falls out at that instant."""
    cs = [*cands(5), Candidate("late", NOW + timedelta(days=10))]
    rules = RetentionRules(keep_within=timedelta(days=7))
    e = expiry("s0", cs, rules, NOW)
    assert e.at == NOW + timedelta(days=10)
    assert rule_names(e.kept_by) == ["keep_within"]


@settings(max_examples=150, deadline=None)
@given(
    ages=st.lists(st.floats(min_value=-5, max_value=60), min_size=1, max_size=8),
    max_age=st.one_of(st.none(), st.integers(min_value=1, max_value=40)),
    keep_last=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    keep_daily=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    within=st.one_of(st.none(), st.integers(min_value=1, max_value=20)),
)
def test_the_expiry_is_the_first_instant_it_is_not_kept(
    ages: list[float],
    max_age: int | None,
    keep_last: int | None,
    keep_daily: int | None,
    within: int | None,
) -> None:
    """Against a walk over a fine grid of instants: kept just before, not kept at; and
    never kept again after (what the binary search relies on)."""
    cs = cands(*ages)
    rules = RetentionRules(
        max_age=timedelta(days=max_age) if max_age else None,
        keep_last=keep_last,
        keep_daily=keep_daily,
        keep_within=timedelta(days=within) if within else None,
    )
    horizon = NOW + timedelta(days=120)
    for c in cs:
        e = expiry(c.id, cs, rules, NOW)
        grid = [NOW + timedelta(hours=h) for h in range(0, 120 * 24, 7)]
        kept = [kept_at(c.id, cs, rules, t) for t in grid]
        assert kept == sorted(kept, reverse=True), "once expired, never kept again"
        if e.at is None:
            assert all(kept) and kept_at(c.id, cs, rules, horizon)
            continue
        assert not kept_at(c.id, cs, rules, e.at)
        if e.at > NOW:
            assert kept_at(c.id, cs, rules, e.at - US)
