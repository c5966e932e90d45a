"""The boto3 Redshift client: region and credentials from the config, then the standard AWS
chain; botocore's own retries configured; calls and HTTP attempts counted.

How a call is retried (botocore for one HTTP exchange, tenacity for what outlasts it) is in
:func:`retrying_call`; see ``adapters/aws/redshift.py``'s docstring for the layers.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from snapworker.adapters.aws.errors import NO_REGION, AwsError, AwsSetupError, translate

if TYPE_CHECKING:
    from snapworker.config import AwsConfig, RetryConfig

T = TypeVar("T")


@dataclass
class CallStats:
    """API calls by operation (one per logical call) and HTTP attempts (retries included)."""

    calls: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _label: threading.local = field(default_factory=threading.local, repr=False)

    def count(self, counter: Counter[str], op: str) -> None:
        label = getattr(self._label, "value", None) if counter is self.calls else None
        with self._lock:
            counter[f"{op} {label}" if label else op] += 1

    @contextmanager
    def labelled(self, label: str) -> Iterator[None]:
        """Count the calls made inside (this thread) as ``"<operation> <label>"``: the
        safety re-read before a delete is a DescribeClusterSnapshots, but not a page of the
        inventory, and the call floor counts the two apart."""
        self._label.value = label
        try:
            yield
        finally:
            self._label.value = None

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.calls.items()))


def region_of(aws: AwsConfig) -> str | None:
    """The region asked for: ``aws.region``, else ``AWS_REGION`` (what every other AWS SDK
    and the README name; botocore itself reads only ``AWS_DEFAULT_REGION``). None leaves
    botocore to look further: ``AWS_DEFAULT_REGION``, then the profile's ``region``."""
    return aws.region or os.environ.get("AWS_REGION") or None


def make_client(aws: AwsConfig, stats: CallStats | None = None) -> Any:
    """A boto3 Redshift client honouring the config, then the standard AWS chain (region:
    :func:`region_of`; AWS_PROFILE and AWS_ENDPOINT_URL are read by boto3 itself). No region
    anywhere, or a profile that does not exist: :class:`AwsSetupError`."""
    import boto3
    from botocore.exceptions import NoRegionError, ProfileNotFound

    cfg = client_config(aws)
    try:
        session = boto3.session.Session(profile_name=aws.profile, region_name=region_of(aws))
        client = session.client("redshift", endpoint_url=aws.endpoint_url, config=cfg)
    except ProfileNotFound as e:
        raise AwsSetupError(
            f"AWS profile {e.kwargs.get('profile')!r} not found (aws.profile or AWS_PROFILE; "
            "the profiles are in ~/.aws/config and ~/.aws/credentials)"
        ) from None
    except NoRegionError:
        raise AwsSetupError(NO_REGION) from None
    if stats is not None:
        instrument(client, stats)
    return client


def client_config(aws: AwsConfig) -> Any:
    """botocore's client config from ``aws``: standard retries with ``aws.max_attempts`` in
    all, the connect and read timeouts, ``snapworker`` in the user agent."""
    from botocore.config import Config as BotoConfig

    return BotoConfig(
        retries={"mode": "standard", "total_max_attempts": aws.max_attempts},
        connect_timeout=aws.connect_timeout_seconds,
        read_timeout=aws.read_timeout_seconds,
        user_agent_extra="snapworker",
    )


def instrument(client: Any, stats: CallStats) -> None:
    """Count calls by operation (``before-call``) and HTTP attempts (``before-send``), for
    whatever service the client is (Redshift, STS, Organizations). Instrumenting the same
    client twice with the same ``stats`` counts once; with another ``stats``, both count."""
    events = client.meta.events
    service = client.meta.service_model.service_id.hyphenize()

    def on_call(model: Any, **_: Any) -> None:
        stats.count(stats.calls, model.name)

    def on_send(request: Any, **_: Any) -> None:
        op = request.context.get("operation_name") if hasattr(request, "context") else None
        stats.count(stats.attempts, op or "unknown")

    events.register(f"before-call.{service}", on_call, unique_id=f"snapworker-calls-{id(stats)}")
    events.register(f"before-send.{service}", on_send, unique_id=f"snapworker-attempts-{id(stats)}")


def retrying_call(
    operation: str,
    snapshot: str | None,
    fn: Callable[[], T],
    retry: RetryConfig,
    stats: CallStats,
    sleep: Callable[[float], None],
    on_retry: Callable[[str, AwsError, int], None] | None,
) -> T:
    """``fn`` (one AWS call) with tenacity's retries of what is transient (see the module
    docstring of ``adapters/aws/redshift.py`` for the layers); errors translated to
    :class:`AwsError`."""
    # tenacity is imported here, for start-up time: only a run that calls AWS needs it.
    from tenacity import (
        RetryCallState,
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential,
        wait_random,
    )

    def before_sleep(rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        stats.count(stats.retries, operation)
        if on_retry is not None and isinstance(exc, AwsError):
            on_retry(operation, exc, rs.attempt_number)

    retrying = Retrying(
        stop=stop_after_attempt(retry.attempts),
        # exponential from wait_initial, capped at wait_max, plus up to wait_initial of
        # jitter so that many workers throttled together do not retry in step
        wait=wait_exponential(
            multiplier=retry.wait_initial_seconds,
            max=retry.wait_max_seconds,
        )
        + wait_random(0, retry.wait_initial_seconds),
        retry=retry_if_exception(lambda e: isinstance(e, AwsError) and e.transient),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(translate, operation, snapshot, fn)
