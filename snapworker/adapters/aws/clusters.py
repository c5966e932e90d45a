"""The cluster calls a restore drill makes (restore a snapshot into a scratch cluster, tag it,
watch it, get temporary database credentials, delete it), and what they return.

:class:`ClusterCalls` is mixed into ``RedshiftGateway``, which supplies the call policy
(``_call``: rate limit, retries, error translation) and the account.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from snapworker.adapters.aws.errors import AwsError

T = TypeVar("T")


@functools.lru_cache(maxsize=64)
def partition_of(region: str | None) -> str:
    """The ARN partition of ``region`` (``aws``, ``aws-cn``, ``aws-us-gov``, ...), from
    botocore's own endpoint data, not a table of ours. ``*``, None or a region botocore does
    not know (a test endpoint's made-up name) give ``aws``."""
    if not region or region == "*":
        return "aws"
    # Imported here, not at the top, for start-up time: only an ARN needs the endpoint data.
    import botocore.session
    from botocore.exceptions import UnknownRegionError

    try:
        return str(botocore.session.get_session().get_partition_for_region(region))
    except UnknownRegionError:
        return "aws"


def utc(t: datetime) -> datetime:
    """AWS's time as aware UTC (moto answers in local time, AWS in UTC)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


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


class ClusterCalls:
    """RestoreFromClusterSnapshot, CreateTags on a cluster, DescribeClusters, GetClusterCredentials
    and DeleteCluster, for the restore drills (``snapworker.service.drills``)."""

    client: Any
    region: str
    _account: str | None

    def _call(
        self, operation: str, snapshot: str | None, fn: Callable[[], T], *, paced: bool = False
    ) -> T:
        raise NotImplementedError  # RedshiftGateway's call policy

    def _sts_account(self) -> str:
        raise NotImplementedError  # RedshiftGateway's account look-up

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
        return (
            f"arn:{partition_of(self.region)}:redshift:{self.region}:{account}:cluster:{cluster_id}"
        )

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
            expiration=utc(expiration) if isinstance(expiration, datetime) else None,
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
