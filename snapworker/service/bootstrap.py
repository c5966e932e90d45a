"""Wires the adapters to the core: config -> (boto3 gateway, state store, clock, logger).

Tests call :func:`bootstrap` with their own client, clock or sleep; the CLI with none. Only
the commands that work on AWS and the state DB import this module (the CLI imports it inside
them), so its imports cost the others nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from snapworker.adapters.aws.client import region_of
from snapworker.adapters.aws.errors import NO_REGION, AwsSetupError
from snapworker.adapters.aws.organizations import discover_pairs, list_accounts
from snapworker.adapters.aws.ratelimit import RateLimiter, limiter_for
from snapworker.adapters.aws.redshift import CallStats, RedshiftGateway, instrument, make_client
from snapworker.adapters.aws.sessions import Sessions
from snapworker.adapters.store.repository import ScopedStore, StateStore, open_store
from snapworker.config import Config
from snapworker.core.targets import Pair
from snapworker.logs import get_logger
from snapworker.service.tick import Runtime


def system_clock() -> datetime:
    return datetime.now(UTC)


def clock_from_env() -> Callable[[], datetime]:
    """``SNAPWORKER_FAKE_NOW`` (ISO 8601) shifts the clock, for end-to-end tests that must
    move time forward across processes (the offset is kept, so time still passes)."""
    fake = os.environ.get("SNAPWORKER_FAKE_NOW")
    if not fake:
        return system_clock
    target = datetime.fromisoformat(fake.replace("Z", "+00:00"))
    if target.tzinfo is None:
        target = target.replace(tzinfo=UTC)
    offset = target - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


def bootstrap(
    config: Config,
    *,
    client: Any = None,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    store: StateStore | None = None,
    create: bool = True,
) -> Runtime[StateStore]:
    """The runtime of ``config``: the state DB (``store``, else opened from ``state_url``;
    ``create=False``: refused when there is none yet, see ``open_store``), a gateway over
    ``client`` (else a boto3 client from ``config.aws``), the clock, the log."""
    log = get_logger()
    if store is None:
        store = open_store(config.state_url, create=create)
    stats = CallStats()
    if client is None:
        client = make_client(config.aws, stats)
    else:
        instrument(client, stats)

    def on_retry(operation: str, err: Exception, attempt: int) -> None:
        log.warning("retrying", operation=operation, attempt=attempt, error=str(err))

    # One budget of mutating calls for every worker thread (aws.max_calls_per_second).
    limiter = RateLimiter(config.aws.max_calls_per_second, sleep=sleep)
    gateway = RedshiftGateway(
        client, config.retry, stats, sleep=sleep, on_retry=on_retry, limiter=limiter
    )
    return Runtime(
        config=config,
        gateway=gateway,
        store=store,
        clock=clock or clock_from_env(),
        log=log,
    )


class FleetStats:
    """The API call counts of every pair, each in its own ``CallStats`` (a pair's run records
    its own calls), summed for the daemon's metrics (the interface ``Metrics.use_stats``
    reads: ``calls``, ``retries``, ``_lock``)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # Metrics holds it while reading the sums
        self._pairs: dict[str, CallStats] = {}

    def pair(self, key: str) -> CallStats:
        with self._lock:
            return self._pairs.setdefault(key, CallStats())

    def _sum(self, what: str) -> Counter[str]:
        total: Counter[str] = Counter()
        with self._lock:
            stats = list(self._pairs.values())
        for s in stats:
            with s._lock:
                total.update(getattr(s, what))
        return total

    @property
    def calls(self) -> Counter[str]:
        return self._sum("calls")

    @property
    def retries(self) -> Counter[str]:
        return self._sum("retries")

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.calls.items()))


class FleetTargets:
    """The adapters of a fleet (``snapworker.service.fleet.Targets``): the pairs of the
    config (Organizations' accounts discovered once per instance), and for each pair a
    gateway over its own client (role assumed when first needed, botocore refreshing the
    credentials), its own call counts, the rate limiter of its (account, region), and the
    state DB's slice of its account and region."""

    def __init__(
        self,
        config: Config,
        store: StateStore,
        clock: Callable[[], datetime],
        pace: Callable[[float], None] = time.sleep,
        backoff: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.pace = pace
        self.backoff = backoff
        self.log = get_logger()
        self.stats = FleetStats()
        """Every pair's API calls (the daemon's metrics read the sum)."""
        self.sessions = Sessions(config.aws, CallStats())
        self._pairs: list[Pair] | None = None
        self._lock = threading.Lock()

    def pairs(self) -> list[Pair]:
        with self._lock:
            if self._pairs is None:
                pairs = self.config.static_pairs(region_of(self.config.aws))
                if pairs and not pairs[0].region:
                    raise AwsSetupError(NO_REGION)
                org = self.config.organization
                if org is not None:
                    listed = list_accounts(
                        self.sessions.base_session(), endpoint_url=self.config.aws.endpoint_url
                    )
                    pairs += discover_pairs(
                        listed, org, covered={p.account for p in pairs if p.account}
                    )
                self._pairs = pairs
            return list(self._pairs)

    def account_of(self, pair: Pair) -> str:
        return pair.account or self.sessions.caller_account(pair)

    def claim_unscoped(self, pair: Pair, account: str) -> int:
        return self.store.claim_unscoped(account, pair.region, pair.target)

    def record_failure(self, pair: Pair, error: str, mode: str, batch: str) -> None:
        account = pair.account or self.sessions.known_account()
        if account is None:  # own credentials, GetCallerIdentity failed: no pair to file it in
            self.log.warning("failed pair not recorded: its account is unknown", target=pair.key)
            return
        scoped = self.store.scoped(pair.target, account, pair.region, batch)
        at = self.clock()
        run_id = scoped.begin_run(mode, os.getpid(), at)
        scoped.finish_run(run_id, "failed", 0, 0, {}, error, at)

    def runtime_for(
        self, pair: Pair, account: str, batch: str | None = None, with_legacy: bool = False
    ) -> Runtime[ScopedStore]:
        stats = self.stats.pair(pair.key)
        client = self.sessions.client(pair, "redshift", stats)
        log = self.log.bind(target=pair.target, region=pair.region)

        def on_retry(operation: str, err: Exception, attempt: int) -> None:
            log.warning("retrying", operation=operation, attempt=attempt, error=str(err))

        limiter = limiter_for(
            account, pair.region, self.config.aws.max_calls_per_second, sleep=self.pace
        )
        gateway = RedshiftGateway(
            client, self.config.retry, stats, sleep=self.backoff, on_retry=on_retry, limiter=limiter
        )
        return Runtime(
            config=self.config,
            gateway=gateway,
            store=self.store.scoped(
                pair.target, account, pair.region, batch, with_legacy=with_legacy
            ),
            clock=self.clock,
            log=log,
        )


def fleet(
    config: Config,
    *,
    clock: Callable[[], datetime] | None = None,
    pace: Callable[[float], None] | None = None,
    backoff: Callable[[float], None] | None = None,
    store: StateStore | None = None,
    create: bool = True,
) -> FleetTargets:
    """The fleet's adapters over the state DB (``store``, else opened from ``state_url``).
    ``pace``: the rate limiters' wait, ``backoff``: the retry backoff's (default:
    time.sleep; the daemon and ``run`` cut them short on a stop)."""
    if store is None:
        store = open_store(config.state_url, create=create)
    return FleetTargets(
        config, store, clock or clock_from_env(), pace or time.sleep, backoff or time.sleep
    )
