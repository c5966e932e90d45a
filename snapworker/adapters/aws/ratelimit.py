"""Client-side rate limiting of AWS mutations: a token bucket shared by every worker thread,
whose rate adapts to throttling (AIMD: halve on a throttle, add back a little per success).

Why: mutations run on a small thread pool (one thread per cluster at a time, see
``snapworker.service.executor``), and Redshift's API limits are per account and region, not
per thread.
Without a shared budget, four threads quadruple the request rate and AWS answers with
``Throttling``, which costs retries and time. With it, a thousand copies go out as fast as
the budget allows, and when AWS throttles anyway (another tool in the account spends the same
budget) the worker halves its rate at once and creeps back up, as TCP does.

The bucket is a GCRA ("virtual scheduling"): each caller reserves the next free slot under a
lock, then sleeps *outside* the lock until its slot, so threads queue in order without
spinning and a caller never waits for another's sleep. ``burst`` calls may go back to back
after an idle spell; after that, one call per ``1/rate`` seconds.

The clock and the sleep are injected, so tests drive it without real time. The clock may be
per-thread (a test's virtual time): every decision uses the calling thread's ``clock()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LimiterStats:
    """What the limiter did: calls admitted, time spent waiting, throttles, current rate."""

    acquired: int
    waited_seconds: float
    throttles: int
    rate: float


class RateLimiter:
    """A thread-safe, adaptive token bucket (see the module docstring).

    ``rate``: calls per second at most (also the ceiling the rate recovers to);
    ``burst``: calls allowed back to back after an idle spell (>= 1);
    ``min_rate``: the floor halving never goes below (default a tenth of ``rate``: a run
    slows down under throttling but never to a crawl; tenacity's backoff does the rest);
    ``increase``: calls per second added back per successful call (default ``rate / 20``:
    from half the rate back to full in about ten successes per unit of rate).
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        min_rate: float | None = None,
        increase: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.max_rate = float(rate)
        self.min_rate = float(min_rate) if min_rate is not None else self.max_rate / 10
        if not 0 < self.min_rate <= self.max_rate:
            raise ValueError(f"min_rate must be in (0, rate], got {min_rate}")
        self.increase = float(increase) if increase is not None else self.max_rate / 20
        self.burst = float(burst)
        self._rate = self.max_rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat: float | None = None  # theoretical arrival time of the next call
        self._acquired = 0
        self._waited = 0.0
        self._throttles = 0

    @property
    def rate(self) -> float:
        with self._lock:
            return self._rate

    def reserve(self) -> float:
        """Reserve the next slot; returns the time (on ``clock``) at which the caller may go."""
        return self._reserve()[0]

    def _reserve(self) -> tuple[float, float]:
        with self._lock:
            now = self._clock()
            interval = 1.0 / self._rate
            tat = now if self._tat is None else max(self._tat, now)
            start = max(now, tat - (self.burst - 1.0) * interval)
            self._tat = tat + interval
            self._acquired += 1
            self._waited += start - now
            return start, now

    def acquire(self) -> float:
        """Wait for a slot; returns the seconds waited (0 when within the budget)."""
        start, now = self._reserve()
        wait = start - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def throttled(self) -> None:
        """AWS throttled a call: halve the rate (not below ``min_rate``), and push the next
        free slot one new interval out, so that the calls already queued back off too."""
        with self._lock:
            self._throttles += 1
            self._rate = max(self.min_rate, self._rate / 2)
            now = self._clock()
            base = now if self._tat is None else max(self._tat, now)
            self._tat = base + 1.0 / self._rate

    def succeeded(self) -> None:
        """A call went through: add ``increase`` back to the rate (up to ``rate``)."""
        with self._lock:
            if self._rate < self.max_rate:
                self._rate = min(self.max_rate, self._rate + self.increase)

    def stats(self) -> LimiterStats:
        with self._lock:
            return LimiterStats(self._acquired, self._waited, self._throttles, self._rate)


class LimiterRegistry:
    """One :class:`RateLimiter` per (account, region): AWS's API limits are per account and
    region, so two targets that name the same account (two roles into it, or a role and the
    worker's own credentials) share one budget and one AIMD state in each region."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limiters: dict[tuple[str, str], RateLimiter] = {}

    def limiter_for(
        self,
        account: str,
        region: str,
        rate: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> RateLimiter:
        """The limiter of (``account``, ``region``), made on first use with ``rate``,
        ``sleep`` and ``clock`` (later calls get the same one, whatever they pass)."""
        key = (account, region)
        with self._lock:
            found = self._limiters.get(key)
            if found is None:
                found = RateLimiter(rate, sleep=sleep, clock=clock)
                self._limiters[key] = found
            return found

    def stats(self) -> dict[tuple[str, str], LimiterStats]:
        """Each limiter's stats, by (account, region)."""
        with self._lock:
            limiters = dict(self._limiters)
        return {key: limiter.stats() for key, limiter in sorted(limiters.items())}

    def clear(self) -> None:
        with self._lock:
            self._limiters.clear()


_REGISTRY = LimiterRegistry()


def limiter_for(
    account: str,
    region: str,
    rate: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RateLimiter:
    """The process's limiter of (``account``, ``region``) (see :class:`LimiterRegistry`):
    every pair of the fleet in one account and region shares it."""
    return _REGISTRY.limiter_for(account, region, rate, sleep, clock)


__all__ = ["LimiterRegistry", "LimiterStats", "RateLimiter", "limiter_for"]
