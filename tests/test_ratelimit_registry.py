"""Rate limiters per (account, region): two targets naming the same account share one."""

from __future__ import annotations

from snapworker.adapters.aws.ratelimit import LimiterRegistry, limiter_for


def test_one_limiter_per_account_and_region() -> None:
    reg = LimiterRegistry()
    a_east = reg.limiter_for("111111111111", "us-east-1", 5.0)
    assert reg.limiter_for("111111111111", "us-east-1", 99.0) is a_east  # first rate wins
    assert a_east.max_rate == 5.0
    assert reg.limiter_for("111111111111", "eu-west-1", 5.0) is not a_east
    assert reg.limiter_for("222222222222", "us-east-1", 5.0) is not a_east
    assert list(reg.stats()) == [
        ("111111111111", "eu-west-1"),
        ("111111111111", "us-east-1"),
        ("222222222222", "us-east-1"),
    ]


def test_shared_budget_and_aimd_state() -> None:
    """Two pairs in one account and region draw on one budget: a throttle seen by one slows
    the other; another account's limiter is untouched."""
    slept: list[float] = []
    now = [0.0]
    reg = LimiterRegistry()
    first = reg.limiter_for(
        "111111111111", "us-east-1", 2.0, sleep=slept.append, clock=lambda: now[0]
    )
    second = reg.limiter_for(
        "111111111111", "us-east-1", 2.0, sleep=slept.append, clock=lambda: now[0]
    )
    other = reg.limiter_for(
        "222222222222", "us-east-1", 2.0, sleep=slept.append, clock=lambda: now[0]
    )
    first.acquire()
    second.acquire()  # the second call of the shared budget waits half a second
    assert slept == [0.5]
    second.throttled()
    assert first.rate == 1.0 and other.rate == 2.0
    other.acquire()
    assert slept == [0.5]  # another account's budget is its own


def test_module_registry_is_process_wide() -> None:
    assert limiter_for("999999999999", "ap-south-1", 3.0) is limiter_for(
        "999999999999", "ap-south-1", 3.0
    )
