"""Snapshot identifiers: AWS's rules, determinism, and no collisions."""

from __future__ import annotations

import hashlib
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapworker.core.ids import (
    POLICY_NAME_RE,
    copy_snapshot_id,
    create_snapshot_id,
    is_valid_snapshot_id,
    policy_name_problem,
    sanitise,
    short_hash,
)

FIRE = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)

# --- strategies ---------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits


@st.composite
def policy_names(draw: st.DrawFn) -> str:
    """Every valid policy name: a letter, then (optional hyphen + letter/digit)*, <= 63."""
    first = draw(st.sampled_from(string.ascii_letters))
    groups = draw(
        st.lists(
            st.tuples(st.booleans(), st.sampled_from(_ALNUM)).map(
                lambda t: ("-" if t[0] else "") + t[1]
            ),
            max_size=40,
        )
    )
    name = first
    for group in groups:
        if len(name) + len(group) > 63:
            break
        name += group
    return name


@st.composite
def cluster_ids(draw: st.DrawFn) -> str:
    """Realistic Redshift cluster identifiers (lowercase; 1..63; letter first; no '--')."""
    first = draw(st.sampled_from(string.ascii_lowercase))
    rest = draw(
        st.lists(st.sampled_from(string.ascii_lowercase + string.digits + "-"), max_size=62)
    )
    text = first + "".join(rest)
    while "--" in text:
        text = text.replace("--", "-")
    return text.rstrip("-") or first


fire_times = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
any_text = st.text(max_size=400)  # arbitrary, hostile input: unicode, colons, NULs, huge


# --- is_valid_snapshot_id -----------------------------------------------------------------


@pytest.mark.parametrize(
    "sid",
    ["a", "A", "a1", "sw-prod-a-1", "x" * 255, "rs-prod-2026-01-01"],
)
def test_valid_ids(sid: str) -> None:
    assert is_valid_snapshot_id(sid)


@pytest.mark.parametrize(
    "sid",
    [
        "",
        "1abc",
        "-abc",
        "abc-",
        "a--b",
        "a_b",
        "a b",
        "rs:prod-a-2026",
        "x" * 256,
        "abc\n",
        "é",
        None,
        123,
    ],
)
def test_invalid_ids(sid: object) -> None:
    assert not is_valid_snapshot_id(sid)


# --- policy names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "prod-nightly", "P1", "a-b-c", "a" * 63])
def test_valid_policy_names(name: str) -> None:
    assert POLICY_NAME_RE.fullmatch(name)
    assert POLICY_NAME_RE.match(name)
    assert policy_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("1abc", "start with a letter"),
        ("-ab", "start with a letter"),
        ("a--b", "consecutive hyphens"),
        ("ab-", "end with a hyphen"),
        ("a_b", "letters, digits and hyphens"),
        ("a b", "letters, digits and hyphens"),
        ("prod\n", "letters, digits and hyphens"),
        ("é", "letters, digits and hyphens"),
        ("a" * 64, "at most 63"),
    ],
)
def test_invalid_policy_names(name: str, why: str) -> None:
    assert POLICY_NAME_RE.match(name) is None
    problem = policy_name_problem(name)
    assert problem is not None and why in problem


@given(policy_names())
def test_policy_name_strategy_matches_the_regex(name: str) -> None:
    assert POLICY_NAME_RE.fullmatch(name)
    assert policy_name_problem(name) is None


# --- short_hash and sanitise --------------------------------------------------------------


def test_short_hash_is_sha256_over_nul_joined_parts() -> None:
    expected = hashlib.sha256(b"a\x00b\x00c").hexdigest()[:8]
    assert short_hash("a", "b", "c") == expected
    assert len(expected) == 8 and set(expected) <= set("0123456789abcdef")
    assert short_hash("a-b", "c") != short_hash("a", "b-c")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rs:prod-a-2026-11-27-03-00-00", "rs-prod-a-2026-11-27-03-00-00"),
        ("RS:Prod__A", "rs-prod-a"),
        ("--a--b--", "a-b"),
        (":::", ""),
        ("", ""),
    ],
)
def test_sanitise(text: str, expected: str) -> None:
    assert sanitise(text) == expected


# --- the generated ids --------------------------------------------------------------------


def test_create_id_layout() -> None:
    sid = create_snapshot_id("prod-nightly", "prod-a", FIRE)
    digest = short_hash("prod-nightly", "prod-a", "create", FIRE.isoformat())
    assert sid == f"sw-prod-nightly-prod-a-20261127-0300-{digest}"
    assert is_valid_snapshot_id(sid)


def test_create_id_uses_utc_and_is_lowercase() -> None:
    paris = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 27, 4, 0, tzinfo=paris)  # the same instant as FIRE
    assert create_snapshot_id("Prod", "prod-a", local) == create_snapshot_id("Prod", "prod-a", FIRE)
    assert create_snapshot_id("Prod", "prod-a", FIRE).startswith("sw-prod-prod-a-20261127-0300-")


def test_create_id_refuses_naive_times_and_bad_policies() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        create_snapshot_id("prod", "prod-a", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="invalid policy name"):
        create_snapshot_id("a--b", "prod-a", FIRE)
    with pytest.raises(ValueError, match="invalid policy name"):
        copy_snapshot_id("1abc", "prod-a", "rs:prod-a-2026")


def test_copy_id_layout() -> None:
    source = "rs:prod-a-2026-11-27-03-00-00"
    sid = copy_snapshot_id("prod-nightly", "prod-a", source)
    digest = short_hash("prod-nightly", "prod-a", "copy", source)
    assert sid == f"sw-prod-nightly-rs-prod-a-2026-11-27-03-00-00-{digest}"
    assert is_valid_snapshot_id(sid)


def test_copy_id_of_an_unreadable_source_keeps_prefix_and_hash() -> None:
    sid = copy_snapshot_id("p", "c", ":::")
    assert sid == f"sw-p-{short_hash('p', 'c', 'copy', ':::')}"


def test_long_ids_are_cut_in_the_middle() -> None:
    policy = "p" + "-x" * 31  # 63 characters
    source = "rs:" + "a-" * 200 + "end"
    sid = copy_snapshot_id(policy, "c", source)
    assert len(sid) <= 255 and is_valid_snapshot_id(sid)
    assert sid.startswith(f"sw-{policy}-rs-a-a-")
    assert sid.endswith("-" + short_hash(policy, "c", "copy", source))
    long_cluster = "c" * 300
    sid = create_snapshot_id(policy, long_cluster, FIRE)
    assert len(sid) <= 255 and is_valid_snapshot_id(sid)
    assert sid.endswith(
        "-20261127-0300-" + short_hash(policy, long_cluster, "create", FIRE.isoformat())
    )


def test_ids_are_deterministic() -> None:
    assert create_snapshot_id("p", "c", FIRE) == create_snapshot_id("p", "c", FIRE)
    assert copy_snapshot_id("p", "c", "rs:c-1") == copy_snapshot_id("p", "c", "rs:c-1")


def test_ambiguous_readable_parts_do_not_collide() -> None:
    assert create_snapshot_id("a-b", "c", FIRE) != create_snapshot_id("a", "b-c", FIRE)
    assert copy_snapshot_id("a-b", "c", "rs:x") != copy_snapshot_id("a", "b-c", "rs:x")
    # Sources that sanitise alike (':' and '-') stay apart.
    assert copy_snapshot_id("p", "c", "rs:c-1") != copy_snapshot_id("p", "c", "rs-c-1")
    # The same source copied for two clusters' policies stays apart too.
    assert copy_snapshot_id("p", "c1", "rs:x") != copy_snapshot_id("p", "c2", "rs:x")


@given(policy_names(), any_text, fire_times)
def test_create_ids_are_always_valid(policy: str, cluster: str, fire: datetime) -> None:
    sid = create_snapshot_id(policy, cluster, fire)
    assert is_valid_snapshot_id(sid), sid
    assert sid == sid.lower()
    assert sid.startswith(f"sw-{policy.lower()}-")


@given(policy_names(), any_text, any_text)
def test_copy_ids_are_always_valid(policy: str, cluster: str, source: str) -> None:
    sid = copy_snapshot_id(policy, cluster, source)
    assert is_valid_snapshot_id(sid), sid
    assert sid == sid.lower()
    assert sid.startswith(f"sw-{policy.lower()}-")
    assert sid.endswith(short_hash(policy, cluster, "copy", source))


@given(
    st.tuples(policy_names(), cluster_ids(), fire_times),
    st.tuples(policy_names(), cluster_ids(), fire_times),
)
def test_different_creates_get_different_ids(
    a: tuple[str, str, datetime], b: tuple[str, str, datetime]
) -> None:
    # Equal fire times are equal instants, whatever their time zone.
    assert (create_snapshot_id(*a) == create_snapshot_id(*b)) == (a == b)


source_ids = st.builds(
    lambda c, t: f"rs:{c}-{t:%Y-%m-%d-%H-%M-%S}",
    cluster_ids(),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
) | st.text(alphabet=string.ascii_letters + string.digits + ":-_.", min_size=1, max_size=300)


@given(
    st.tuples(policy_names(), cluster_ids(), source_ids),
    st.tuples(policy_names(), cluster_ids(), source_ids),
)
def test_different_copies_get_different_ids(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    assert (copy_snapshot_id(*a) == copy_snapshot_id(*b)) == (a == b)


@given(policy_names(), cluster_ids(), fire_times, source_ids)
def test_creates_and_copies_never_collide(
    policy: str, cluster: str, fire: datetime, source: str
) -> None:
    assert create_snapshot_id(policy, cluster, fire) != copy_snapshot_id(policy, cluster, source)


def test_ambiguous_combinations_exhaustively_distinct() -> None:
    policies = ["a", "a-b", "a-b-c", "ab"]
    clusters = ["c", "b-c", "bc", "b", "c-1"]
    fires = [FIRE, FIRE + timedelta(minutes=1), FIRE + timedelta(seconds=1)]
    sources = ["rs:c-1", "rs-c-1", "rs:b-c-1", "c-1"]
    creates = {
        (p, c, f): create_snapshot_id(p, c, f) for p in policies for c in clusters for f in fires
    }
    copies = {
        (p, c, s): copy_snapshot_id(p, c, s) for p in policies for c in clusters for s in sources
    }
    every = list(creates.values()) + list(copies.values())
    assert len(set(every)) == len(every)
