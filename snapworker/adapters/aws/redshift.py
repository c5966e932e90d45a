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

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from snapworker.core.model import SUPPORT_ALIAS, Cluster, Snapshot, SnapshotType
from snapworker.errors import SnapworkerError, UsageError

if TYPE_CHECKING:
    from snapworker.adapters.aws.ratelimit import RateLimiter
    from snapworker.config import AwsConfig, RetryConfig

T = TypeVar("T")

PAGE_SIZE = 100
LOST_ANSWER_SKEW = timedelta(minutes=5)
"""Clock difference tolerated between us and AWS when recognising a copy made by an attempt
whose answer was lost (see ``RedshiftGateway._copy_made_by_lost_attempt``)."""

STOPPING = "Stopping"
"""The code of the :class:`AwsError` a cut-short retry backoff raises when the daemon stops:
not AWS's answer, so what it interrupts is redone by the next tick or run."""

THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "DependentServiceRequestThrottlingFault",
        "DependentServiceRequestThrottling",
    }
)
SERVER_CODES = frozenset(
    {"InternalFailure", "InternalError", "ServiceUnavailable", "ServiceUnavailableException"}
)
MUTATIONS = frozenset(
    {
        "CreateClusterSnapshot",
        "CopyClusterSnapshot",
        "CreateTags",
        "DeleteTags",
        "AuthorizeSnapshotAccess",
        "RevokeSnapshotAccess",
        "DeleteClusterSnapshot",
        "ModifyClusterSnapshot",
        "RestoreFromClusterSnapshot",
        "DeleteCluster",
    }
)
# Redshift's "busy" faults: the resource exists but is changing; later it will not be.
BUSY_CODES: dict[str, frozenset[str]] = {
    "CreateClusterSnapshot": frozenset({"InvalidClusterState"}),
    "CopyClusterSnapshot": frozenset({"InvalidClusterSnapshotState"}),
    "AuthorizeSnapshotAccess": frozenset({"InvalidClusterSnapshotState"}),
    "DeleteCluster": frozenset({"InvalidClusterState"}),
}


CREDENTIALS_REFUSED = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }
)
"""AWS's answers that mean "these credentials are no good" (expired, unknown): the setup
must be fixed (renew them), not the run."""

NO_REGION = "no AWS region: set aws.region in the config, or AWS_REGION"
NO_CREDENTIALS = "no AWS credentials found (standard chain: env, profile, instance role)"


class AwsSetupError(UsageError):
    """The AWS client cannot be set up or cannot sign a request: no region, an unknown
    profile, no credentials (exit 2; nothing was asked of AWS)."""


class AwsError(SnapworkerError):
    """An AWS call that failed for good (after the retries its kind allows). Exit 1, or 2
    when AWS refused the credentials themselves (:data:`CREDENTIALS_REFUSED`)."""

    def __init__(
        self, operation: str, code: str, message: str, snapshot: str | None = None, status: int = 0
    ) -> None:
        self.operation = operation
        self.code = code
        self.message = message
        self.snapshot = snapshot
        self.status = status
        self.exit_code = 2 if self.credentials_refused else 1
        where = f" on {snapshot}" if snapshot else ""
        super().__init__(f"{operation}{where}: {code}: {message}")

    @property
    def credentials_refused(self) -> bool:
        return self.code in CREDENTIALS_REFUSED

    @property
    def transient(self) -> bool:
        if self.code in THROTTLE_CODES or self.code in SERVER_CODES or self.status >= 500:
            return True
        if self.code in ("ConnectionError", "ReadTimeout"):
            return True
        return self.code in BUSY_CODES.get(self.operation, frozenset())


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
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import NoRegionError, ProfileNotFound

    cfg = BotoConfig(
        retries={"mode": "standard", "total_max_attempts": aws.max_attempts},
        connect_timeout=aws.connect_timeout_seconds,
        read_timeout=aws.read_timeout_seconds,
        user_agent_extra="snapworker",
    )
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


def instrument(client: Any, stats: CallStats) -> None:
    """Count calls by operation (``before-call``) and HTTP attempts (``before-send``)."""
    events = client.meta.events

    def on_call(model: Any, **_: Any) -> None:
        stats.count(stats.calls, model.name)

    def on_send(request: Any, **_: Any) -> None:
        op = request.context.get("operation_name") if hasattr(request, "context") else None
        stats.count(stats.attempts, op or "unknown")

    events.register("before-call.redshift", on_call, unique_id="snapworker-calls")
    events.register("before-send.redshift", on_send, unique_id="snapworker-attempts")


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


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
        create_time=_utc(raw.get("SnapshotCreateTime") or datetime(1970, 1, 1, tzinfo=UTC)),
        tags={t["Key"]: t.get("Value", "") for t in raw.get("Tags") or []},
        accounts=_accounts(raw.get("AccountsWithRestoreAccess")),
        owner_account=raw.get("OwnerAccount"),
        retention_period=raw.get("ManualSnapshotRetentionPeriod"),
    )


class RedshiftGateway:
    """Every Redshift call snapworker makes, with its error handling and retry policy."""

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
        if limiter is not None and events is not None:
            # Throttles that botocore absorbs itself never reach tenacity: hear them here.
            events.register(
                "needs-retry.redshift", self._on_botocore_retry, unique_id="snapworker-limiter"
            )

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
            self.stats.count(self.stats.retries, operation)
            if self.on_retry is not None and isinstance(exc, AwsError):
                self.on_retry(operation, exc, rs.attempt_number)

        retrying = Retrying(
            stop=stop_after_attempt(self.retry_cfg.attempts),
            # exponential from wait_initial, capped at wait_max, plus up to wait_initial of
            # jitter so that many workers throttled together do not retry in step
            wait=wait_exponential(
                multiplier=self.retry_cfg.wait_initial_seconds,
                max=self.retry_cfg.wait_max_seconds,
            )
            + wait_random(0, self.retry_cfg.wait_initial_seconds),
            retry=retry_if_exception(lambda e: isinstance(e, AwsError) and e.transient),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._translate, operation, snapshot, fn)

    @staticmethod
    def _translate(operation: str, snapshot: str | None, fn: Callable[[], T]) -> T:
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            CredentialRetrievalError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
            ProfileNotFound,
            ReadTimeoutError,
            TokenRetrievalError,
        )
        from botocore.parsers import ResponseParserError

        try:
            return fn()
        except NoCredentialsError:
            raise AwsSetupError(NO_CREDENTIALS) from None
        except (
            PartialCredentialsError,
            CredentialRetrievalError,
            TokenRetrievalError,
            ProfileNotFound,
        ) as e:
            raise AwsSetupError(f"the AWS credentials could not be loaded: {e}") from None
        except ClientError as e:
            err = e.response.get("Error", {})
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            raise AwsError(
                operation,
                str(err.get("Code", "Unknown")),
                str(err.get("Message", "")),
                snapshot,
                status,
            ) from None
        except ReadTimeoutError as e:
            raise AwsError(operation, "ReadTimeout", str(e), snapshot) from None
        except (ConnectionError, HTTPClientError) as e:
            raise AwsError(operation, "ConnectionError", str(e), snapshot) from None
        except ResponseParserError as e:
            raise AwsError(operation, "InternalFailure", str(e)[:300], snapshot, 500) from None

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
        self, operation: str, method: str, key: str, **params: Any
    ) -> Iterator[dict[str, Any]]:
        marker: str | None = None
        while True:
            args = dict(params, MaxRecords=PAGE_SIZE)
            if marker:
                args["Marker"] = marker
            page = self._call(operation, None, lambda a=args: getattr(self.client, method)(**a))  # type: ignore[misc]
            yield from page.get(key, [])
            marker = page.get("Marker")
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

    def list_snapshots(self) -> dict[str, Snapshot]:
        """One account-wide, paginated listing of every snapshot (manual and automated)."""
        out = {}
        for raw in self._pages(
            "DescribeClusterSnapshots", "describe_cluster_snapshots", "Snapshots"
        ):
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
                and _utc(created) >= first_sent - LOST_ANSWER_SKEW
            ):
                return dict(raw)
        return None

    def snapshot_arn(self, snapshot_id: str, cluster: str, owner: str | None) -> str:
        # The snapshot's own OwnerAccount (the listing saw it) is its ARN's account.
        account = owner or self._owners.get(snapshot_id) or self._account or self._sts_account()
        return f"arn:aws:redshift:{self.region}:{account}:snapshot:{cluster}/{snapshot_id}"

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

    # -- restore drills (snapworker.service.drills) -------------------------------------------

    def restore_cluster(self, cluster_id: str, snapshot_id: str, source_cluster: str) -> str:
        """RestoreFromClusterSnapshot into a new cluster; returns its status (``creating``).
        The API takes no tags: :meth:`tag_cluster` marks the cluster right after."""
        raw = self._call(
            "RestoreFromClusterSnapshot",
            snapshot_id,
            lambda: self.client.restore_from_cluster_snapshot(
                ClusterIdentifier=cluster_id,
                SnapshotIdentifier=snapshot_id,
                SnapshotClusterIdentifier=source_cluster,
                PubliclyAccessible=False,
            ),
        )
        return str(raw.get("Cluster", {}).get("ClusterStatus", "")).lower()

    def cluster_arn(self, cluster_id: str) -> str:
        account = self._account or self._sts_account()
        return f"arn:aws:redshift:{self.region}:{account}:cluster:{cluster_id}"

    def tag_cluster(self, cluster_id: str, tags: dict[str, str]) -> None:
        arn = self.cluster_arn(cluster_id)
        self._call(
            "CreateTags",
            None,
            lambda: self.client.create_tags(
                ResourceName=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
            ),
        )

    def describe_cluster(self, cluster_id: str) -> ClusterInfo | None:
        """One cluster's status and endpoint; None if it does not exist."""
        try:
            page = self._call(
                "DescribeClusters",
                None,
                lambda: self.client.describe_clusters(ClusterIdentifier=cluster_id),
            )
        except AwsError as e:
            if e.code == "ClusterNotFound":
                return None
            raise
        for raw in page.get("Clusters", []):
            if raw.get("ClusterIdentifier") == cluster_id:
                endpoint = raw.get("Endpoint") or {}
                port = endpoint.get("Port")
                return ClusterInfo(
                    id=cluster_id,
                    status=str(raw.get("ClusterStatus", "")).lower(),
                    address=endpoint.get("Address"),
                    port=int(port) if port is not None else None,
                    db_name=raw.get("DBName"),
                    tags={t["Key"]: t.get("Value", "") for t in raw.get("Tags") or []},
                )
        return None

    def get_cluster_credentials(
        self,
        cluster_id: str,
        db_user: str,
        db_name: str,
        duration_seconds: int,
        db_groups: list[str],
        auto_create: bool,
    ) -> TemporaryCredentials:
        """GetClusterCredentials. The password stays inside the returned object (its repr
        hides it); the call's errors carry AWS's code and message, never the password."""
        args: dict[str, Any] = {
            "ClusterIdentifier": cluster_id,
            "DbUser": db_user,
            "DbName": db_name,
            "DurationSeconds": duration_seconds,
            "AutoCreate": auto_create,
        }
        if db_groups:
            args["DbGroups"] = list(db_groups)
        raw = self._call(
            "GetClusterCredentials", None, lambda: self.client.get_cluster_credentials(**args)
        )
        expiration = raw.get("Expiration")
        return TemporaryCredentials(
            user=str(raw["DbUser"]),
            password=str(raw["DbPassword"]),
            expiration=_utc(expiration) if isinstance(expiration, datetime) else None,
        )

    def delete_cluster(self, cluster_id: str) -> bool:
        """DeleteCluster with SkipFinalClusterSnapshot (a scratch cluster's data is a copy of
        a snapshot that exists); False if it was already gone."""
        try:
            self._call(
                "DeleteCluster",
                None,
                lambda: self.client.delete_cluster(
                    ClusterIdentifier=cluster_id, SkipFinalClusterSnapshot=True
                ),
            )
        except AwsError as e:
            if e.code == "ClusterNotFound":
                return False
            raise
        return True


@dataclass(frozen=True)
class ClusterInfo:
    """A cluster's status and endpoint, as DescribeClusters reports it."""

    id: str
    status: str
    address: str | None
    port: int | None
    db_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TemporaryCredentials:
    """GetClusterCredentials' answer. The password is never shown: not in ``repr``/``str``
    (so not in a log line or a traceback's locals summary), only read where it is used."""

    user: str
    password: str = field(repr=False)
    expiration: datetime | None = None

    def __str__(self) -> str:
        return f"TemporaryCredentials(user={self.user!r}, password=***)"


__all__ = [
    "SUPPORT_ALIAS",
    "AwsError",
    "AwsSetupError",
    "CallStats",
    "RedshiftGateway",
    "make_client",
    "region_of",
]
