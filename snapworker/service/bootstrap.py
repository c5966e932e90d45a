"""Wires the adapters to the core: config -> (boto3 gateway, state store, clock, logger).

Tests call :func:`bootstrap` with their own client, clock or sleep; the CLI with none. Only
the commands that work on AWS and the state DB import this module (the CLI imports it inside
them), so its imports cost the others nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from snapworker.adapters.aws.ratelimit import RateLimiter
from snapworker.adapters.aws.redshift import CallStats, RedshiftGateway, instrument, make_client
from snapworker.adapters.store.repository import StateStore, open_store
from snapworker.config import Config
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
