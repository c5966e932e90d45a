"""The wire side of the handlers: reading a request's parameters, checking them as AWS does,
and the Snapshot shape of a response (with ``AccountsWithRestoreAccess``, ``Tags``,
``OwnerAccount``, ``ManualSnapshotRetentionPeriod`` and the sizes
``TotalBackupSizeInMegaBytes`` and ``ActualIncrementalBackupSizeInMegaBytes``, which moto
leaves out)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from snapworker.sandbox.moto_ext.common import (
    ACCOUNTS,
    MAX_RECORDS_DEFAULT,
    MAX_RECORDS_MAX,
    MAX_RECORDS_MIN,
    RETENTION,
    SIZES,
    RedshiftFault,
    aware_utc,
    invalid,
    not_found,
)

if TYPE_CHECKING:
    from moto.redshift.models import RedshiftBackend, Snapshot

ACCOUNT_ID = re.compile(r"^\d{12}$")
_IDENTIFIER = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|-(?!-))*$")
CLUSTER_IDENTIFIER = re.compile(r"^(?=.{1,63}$)[a-z](?:[a-z0-9]|-(?!-))*(?<!-)$")


# -- response shapes ----------------------------------------------------------------------


def grant_entry(account: str) -> dict[str, str]:
    """``{"AccountId": ...}`` for a 12-digit id, ``{"AccountAlias": ...}`` for the alias."""
    if ACCOUNT_ID.match(account):
        return {"AccountId": account}
    return {"AccountAlias": account}


def _unit(text: str) -> float:
    """A number in [0, 1) drawn from *text* alone (the same on every run and machine)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") / 2**32


def default_sizes(cluster_id: str, snapshot_id: str) -> tuple[float, float]:
    """Plausible, deterministic sizes in MB when none were set (``seeding.set_snapshot_sizes``):
    the cluster's data (20 to 200 GB, from its id) grows a little per snapshot, and each
    snapshot adds 1 to 8 % of it (from the snapshot's id)."""
    base = 20_480 + _unit(cluster_id) * 184_320
    total = round(base * (1 + 0.05 * _unit(f"{cluster_id}/{snapshot_id}/total")), 1)
    return total, round(total * (0.01 + 0.07 * _unit(f"{snapshot_id}/incremental")), 1)


def sizes_of(snap: Snapshot) -> tuple[float, float]:
    """The snapshot's (total, incremental) sizes in MB: as set, else :func:`default_sizes`."""
    sizes: tuple[float, float] | None = getattr(snap, SIZES, None)
    if sizes is None:
        return default_sizes(snap.cluster_identifier, snap.snapshot_identifier)
    return sizes


def snapshot_view(snap: Snapshot, status: str | None = None) -> dict[str, Any]:
    """A Snapshot as the Redshift API returns it (times in UTC; no
    ``AccountsWithRestoreAccess`` when there is none, as AWS returns null)."""
    view: dict[str, Any] = {
        "SnapshotIdentifier": snap.snapshot_identifier,
        "ClusterIdentifier": snap.cluster_identifier,
        "SnapshotCreateTime": aware_utc(snap.create_time),
        "Status": status or snap.status,
        "Port": snap.port,
        "AvailabilityZone": snap.availability_zone,
        "MasterUsername": snap.master_username,
        "ClusterVersion": snap.cluster_version,
        "SnapshotType": snap.snapshot_type,
        "NodeType": snap.node_type,
        "NumberOfNodes": snap.number_of_nodes,
        "DBName": snap.db_name,
        "Encrypted": snap.encrypted,
        "OwnerAccount": snap.account_id,
        "Tags": [dict(t) for t in snap.tags],
        "EnhancedVpcRouting": bool(snap.enhanced_vpc_routing),
        "SnapshotArn": snap.arn,
    }
    view["TotalBackupSizeInMegaBytes"], view["ActualIncrementalBackupSizeInMegaBytes"] = sizes_of(
        snap
    )
    accounts = getattr(snap, ACCOUNTS, [])
    if accounts:
        view["AccountsWithRestoreAccess"] = [grant_entry(a) for a in accounts]
    if snap.snapshot_type == "manual":
        view["ManualSnapshotRetentionPeriod"] = getattr(snap, RETENTION, -1)
    return view


# -- request parameters -------------------------------------------------------------------


def param(resp: Any, name: str, default: Any = None) -> Any:
    value = resp._get_param(name)
    return default if value is None or value == "" else value


def str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):  # {"TagKey": [...]} shapes, should the parser keep the wrapper
        out: list[str] = []
        for v in value.values():
            out.extend(str_list(v))
        return out
    return [str(v) for v in value]


def time_param(resp: Any, name: str) -> datetime | None:
    value = param(resp, name)
    if value is None:
        return None
    if isinstance(value, datetime):
        return aware_utc(value)
    try:
        from botocore.utils import parse_timestamp

        return aware_utc(parse_timestamp(value))
    except (ValueError, TypeError) as exc:
        raise invalid(f"Invalid value for {name}: {value}") from exc


def int_param(resp: Any, name: str) -> int | None:
    value = param(resp, name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise invalid(f"Invalid value for {name}: {value}") from exc


def max_records(resp: Any) -> int:
    """``MaxRecords``: 20..100, default 100, else ``InvalidParameterValue``."""
    value = int_param(resp, "MaxRecords")
    if value is None:
        return MAX_RECORDS_DEFAULT
    if not MAX_RECORDS_MIN <= value <= MAX_RECORDS_MAX:
        raise invalid(
            f"MaxRecords must be between {MAX_RECORDS_MIN} and {MAX_RECORDS_MAX}: {value}"
        )
    return value


def snapshot_id_from(resp: Any, id_param: str = "SnapshotIdentifier") -> str:
    """The snapshot a request names, by identifier or by ``SnapshotArn``."""
    sid = param(resp, id_param)
    if sid:
        return str(sid)
    arn = param(resp, "SnapshotArn")
    if arn:
        # arn:aws:redshift:REGION:ACCOUNT:snapshot:CLUSTER/SNAPSHOT
        tail = str(arn).split(":snapshot:", 1)[-1]
        return tail.split("/", 1)[-1]
    raise invalid("A snapshot identifier or a snapshot ARN is required.")


def lookup(be: RedshiftBackend, snapshot_id: str, cluster_id: str | None) -> Snapshot:
    """The snapshot, or ``ClusterSnapshotNotFound`` (also when it is another cluster's)."""
    snap = be.snapshots.get(snapshot_id)
    if snap is None or (cluster_id and snap.cluster_identifier != cluster_id):
        raise not_found(snapshot_id)
    return snap


def check_identifier(value: str | None, what: str) -> str:
    """AWS's snapshot identifier rules, else ``InvalidParameterValue``."""
    if not value or len(value) > 255 or not _IDENTIFIER.match(value) or value.endswith("-"):
        raise invalid(
            f"{what} must contain from 1 to 255 alphanumeric characters or hyphens, begin with "
            "a letter, and cannot end with a hyphen or contain two consecutive hyphens: "
            f"{value!r}"
        )
    return value


def check_retention(value: int | None) -> int:
    """``ManualSnapshotRetentionPeriod``: -1 (the default) or 1..3653."""
    if value is None:
        return -1
    if value != -1 and not 1 <= value <= 3653:
        raise RedshiftFault(
            "InvalidRetentionPeriodFault",
            "The retention period must be either -1 or an integer between 1 and 3,653.",
        )
    return value
