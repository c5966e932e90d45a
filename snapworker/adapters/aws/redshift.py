"""The boto3 gateway to Redshift: inventory reads, snapshot mutations, errors, retries.

Retries are layered on purpose, each layer owning one kind of failure:

- **botocore** (``standard`` mode, ``aws.max_attempts`` calls in all, default 3) absorbs the
  brief faults of one HTTP exchange: throttling, 5xx, connection resets and read timeouts,
  with its own jittered backoff.
- **tenacity** (``retry.attempts`` per action, default 5, exponential backoff with jitter
  from ``retry.wait_initial_seconds`` up to ``retry.wait_max_seconds``) retries what outlasts
  that: throttling that persists after botocore gave up, and Redshift's *state* faults that
  mean "busy, try later" (a cluster that is modifying, a source snapshot still creating),
  which botocore never retries.

So the worst case of HTTP calls for one action is ``max_attempts * attempts`` (15 with the
defaults). Permanent errors (access denied, invalid parameter, quota exceeded, not found)
are raised at once as :class:`AwsError` with AWS's code and message.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from snapworker.adapters.aws import listing
from snapworker.adapters.aws.client import (
    CallStats,
    instrument,
    make_client,
    region_of,
    retrying_call,
)
from snapworker.adapters.aws.clusters import (
    ClusterCalls,
    ClusterInfo,
    TemporaryCredentials,
    partition_of,
    utc,
)
from snapworker.adapters.aws.errors import (
    BUSY_CODES,
    CREDENTIALS_REFUSED,
    MUTATIONS,
    NO_CREDENTIALS,
    NO_REGION,
    SERVER_CODES,
    STOPPING,
    THROTTLE_CODES,
    AwsError,
    AwsSetupError,
)
from snapworker.core.model import SUPPORT_ALIAS, Cluster, Snapshot, SnapshotType

if TYPE_CHECKING:
    from snapworker.adapters.aws.ratelimit import RateLimiter
    from snapworker.config import RetryConfig

T = TypeVar("T")


PAGE_SIZE = 100
LOST_ANSWER_SKEW = timedelta(minutes=5)
"""Clock difference tolerated between us and AWS when recognising a copy made by an attempt
whose answer was lost (see ``RedshiftGateway._copy_made_by_lost_attempt``)."""


def _accounts(entries: list[dict[str, Any]] | None) -> tuple[str, ...]:
    out = []
    for e in entries or []:
        acc = e.get("AccountId") or e.get("AccountAlias")
        if acc:
            out.append(acc)
    return tuple(sorted(set(out)))


def snapshot_from_aws(raw: dict[str, Any]) -> Snapshot:
    snap_type: SnapshotType = "automated" if raw.get("SnapshotType") == "automated" else "manual"
    return Snapshot(
        id=raw["SnapshotIdentifier"],
        cluster=raw["ClusterIdentifier"],
        type=snap_type,
        status=str(raw.get("Status", "")).lower(),
        create_time=utc(raw.get("SnapshotCreateTime") or datetime(1970, 1, 1, tzinfo=UTC)),
        tags={t["Key"]: t.get("Value", "") for t in raw.get("Tags") or []},
        accounts=_accounts(raw.get("AccountsWithRestoreAccess")),
        owner_account=raw.get("OwnerAccount"),
        retention_period=raw.get("ManualSnapshotRetentionPeriod"),
        size_mb=_megabytes(raw.get("TotalBackupSizeInMegaBytes")),
        incremental_mb=_megabytes(raw.get("ActualIncrementalBackupSizeInMegaBytes")),
    )


def _megabytes(value: Any) -> float | None:
    """A size field of DescribeClusterSnapshots (a double), or None if absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        mb = float(value)
    except (TypeError, ValueError):
        return None
    return mb if math.isfinite(mb) and mb >= 0 else None


_SEND_GUARD = threading.local()
"""Per thread: ``check`` (set by :meth:`RedshiftGateway.guarded`) and ``operation`` (the call
being made, from ``before-call``)."""


def _note_operation(model: Any = None, **_: Any) -> None:
    _SEND_GUARD.operation = getattr(model, "name", None)


def _guard_send(**_: Any) -> None:
    """``before-send``: right before an attempt of a mutating call goes on the wire (each of
    botocore's own retries too), the check :meth:`RedshiftGateway.guarded` set on this
    thread; it raises to stop the request (a lease no longer held)."""
    check = getattr(_SEND_GUARD, "check", None)
    if check is not None and getattr(_SEND_GUARD, "operation", None) in MUTATIONS:
        check()


class RedshiftGateway(ClusterCalls):
    """Every Redshift call snapworker makes, with its error handling and retry policy."""

    listing_workers: int = listing.DEFAULT_WORKERS
    """Threads for the per-cluster snapshot listing (:mod:`.listing`; 1: account-wide)."""

    def __init__(
        self,
        client: Any,
        retry: RetryConfig,
        stats: CallStats | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str, AwsError, int], None] | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.client = client
        self.retry_cfg = retry
        self.stats = stats or CallStats()
        self.sleep = sleep
        self.on_retry = on_retry
        self.limiter = limiter
        self._account: str | None = None
        self._account_lock = threading.Lock()
        self._cluster_ids: set[str] = set()
        self._owners: dict[str, str] = {}  # snapshot id -> OwnerAccount, from the listing
        self.region: str = client.meta.region_name
        # Per thread: "pacing" while a paced call is in flight, "throttle" once the hook heard
        # a throttle that botocore retried itself.
        self._heard = threading.local()
        events = getattr(client.meta, "events", None)
        if events is not None:
            # Module-level handlers, once per client (a pair's client outlives its gateways).
            events.register(
                "before-call.redshift", _note_operation, unique_id="snapworker-guard-op"
            )
            events.register("before-send.redshift", _guard_send, unique_id="snapworker-guard")
        if limiter is not None and events is not None:
            # Throttles that botocore absorbs itself never reach tenacity: hear them here.
            events.register(
                "needs-retry.redshift", self._on_botocore_retry, unique_id="snapworker-limiter"
            )

    @contextmanager
    def guarded(self, check: Callable[[], object]) -> Iterator[None]:
        """While inside, on this thread: ``check()`` right before each attempt of a mutating
        call is sent; whatever it raises stops the request unsent and propagates. The
        executor checks the action's lease this way, as late as it can be checked: a worker
        frozen after its lease check (SIGSTOP, a paused VM, a long wait in the rate limiter)
        sends nothing under a lease another replica has taken over meanwhile."""
        previous = getattr(_SEND_GUARD, "check", None)
        _SEND_GUARD.check = check
        try:
            yield
        finally:
            _SEND_GUARD.check = previous

    # -- errors and retries -------------------------------------------------------------

    def _on_botocore_retry(self, response: Any = None, **_: Any) -> None:
        # Only the calls the limiter paces (mutations and the re-read before a delete, made
        # on this thread inside ``_limited``) feed it: a throttled listing page must not
        # halve the mutation rate.
        if self.limiter is None or not response or not getattr(self._heard, "pacing", False):
            return
        parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else {}
        code = (parsed or {}).get("Error", {}).get("Code")
        if code in THROTTLE_CODES:
            self.limiter.throttled()
            self._heard.throttle = True

    def _call(
        self, operation: str, snapshot: str | None, fn: Callable[[], T], *, paced: bool = False
    ) -> T:
        """One call with its retries. Mutations, and reads marked ``paced``, take a token of
        the shared rate limiter before each attempt."""
        if operation in MUTATIONS:
            limited = fn if self.limiter is None else self._limited(fn)
            return self._retrying_call(operation, snapshot, limited)
        if paced and self.limiter is not None:
            return self._retrying_call(operation, snapshot, self._limited(fn))
        return self._retrying_call(operation, snapshot, fn)

    def _limited(self, fn: Callable[[], T]) -> Callable[[], T]:
        """``fn`` behind the shared rate limiter: a token before each attempt (tenacity's
        retries take one too); a throttling answer halves the rate, a success adds back."""
        limiter = self.limiter
        assert limiter is not None

        def attempt() -> T:
            limiter.acquire()
            self._heard.throttle = False
            self._heard.pacing = True
            try:
                result = fn()
            except Exception as e:  # botocore's ClientError, translated by the caller
                response = getattr(e, "response", None)
                code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
                if code in THROTTLE_CODES and not self._heard.throttle:
                    limiter.throttled()  # not heard by the hook (no HTTP: a stub, say)
                raise
            finally:
                self._heard.pacing = False
            limiter.succeeded()
            return result

        return attempt

    def _retrying_call(self, operation: str, snapshot: str | None, fn: Callable[[], T]) -> T:
        return retrying_call(
            operation, snapshot, fn, self.retry_cfg, self.stats, self.sleep, self.on_retry
        )

    # -- reads --------------------------------------------------------------------------

    def account_id(self) -> str | None:
        """This account's id, as the inventory showed it (no API call of its own):

        1. the ``ClusterNamespaceArn`` of any cluster DescribeClusters listed (AWS reports
           it for every cluster; the clusters listed are always this account's);
        2. else the ``OwnerAccount`` of the snapshots of those clusters, when they all name
           the same account (a snapshot shared *to* us from another account can carry a
           cluster id like ours, so any disagreement means "unknown", never a guess).

        None when neither says; an ARN that needs it then asks STS once (``_sts_account``).
        """
        return self._account

    def _pages(
        self,
        operation: str,
        method: str,
        key: str,
        progress: Callable[[int, bool], None] | None = None,
        **params: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paginated listing; ``progress`` is told after each page how many
        items so far and whether more pages follow."""
        marker: str | None = None
        listed = 0
        while True:
            args = dict(params, MaxRecords=PAGE_SIZE)
            if marker:
                args["Marker"] = marker
            page = self._call(operation, None, lambda a=args: getattr(self.client, method)(**a))  # type: ignore[misc]
            items = page.get(key, [])
            yield from items
            listed += len(items)
            marker = page.get("Marker")
            if progress is not None:
                progress(listed, bool(marker))
            if not marker:
                return

    def list_clusters(self) -> dict[str, Cluster]:
        out = {}
        for raw in self._pages("DescribeClusters", "describe_clusters", "Clusters"):
            cid = raw["ClusterIdentifier"]
            out[cid] = Cluster(
                id=cid,
                status=str(raw.get("ClusterStatus", "")).lower(),
                tags={t["Key"]: t.get("Value", "") for t in raw.get("Tags") or []},
            )
            ns = raw.get("ClusterNamespaceArn") or ""
            if self._account is None and ns.count(":") >= 5:
                self._account = ns.split(":")[4] or None
        self._cluster_ids = set(out)
        return out

    def list_snapshots(
        self, progress: Callable[[int, bool], None] | None = None
    ) -> dict[str, Snapshot]:
        """Every snapshot (manual and automated), orphans included: account-wide pages, or
        per cluster in parallel when :meth:`list_clusters` found enough clusters (see
        :mod:`.listing`); ``progress``: told after each page (see :meth:`_pages`)."""
        out = {}
        pages = functools.partial(
            self._pages, "DescribeClusterSnapshots", "describe_cluster_snapshots", "Snapshots"
        )
        for raw in listing.snapshots(pages, self._cluster_ids, self.listing_workers, progress):
            snap = snapshot_from_aws(raw)
            out[snap.id] = snap
        self._owners = {s.id: s.owner_account for s in out.values() if s.owner_account}
        if self._account is None:
            owners = {
                s.owner_account
                for s in out.values()
                if s.cluster in self._cluster_ids and s.owner_account
            }
            if len(owners) == 1:
                self._account = owners.pop()
        return out

    def get_snapshot(self, snapshot_id: str, cluster: str) -> Snapshot | None:
        """Re-read one snapshot (the safety read before a delete); None if it is gone.

        Counted apart from the inventory's pages, as ``DescribeClusterSnapshots (by id)``:
        docs/design.md's "revoke first, re-read, then delete" costs one such call per delete, on
        top of the call floor, on purpose. It is paced by the shared rate limiter like the
        delete it guards: a thousand deletes make a thousand re-reads, on the pool's threads."""
        try:
            with self.stats.labelled("(by id)"):
                page = self._call(
                    "DescribeClusterSnapshots",
                    snapshot_id,
                    lambda: self.client.describe_cluster_snapshots(
                        SnapshotIdentifier=snapshot_id, ClusterIdentifier=cluster
                    ),
                    paced=True,
                )
        except AwsError as e:
            if e.code == "ClusterSnapshotNotFound":
                return None
            raise
        for raw in page.get("Snapshots", []):
            if raw.get("SnapshotIdentifier") == snapshot_id:
                return snapshot_from_aws(raw)
        return None

    # -- mutations ----------------------------------------------------------------------

    def create_snapshot(
        self,
        snapshot_id: str,
        cluster: str,
        tags: dict[str, str],
        retention_days: int | None = None,
    ) -> Snapshot:
        """``retention_days``: ManualSnapshotRetentionPeriod (fail-safe expiry); None leaves
        AWS's default (the cluster's manual snapshot retention, normally indefinite)."""
        extra = {} if retention_days is None else {"ManualSnapshotRetentionPeriod": retention_days}
        raw = self._call(
            "CreateClusterSnapshot",
            snapshot_id,
            lambda: self.client.create_cluster_snapshot(
                SnapshotIdentifier=snapshot_id,
                ClusterIdentifier=cluster,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                **extra,
            ),
        )
        return snapshot_from_aws(raw["Snapshot"])

    def copy_snapshot(
        self, source: str, cluster: str, target: str, retention_days: int | None = None
    ) -> Snapshot:
        """``retention_days``: as for :meth:`create_snapshot`."""
        extra = {} if retention_days is None else {"ManualSnapshotRetentionPeriod": retention_days}
        first_sent = datetime.now(UTC)
        uncertain = False  # an earlier attempt may have been carried out, its answer lost

        def attempt() -> Any:
            nonlocal uncertain
            from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

            try:
                return self.client.copy_cluster_snapshot(
                    SourceSnapshotIdentifier=source,
                    SourceSnapshotClusterIdentifier=cluster,
                    TargetSnapshotIdentifier=target,
                    **extra,
                )
            except ClientError as e:
                meta = e.response.get("ResponseMetadata", {})
                code = e.response.get("Error", {}).get("Code")
                if code == "ClusterSnapshotAlreadyExists" and (
                    uncertain or meta.get("RetryAttempts")
                ):
                    made = self._copy_made_by_lost_attempt(target, cluster, first_sent)
                    if made is not None:
                        return {"Snapshot": made}
                if int(meta.get("HTTPStatusCode") or 0) >= 500:
                    uncertain = True
                raise
            except (ConnectionError, HTTPClientError):  # read timeouts and resets included
                uncertain = True
                raise

        raw = self._call("CopyClusterSnapshot", target, attempt)
        return snapshot_from_aws(raw["Snapshot"])

    def set_retention(self, snapshot_id: str, days: int) -> None:
        """ModifyClusterSnapshot: the manual snapshot's retention period (-1: indefinite).
        Never with ``Force``: a period that already passed is refused by AWS, not turned
        into an immediate delete."""
        self._call(
            "ModifyClusterSnapshot",
            snapshot_id,
            lambda: self.client.modify_cluster_snapshot(
                SnapshotIdentifier=snapshot_id, ManualSnapshotRetentionPeriod=days
            ),
        )

    def _copy_made_by_lost_attempt(
        self, target: str, cluster: str, first_sent: datetime
    ) -> dict[str, Any] | None:
        """The snapshot an earlier attempt of this very copy made, if that is what the target
        id now names: a retry (ours or botocore's) after an attempt whose answer was lost (read
        timeout, reset, 5xx) gets ClusterSnapshotAlreadyExists for the copy it made itself.

        It is taken as ours only if it is a manual snapshot of the same cluster, carries no
        tags (a copy has none until we tag it) and was created no earlier than
        :data:`LOST_ANSWER_SKEW` before our first attempt; anything else stays someone
        else's, and the caller reports the id as taken. This is the same evidence as the
        journal's pending entry gives for a crash between the copy and its tagging.
        """
        try:
            page = self.client.describe_cluster_snapshots(
                SnapshotIdentifier=target, ClusterIdentifier=cluster
            )
        except Exception:
            return None
        for raw in page.get("Snapshots", []):
            if raw.get("SnapshotIdentifier") != target:
                continue
            created = raw.get("SnapshotCreateTime")
            if (
                raw.get("SnapshotType") == "manual"
                and raw.get("ClusterIdentifier") == cluster
                and not raw.get("Tags")
                and isinstance(created, datetime)
                and utc(created) >= first_sent - LOST_ANSWER_SKEW
            ):
                return dict(raw)
        return None

    def snapshot_arn(self, snapshot_id: str, cluster: str, owner: str | None) -> str:
        # The snapshot's own OwnerAccount (the listing saw it) is its ARN's account.
        account = owner or self._owners.get(snapshot_id) or self._account or self._sts_account()
        partition = partition_of(self.region)
        return f"arn:{partition}:redshift:{self.region}:{account}:snapshot:{cluster}/{snapshot_id}"

    def _sts_account(self) -> str:
        """sts:GetCallerIdentity, once, and only when the inventory did not show the account
        (no cluster, and no snapshot of one: see :meth:`account_id`)."""
        with self._account_lock:
            if self._account is not None:
                return self._account
            import boto3

            sts = boto3.session.Session(region_name=self.region).client(
                "sts", endpoint_url=self.client.meta.endpoint_url
            )
            self._account = str(sts.get_caller_identity()["Account"])
            return self._account

    def tag_snapshot(
        self, snapshot_id: str, cluster: str, owner: str | None, tags: dict[str, str]
    ) -> None:
        arn = self.snapshot_arn(snapshot_id, cluster, owner)
        self._call(
            "CreateTags",
            snapshot_id,
            lambda: self.client.create_tags(
                ResourceName=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
            ),
        )

    def untag_snapshot(
        self, snapshot_id: str, cluster: str, owner: str | None, keys: list[str]
    ) -> None:
        arn = self.snapshot_arn(snapshot_id, cluster, owner)
        self._call(
            "DeleteTags",
            snapshot_id,
            lambda: self.client.delete_tags(ResourceName=arn, TagKeys=keys),
        )

    def authorize(self, snapshot_id: str, cluster: str, account: str) -> None:
        self._call(
            "AuthorizeSnapshotAccess",
            snapshot_id,
            lambda: self.client.authorize_snapshot_access(
                SnapshotIdentifier=snapshot_id,
                SnapshotClusterIdentifier=cluster,
                AccountWithRestoreAccess=account,
            ),
        )

    def revoke(self, snapshot_id: str, cluster: str, account: str) -> None:
        self._call(
            "RevokeSnapshotAccess",
            snapshot_id,
            lambda: self.client.revoke_snapshot_access(
                SnapshotIdentifier=snapshot_id,
                SnapshotClusterIdentifier=cluster,
                AccountWithRestoreAccess=account,
            ),
        )

    def delete_snapshot(self, snapshot_id: str, cluster: str) -> None:
        self._call(
            "DeleteClusterSnapshot",
            snapshot_id,
            lambda: self.client.delete_cluster_snapshot(
                SnapshotIdentifier=snapshot_id, SnapshotClusterIdentifier=cluster
            ),
        )


__all__ = [
    "BUSY_CODES",
    "CREDENTIALS_REFUSED",
    "LOST_ANSWER_SKEW",
    "MUTATIONS",
    "NO_CREDENTIALS",
    "NO_REGION",
    "PAGE_SIZE",
    "SERVER_CODES",
    "STOPPING",
    "SUPPORT_ALIAS",
    "THROTTLE_CODES",
    "AwsError",
    "AwsSetupError",
    "CallStats",
    "ClusterInfo",
    "RedshiftGateway",
    "TemporaryCredentials",
    "instrument",
    "make_client",
    "region_of",
    "snapshot_from_aws",
]
