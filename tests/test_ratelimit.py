"""The shared AIMD token bucket (snapworker.adapters.aws.ratelimit), on a fake clock: no real
sleeps."""

from __future__ import annotations

import threading
from itertools import pairwise

import pytest

from snapworker.adapters.aws.ratelimit import RateLimiter


class FakeTime:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(ft: FakeTime, rate: float, **kw: float) -> RateLimiter:
    return RateLimiter(rate, clock=ft.clock, sleep=ft.sleep, **kw)


def call_times(rl: RateLimiter, ft: FakeTime, n: int) -> list[float]:
    out = []
    for _ in range(n):
        rl.acquire()
        out.append(ft.now)
    return out


def test_calls_are_spaced_one_interval_apart():
    ft = FakeTime()
    times = call_times(limiter(ft, 5), ft, 11)
    assert times[0] == 0.0
    assert times[-1] == pytest.approx(2.0)  # 10 intervals of 0.2 s
    gaps = [b - a for a, b in pairwise(times)]
    assert all(g == pytest.approx(0.2) for g in gaps)


def test_burst_goes_back_to_back_then_the_rate_applies():
    ft = FakeTime()
    times = call_times(limiter(ft, 2, burst=3), ft, 5)
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])


def test_idle_time_refills_the_bucket_but_not_beyond_the_burst():
    ft = FakeTime()
    rl = limiter(ft, 1, burst=2)
    call_times(rl, ft, 2)
    ft.now += 100  # a long idle spell
    start = ft.now
    times = call_times(rl, ft, 4)
    assert [t - start for t in times] == pytest.approx([0.0, 0.0, 1.0, 2.0])


def test_a_call_within_the_budget_does_not_sleep():
    ft = FakeTime()
    rl = limiter(ft, 1)
    assert rl.acquire() == 0.0
    ft.now += 5
    assert rl.acquire() == 0.0
    assert ft.sleeps == []


def test_throttle_halves_the_rate_and_pushes_the_next_slot_out():
    ft = FakeTime()
    rl = limiter(ft, 4)
    rl.acquire()  # t=0, next slot 0.25
    rl.throttled()
    assert rl.rate == 2
    # The slot after the throttle is one new interval (0.5 s) past the old next slot.
    times = call_times(rl, ft, 2)
    assert times == pytest.approx([0.75, 1.25])


def test_throttles_never_go_below_the_floor():
    ft = FakeTime()
    rl = limiter(ft, 8, min_rate=1)
    for _ in range(10):
        rl.throttled()
    assert rl.rate == 1
    assert rl.stats().throttles == 10


def test_recovery_is_additive_and_capped_at_the_configured_rate():
    ft = FakeTime()
    rl = limiter(ft, 10, increase=1)
    rl.throttled()
    assert rl.rate == 5
    rates = []
    for _ in range(7):
        rl.succeeded()
        rates.append(rl.rate)
    assert rates == [6, 7, 8, 9, 10, 10, 10]


def test_stats_count_calls_and_waiting():
    ft = FakeTime()
    rl = limiter(ft, 2)
    call_times(rl, ft, 3)
    st = rl.stats()
    assert st.acquired == 3
    assert st.waited_seconds == pytest.approx(1.0)  # 0 + 0.5 + 0.5
    assert st.rate == 2


def test_threads_share_one_budget():
    """Each thread has its own (virtual) time; the slots handed out never overlap."""
    local = threading.local()

    def clock() -> float:
        return getattr(local, "t", 0.0)

    def sleep(d: float) -> None:
        local.t = clock() + d

    rl = RateLimiter(10, clock=clock, sleep=sleep)
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            rl.acquire()
            with lock:
                times.append(clock())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times.sort()
    assert len(times) == 100
    assert times[-1] == pytest.approx(9.9)  # 99 intervals of 0.1 s: the minimum
    assert all(b - a == pytest.approx(0.1) for a, b in pairwise(times))


@pytest.mark.parametrize(
    "kw", [{"rate": 0}, {"rate": -1}, {"rate": 1, "burst": 0.5}, {"rate": 1, "min_rate": 2}]
)
def test_bad_parameters_are_refused(kw):
    with pytest.raises(ValueError):
        RateLimiter(**kw)
