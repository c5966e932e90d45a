"""A small extension that makes moto behave like AWS for Redshift snapshots.

moto 5.x lacks, or gets wrong, the parts of the Redshift API that snapshot lifecycle needs
(see ``docs/moto.md``). This module fills them in, faithful to the Redshift API
reference and botocore's service model, so that the tests and the sandbox believe what AWS
does. Nothing happens on import: call :func:`install` (idempotent) to apply it. It patches
moto's classes, so it works both in-process (``moto.mock_aws``) and in a
``moto.server.ThreadedMotoServer`` running in the same process.

What ``install()`` adds or replaces (moto dispatches an action to the ``RedshiftResponse``
method of the same name in snake case):

CopyClusterSnapshot
    The source must exist (else ``ClusterSnapshotNotFound``; a ``SourceSnapshotClusterIdentifier``
    that is not the source's cluster counts as not found), be ``automated`` and ``available``
    (else ``InvalidClusterSnapshotState``); the target id must follow AWS's identifier rules
    (else ``InvalidParameterValue``) and be new in the account (else
    ``ClusterSnapshotAlreadyExists``); ``ManualSnapshotRetentionPeriod`` must be -1 or 1..3653
    (else ``InvalidRetentionPeriodFault``). The copy is a manual snapshot of the same cluster
    with **no tags** whose ``SnapshotCreateTime`` is the time of the copy (pessimistic: AWS may
    report either; the worker must keep the data time itself).
AuthorizeSnapshotAccess / RevokeSnapshotAccess
    By ``SnapshotIdentifier`` or ``SnapshotArn`` (optionally ``SnapshotClusterIdentifier``).
    Grants are stored per snapshot. Authorize: missing -> ``ClusterSnapshotNotFound``; not
    ``available`` -> ``InvalidClusterSnapshotState``; automated -> ``UnsupportedOperation``
    (AWS shares manual snapshots only; the exact code is an assumption); already granted ->
    ``AuthorizationAlreadyExists``; a 21st account -> ``AuthorizationQuotaExceeded`` (AWS: "up
    to 20 for each snapshot"); an account that is neither 12 digits nor
    ``amazon-redshift-support``, or the owner account itself -> ``InvalidParameterValue``
    (assumed code). Revoke: missing -> ``ClusterSnapshotNotFound``; not granted ->
    ``AuthorizationNotFound``.
DescribeClusterSnapshots (replaced)
    ``AccountsWithRestoreAccess`` (``{"AccountId": ...}`` for 12-digit ids,
    ``{"AccountAlias": "amazon-redshift-support"}`` for the support alias; absent when there
    is none, as AWS returns null), ``Tags``, ``OwnerAccount``, ``ManualSnapshotRetentionPeriod``
    (manual only). Honours ``MaxRecords`` (20..100, default 100, else ``InvalidParameterValue``),
    ``Marker`` (opaque; a bad one -> ``InvalidParameterValue``), ``SnapshotType``,
    ``ClusterIdentifier`` (unknown -> empty list), ``SnapshotIdentifier``/``SnapshotArn``
    (unknown -> ``ClusterSnapshotNotFound``), ``TagKeys``/``TagValues`` (a snapshot matches when
    one of its tags has a listed key, or a listed value, or with both given a listed key *and*
    a listed value: "any combination", as documented), ``StartTime``/``EndTime`` (inclusive),
    ``OwnerAccount``. Order: ``SnapshotCreateTime`` then ``SnapshotIdentifier``, ascending, so
    paging is deterministic. Times are UTC.
CreateClusterSnapshot (replaced)
    As moto's, plus: identifier rules (``InvalidParameterValue``), a cluster that is not
    ``available`` (e.g. paused) -> ``InvalidClusterState``, ``ManualSnapshotRetentionPeriod``.
DeleteClusterSnapshot (replaced)
    Missing -> ``ClusterSnapshotNotFound``; automated, or in a state other than ``available``,
    ``failed`` or ``cancelled`` (the documented deletable states), or with any account still
    authorized -> ``InvalidClusterSnapshotState``. Returns the snapshot with status ``deleted``.
ModifyClusterSnapshot
    ``ManualSnapshotRetentionPeriod`` of a manual, ``available`` snapshot (missing ->
    ``ClusterSnapshotNotFound``; automated or not available -> ``InvalidClusterSnapshotState``;
    not -1 or 1..3653 -> ``InvalidRetentionPeriodFault``). A period that has already passed
    (counted from ``SnapshotCreateTime``) is refused with ``InvalidRetentionPeriodFault``
    unless ``Force`` is true, which deletes the snapshot at once, as documented. AWS lists
    "other accounts are authorized" under ``InvalidClusterSnapshotState`` for this call too;
    that generic wording is not enforced here (an assumption).
DescribeClusters (paged)
    moto's answer, ordered by ``ClusterIdentifier`` and paged by ``MaxRecords`` (20..100,
    default 100) and an opaque ``Marker``, so that a run's DescribeClusters calls can be
    counted against ceil(clusters / 100).
RestoreFromClusterSnapshot
    Refused with ``InvalidClusterSnapshotState`` unless the snapshot is ``available``; a
    ``ClusterIdentifier`` breaking AWS's rules (1..63 lowercase letters, digits, hyphens; first
    a letter; no ``--``, no trailing hyphen) -> ``InvalidParameterValue``. The API takes no
    tags, so the new cluster starts untagged (moto copied the snapshot's tags). It is
    ``creating`` for the next *n* DescribeClusters calls (:func:`set_restore_polls`, default
    1), then ``available``.
GetClusterCredentials
    As moto's (``IAM:``/``IAMA:`` prefix, DurationSeconds 900..3600), plus
    ``InvalidClusterState`` for a cluster that is not ``available``. Every password issued is
    remembered (:func:`issued_passwords`, :func:`reset_issued_passwords`) so that tests can
    search logs, reports and the state DB for it.
Backend fix
    ``RedshiftBackend.describe_cluster_snapshots`` filters exactly (moto returned every snapshot
    for a cluster without snapshots, so DeleteCluster could drop *all* automated snapshots of
    the account).

"creating" state: :func:`set_creating_polls` (or ``SNAPWORKER_MOTO_CREATING_POLLS``, read by
:func:`install`; default 0 = ``available`` at once) makes snapshots made by
CreateClusterSnapshot and CopyClusterSnapshot start ``creating``; the first *n*
DescribeClusterSnapshots responses that include such a snapshot show it ``creating``, and it is
``available`` from the next one on. Their Create/Copy response shows the status they start in.
:func:`settle_all` makes every snapshot ``available`` at once.

Call counting: every Redshift request that reaches moto is counted by operation name
(:func:`call_counts`, :func:`reset_call_counts`), errors included; thread-safe. Over HTTP, wrap
the server's WSGI app with :func:`admin_middleware` (``snapworker.sandbox.server.serve`` does):
``GET /_snapworker/calls`` returns the counts as JSON, ``DELETE /_snapworker/calls`` resets
them, ``POST /_snapworker/settle`` runs :func:`settle_all`, ``POST
/_snapworker/creating-polls?n=N`` runs :func:`set_creating_polls`; ``/_snapworker/faults``:
see fault injection below.

Helpers that work on the backend directly (no API call, not counted): :func:`backend`,
:func:`add_automated_snapshot`, :func:`add_manual_snapshot`, :func:`set_cluster_status`,
:func:`set_snapshot_status`, :func:`authorized_accounts`, :func:`drop_snapshot`.

Fault injection (server mode only): faults are injected *server-side*, in
:func:`admin_middleware`, on the HTTP requests that reach the sandbox, so that the worker is
tested end to end with its real botocore client (real sockets, real retry handling) and the
same plan works whatever process the client runs in. A :class:`FaultPlan` (set in-process with
:func:`set_fault_plan`, or ``POST /_snapworker/faults`` with the plan as JSON: ``seed``, ``rate``,
``kinds``, ``operations``, ``snapshots``, ``max_consecutive``, ``max_timeouts``,
``stall_seconds``) decides, from a ``random.Random(seed)`` drawn once per matching Redshift
request, whether that request fails and how (see :data:`FAULT_KINDS`):

- ``throttling`` (400 ``Throttling``), ``internal`` (500 ``InternalFailure``), ``unavailable``
  (503 ``ServiceUnavailable``): an error response; the request is not processed.
- ``reset``: the connection is dropped with a TCP reset and no response; not processed
  (the request never reached the service).
- ``timeout``: the request *is* processed, then the server stalls ``stall_seconds`` before
  answering, so a client whose read timeout is shorter gives up and retries a call that
  succeeded (the answer was lost). At most ``max_timeouts`` per plan: each costs real time.
- ``busy``: Redshift's "try later" state faults, only on the operations that have one:
  CreateClusterSnapshot -> ``InvalidClusterState``, CopyClusterSnapshot ->
  ``InvalidClusterSnapshotState``.
- permanent faults, meant to be aimed at one operation and snapshot with ``rate`` 1:
  ``access-denied`` (403 ``AccessDenied``), ``invalid-parameter`` (``InvalidParameterValue``),
  ``quota-exceeded`` (``ClusterSnapshotQuotaExceeded``), ``unauthorized``
  (``UnauthorizedOperation``).

``operations`` and ``snapshots`` (empty: all) restrict the requests a plan applies to;
``max_consecutive`` (0: no cap) bounds the faults in a row on one request (same operation,
snapshot and account), so a transient plan can be made to always let a call through within
the client's retry budget. The "creating for several ticks" and "busy cluster for a while"
conditions are separate tools: :func:`set_creating_polls` and :func:`set_cluster_status`.
Every Redshift request through the middleware is also logged by (operation, target) —
faulted or not — so tests can bound the HTTP calls made for one action:
:func:`fault_report` (``GET /_snapworker/faults``) returns the plan, faults injected by kind
and the request counts; :func:`clear_faults` (``DELETE /_snapworker/faults``) removes the plan
and zeroes the counts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import os
import random
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, BaseResponse

if TYPE_CHECKING:
    from moto.redshift.models import RedshiftBackend, Snapshot

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_REGION",
    "ENV_CREATING_POLLS",
    "FAULT_KINDS",
    "MAX_ACCOUNTS_PER_SNAPSHOT",
    "SUPPORT_ALIAS",
    "TRANSIENT_FAULT_KINDS",
    "FaultPlan",
    "RedshiftFault",
    "add_automated_snapshot",
    "add_manual_snapshot",
    "admin_middleware",
    "authorized_accounts",
    "automated_snapshot_id",
    "backend",
    "call_counts",
    "clear_faults",
    "drop_snapshot",
    "fault_report",
    "get_creating_polls",
    "install",
    "is_installed",
    "issued_passwords",
    "reset_call_counts",
    "reset_issued_passwords",
    "set_cluster_status",
    "set_creating_polls",
    "set_fault_plan",
    "set_restore_polls",
    "set_snapshot_status",
    "settle_all",
    "uninstall",
]

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
ENV_CREATING_POLLS = "SNAPWORKER_MOTO_CREATING_POLLS"
SUPPORT_ALIAS = "amazon-redshift-support"
MAX_ACCOUNTS_PER_SNAPSHOT = 20  # "You can authorize up to 20 for each snapshot"
MAX_RECORDS_MIN, MAX_RECORDS_MAX, MAX_RECORDS_DEFAULT = 20, 100, 100
DELETABLE_STATES = ("available", "failed", "cancelled")

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_IDENTIFIER = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|-(?!-))*$")

# Extra state kept on moto's Snapshot objects (plain attributes, read with defaults so that
# snapshots made before install() work too).
_ACCOUNTS = "sw_accounts_with_restore_access"
_POLLS_LEFT = "sw_creating_polls_left"
_RETENTION = "manual_snapshot_retention_period"

_CLUSTER_IDENTIFIER = re.compile(r"^(?=.{1,63}$)[a-z](?:[a-z0-9]|-(?!-))*(?<!-)$")
_RESTORE_POLLS_LEFT = "sw_restore_polls_left"
_ISSUED_PASSWORDS: list[str] = []
_restore_polls = 1
_LOCK = threading.RLock()  # serialises the extension's handlers (the server is threaded)
_COUNT_LOCK = threading.Lock()
_COUNTS: Counter[str] = Counter()
_creating_polls = 0
_installed = False
_originals: dict[tuple[type, str], Any] = {}


class RedshiftFault(ServiceException):
    """A Redshift error with its wire code (no ``Fault`` suffix, as AWS sends it).

    moto takes the HTTP status from botocore's model for the code (404 for the NotFound ones).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def _not_found(snapshot_id: str) -> RedshiftFault:
    return RedshiftFault("ClusterSnapshotNotFound", f"Snapshot {snapshot_id} not found.")


def _invalid(message: str) -> RedshiftFault:
    return RedshiftFault("InvalidParameterValue", message)


# ---------------------------------------------------------------------------------------------
# settings and counters


def set_creating_polls(n: int) -> None:
    """New snapshots (Create/Copy) stay ``creating`` for the next *n* describes that show them."""
    global _creating_polls
    if n < 0:
        raise ValueError("creating polls must be >= 0")
    _creating_polls = int(n)


def get_creating_polls() -> int:
    return _creating_polls


def call_counts() -> dict[str, int]:
    """Redshift API calls that reached moto since the last reset, by operation name."""
    with _COUNT_LOCK:
        return dict(_COUNTS)


def reset_call_counts() -> None:
    with _COUNT_LOCK:
        _COUNTS.clear()


def _count(action: str) -> None:
    with _COUNT_LOCK:
        _COUNTS[action] += 1


# ---------------------------------------------------------------------------------------------
# backend access and helpers


def backend(account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> RedshiftBackend:
    """moto's Redshift backend for an account and region (what the API calls act on)."""
    from moto.redshift.models import redshift_backends

    return redshift_backends[account_id][region]


def _all_backends() -> Iterator[RedshiftBackend]:
    from moto.redshift.models import redshift_backends

    for regions in list(redshift_backends.values()):
        yield from list(regions.values())


def _to_naive_utc(when: datetime) -> datetime:
    """moto keeps naive UTC datetimes; an aware one is converted, a naive one taken as UTC."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def _aware_utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def automated_snapshot_id(cluster_id: str, create_time: datetime) -> str:
    """AWS's automated snapshot id, ``rs:<cluster>-YYYY-MM-DD-HH-MM`` (UTC)."""
    return f"rs:{cluster_id}-{_aware_utc(create_time).strftime('%Y-%m-%d-%H-%M')}"


def _make_snapshot(
    be: RedshiftBackend,
    source: Any,
    snapshot_id: str,
    *,
    snapshot_type: str,
    tags: Sequence[dict[str, str]] | None,
) -> Snapshot:
    from moto.redshift.models import Snapshot

    if snapshot_id in be.snapshots:
        raise RedshiftFault(
            "ClusterSnapshotAlreadyExists",
            "Cannot create the snapshot because a snapshot with the identifier "
            f"{snapshot_id} already exists",
        )
    snap = Snapshot(
        source,
        snapshot_id,
        be.account_id,
        be.region_name,
        [dict(t) for t in tags] if tags else None,
        snapshot_type=snapshot_type,
    )
    be.snapshots[snapshot_id] = snap
    return snap


def _cluster_or_standin(be: RedshiftBackend, cluster_id: str) -> Any:
    cluster = be.clusters.get(cluster_id)
    if cluster is not None:
        return cluster
    # A manual snapshot can outlive its cluster: describe it with plausible defaults.
    return SimpleNamespace(
        cluster_identifier=cluster_id,
        port=5439,
        availability_zone=f"{be.region_name}a",
        master_username="admin",
        master_user_password="",
        cluster_version="1.0",
        node_type="ra3.xlplus",
        number_of_nodes=1,
        db_name="dev",
        enhanced_vpc_routing=False,
        encrypted=False,
    )


def _tag_list(tags: dict[str, str] | Sequence[dict[str, str]] | None) -> list[dict[str, str]]:
    if not tags:
        return []
    if isinstance(tags, dict):
        return [{"Key": k, "Value": v} for k, v in tags.items()]
    return [dict(t) for t in tags]


def add_automated_snapshot(
    be: RedshiftBackend,
    cluster_id: str,
    *,
    create_time: datetime,
    snapshot_id: str | None = None,
    status: str = "available",
) -> Snapshot:
    """Add an (optionally back-dated) automated snapshot of an existing cluster.

    The id defaults to ``rs:<cluster>-YYYY-MM-DD-HH-MM`` from *create_time* (aware, or naive
    taken as UTC). Raises ``RedshiftFault`` for an unknown cluster or a duplicate id.
    """
    with _LOCK:
        cluster = be.clusters.get(cluster_id)
        if cluster is None:
            raise RedshiftFault("ClusterNotFound", f"Cluster {cluster_id} not found.")
        sid = snapshot_id or automated_snapshot_id(cluster_id, create_time)
        snap = _make_snapshot(be, cluster, sid, snapshot_type="automated", tags=None)
        snap.create_time = _to_naive_utc(create_time)
        snap.status = status
        return snap


def add_manual_snapshot(
    be: RedshiftBackend,
    cluster_id: str,
    snapshot_id: str,
    *,
    create_time: datetime | None = None,
    tags: dict[str, str] | Sequence[dict[str, str]] | None = None,
    status: str = "available",
    accounts: Iterable[str] = (),
    retention_period: int = -1,
) -> Snapshot:
    """Add an (optionally back-dated, tagged, shared) manual snapshot.

    *tags* is a ``{key: value}`` dict or a list of ``{"Key", "Value"}``. The cluster need not
    exist (manual snapshots outlive their cluster). *accounts* are granted restore access.
    """
    with _LOCK:
        source = _cluster_or_standin(be, cluster_id)
        snap = _make_snapshot(be, source, snapshot_id, snapshot_type="manual", tags=_tag_list(tags))
        if create_time is not None:
            snap.create_time = _to_naive_utc(create_time)
        snap.status = status
        setattr(snap, _RETENTION, retention_period)
        setattr(snap, _ACCOUNTS, list(dict.fromkeys(accounts)))
        return snap


def set_cluster_status(be: RedshiftBackend, cluster_id: str, status: str) -> None:
    """Set a cluster's ``ClusterStatus`` (e.g. ``paused``, ``modifying``)."""
    with _LOCK:
        be.clusters[cluster_id].status = status


def set_snapshot_status(be: RedshiftBackend, snapshot_id: str, status: str) -> None:
    """Set a snapshot's ``Status`` (``creating``, ``available``, ``failed``, ...)."""
    with _LOCK:
        snap = be.snapshots[snapshot_id]
        snap.status = status
        if status != "creating":
            setattr(snap, _POLLS_LEFT, 0)


def authorized_accounts(be: RedshiftBackend, snapshot_id: str) -> list[str]:
    """Accounts (and the support alias) granted restore access to a snapshot, in grant order."""
    with _LOCK:
        return list(getattr(be.snapshots[snapshot_id], _ACCOUNTS, []))


def drop_snapshot(be: RedshiftBackend, snapshot_id: str) -> None:
    """Remove a snapshot as AWS itself would (e.g. an automated one past its retention)."""
    with _LOCK:
        be.snapshots.pop(snapshot_id, None)


def settle_all() -> None:
    """Make every ``creating`` snapshot in every account and region ``available``."""
    with _LOCK:
        for be in _all_backends():
            for snap in be.snapshots.values():
                if snap.status == "creating":
                    snap.status = "available"
                setattr(snap, _POLLS_LEFT, 0)


# ---------------------------------------------------------------------------------------------
# serialisation


def _grant_entry(account: str) -> dict[str, str]:
    if _ACCOUNT_ID.match(account):
        return {"AccountId": account}
    return {"AccountAlias": account}


def _snapshot_view(snap: Snapshot, status: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "SnapshotIdentifier": snap.snapshot_identifier,
        "ClusterIdentifier": snap.cluster_identifier,
        "SnapshotCreateTime": _aware_utc(snap.create_time),
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
    accounts = getattr(snap, _ACCOUNTS, [])
    if accounts:
        view["AccountsWithRestoreAccess"] = [_grant_entry(a) for a in accounts]
    if snap.snapshot_type == "manual":
        view["ManualSnapshotRetentionPeriod"] = getattr(snap, _RETENTION, -1)
    return view


def _encode_marker(snap: Snapshot) -> str:
    raw = json.dumps([_aware_utc(snap.create_time).isoformat(), snap.snapshot_identifier])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_marker(marker: str) -> tuple[datetime, str]:
    try:
        padded = marker + "=" * (-len(marker) % 4)
        when, sid = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        return datetime.fromisoformat(when), str(sid)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise _invalid(f"Invalid marker: {marker}") from exc


def _sort_key(snap: Snapshot) -> tuple[datetime, str]:
    return _aware_utc(snap.create_time), snap.snapshot_identifier


# ---------------------------------------------------------------------------------------------
# request helpers


def _param(resp: Any, name: str, default: Any = None) -> Any:
    value = resp._get_param(name)
    return default if value is None or value == "" else value


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):  # {"TagKey": [...]} shapes, should the parser keep the wrapper
        out: list[str] = []
        for v in value.values():
            out.extend(_str_list(v))
        return out
    return [str(v) for v in value]


def _time_param(resp: Any, name: str) -> datetime | None:
    value = _param(resp, name)
    if value is None:
        return None
    if isinstance(value, datetime):
        return _aware_utc(value)
    try:
        from botocore.utils import parse_timestamp

        return _aware_utc(parse_timestamp(value))
    except (ValueError, TypeError) as exc:
        raise _invalid(f"Invalid value for {name}: {value}") from exc


def _int_param(resp: Any, name: str) -> int | None:
    value = _param(resp, name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _invalid(f"Invalid value for {name}: {value}") from exc


def _snapshot_id_from(resp: Any, id_param: str = "SnapshotIdentifier") -> str:
    sid = _param(resp, id_param)
    if sid:
        return str(sid)
    arn = _param(resp, "SnapshotArn")
    if arn:
        # arn:aws:redshift:REGION:ACCOUNT:snapshot:CLUSTER/SNAPSHOT
        tail = str(arn).split(":snapshot:", 1)[-1]
        return tail.split("/", 1)[-1]
    raise _invalid("A snapshot identifier or a snapshot ARN is required.")


def _lookup(be: RedshiftBackend, snapshot_id: str, cluster_id: str | None) -> Snapshot:
    snap = be.snapshots.get(snapshot_id)
    if snap is None or (cluster_id and snap.cluster_identifier != cluster_id):
        raise _not_found(snapshot_id)
    return snap


def _check_identifier(value: str | None, what: str) -> str:
    if not value or len(value) > 255 or not _IDENTIFIER.match(value) or value.endswith("-"):
        raise _invalid(
            f"{what} must contain from 1 to 255 alphanumeric characters or hyphens, begin with "
            "a letter, and cannot end with a hyphen or contain two consecutive hyphens: "
            f"{value!r}"
        )
    return value


def _check_retention(value: int | None) -> int:
    if value is None:
        return -1
    if value != -1 and not 1 <= value <= 3653:
        raise RedshiftFault(
            "InvalidRetentionPeriodFault",
            "The retention period must be either -1 or an integer between 1 and 3,653.",
        )
    return value


def _start_creating(snap: Snapshot) -> None:
    n = _creating_polls
    setattr(snap, _POLLS_LEFT, n)
    snap.status = "creating" if n > 0 else "available"


def _tag_match(snap: Snapshot, keys: list[str], values: list[str]) -> bool:
    if not keys and not values:
        return True
    return any(
        (not keys or t["Key"] in keys) and (not values or t["Value"] in values) for t in snap.tags
    )


# ---------------------------------------------------------------------------------------------
# the handlers (installed as RedshiftResponse methods)


def _locked(fn: Callable[[Any], ActionResult]) -> Callable[[Any], ActionResult]:
    def handler(self: Any) -> ActionResult:
        with _LOCK:
            return fn(self)

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


def _create_cluster_snapshot(self: Any) -> ActionResult:
    """CreateClusterSnapshot: moto's, plus id rules, cluster state, retention, creating."""
    be = self.redshift_backend
    sid = _check_identifier(_param(self, "SnapshotIdentifier"), "SnapshotIdentifier")
    cluster_id = _param(self, "ClusterIdentifier")
    retention = _check_retention(_int_param(self, "ManualSnapshotRetentionPeriod"))
    cluster = be.clusters.get(cluster_id)
    if cluster is None:
        raise RedshiftFault("ClusterNotFound", f"Cluster {cluster_id} not found.")
    if cluster.status != "available":
        raise RedshiftFault(
            "InvalidClusterState",
            f"The cluster {cluster_id} is in state {cluster.status}; a snapshot can only be "
            "taken of an available cluster.",
        )
    tags = self._get_param("Tags", []) or []
    snap = _make_snapshot(be, cluster, sid, snapshot_type="manual", tags=tags)
    setattr(snap, _RETENTION, retention)
    setattr(snap, _ACCOUNTS, [])
    _start_creating(snap)
    return ActionResult({"Snapshot": _snapshot_view(snap)})


def _copy_cluster_snapshot(self: Any) -> ActionResult:
    """CopyClusterSnapshot: an available automated snapshot -> a new, untagged manual one."""
    be = self.redshift_backend
    source_id = _param(self, "SourceSnapshotIdentifier")
    if not source_id:
        raise _invalid("SourceSnapshotIdentifier is required.")
    source = _lookup(be, str(source_id), _param(self, "SourceSnapshotClusterIdentifier"))
    if source.snapshot_type != "automated" or source.status != "available":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Snapshot {source_id} must be an automated snapshot in the available state to be "
            f"copied (it is {source.snapshot_type}, {source.status}).",
        )
    target_id = _check_identifier(
        _param(self, "TargetSnapshotIdentifier"), "TargetSnapshotIdentifier"
    )
    retention = _check_retention(_int_param(self, "ManualSnapshotRetentionPeriod"))
    # The copy's attributes come from the source snapshot; its create time is now.
    snap = _make_snapshot(be, source, target_id, snapshot_type="manual", tags=None)
    setattr(snap, _RETENTION, retention)
    setattr(snap, _ACCOUNTS, [])
    _start_creating(snap)
    return ActionResult({"Snapshot": _snapshot_view(snap)})


def _authorize_snapshot_access(self: Any) -> ActionResult:
    """AuthorizeSnapshotAccess: grant an account (or the support alias) restore access."""
    be = self.redshift_backend
    sid = _snapshot_id_from(self)
    account = str(_param(self, "AccountWithRestoreAccess", ""))
    snap = _lookup(be, sid, _param(self, "SnapshotClusterIdentifier"))
    if snap.status != "available":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Snapshot {sid} is in state {snap.status}; only an available snapshot can be shared.",
        )
    if snap.snapshot_type != "manual":
        raise RedshiftFault(
            "UnsupportedOperation", f"Only manual snapshots can be shared; {sid} is automated."
        )
    if not (_ACCOUNT_ID.match(account) or account == SUPPORT_ALIAS):
        raise _invalid(
            f"Invalid account {account!r}: give a 12-digit AWS account id or {SUPPORT_ALIAS}."
        )
    if account == snap.account_id:
        raise _invalid(f"Account {account} owns snapshot {sid} and always has access to it.")
    accounts: list[str] = getattr(snap, _ACCOUNTS, [])
    if account in accounts:
        raise RedshiftFault(
            "AuthorizationAlreadyExists",
            f"Account {account} is already authorized to restore snapshot {sid}.",
        )
    if len(accounts) >= MAX_ACCOUNTS_PER_SNAPSHOT:
        raise RedshiftFault(
            "AuthorizationQuotaExceeded",
            f"Snapshot {sid} is already shared with {MAX_ACCOUNTS_PER_SNAPSHOT} accounts, "
            "the most allowed.",
        )
    setattr(snap, _ACCOUNTS, [*accounts, account])
    return ActionResult({"Snapshot": _snapshot_view(snap)})


def _revoke_snapshot_access(self: Any) -> ActionResult:
    """RevokeSnapshotAccess: remove a grant made by AuthorizeSnapshotAccess."""
    be = self.redshift_backend
    sid = _snapshot_id_from(self)
    account = str(_param(self, "AccountWithRestoreAccess", ""))
    snap = _lookup(be, sid, _param(self, "SnapshotClusterIdentifier"))
    accounts: list[str] = getattr(snap, _ACCOUNTS, [])
    if account not in accounts:
        raise RedshiftFault(
            "AuthorizationNotFound",
            f"Account {account} is not authorized to restore snapshot {sid}.",
        )
    setattr(snap, _ACCOUNTS, [a for a in accounts if a != account])
    return ActionResult({"Snapshot": _snapshot_view(snap)})


def _delete_cluster_snapshot(self: Any) -> ActionResult:
    """DeleteClusterSnapshot: manual, deletable state, and no account authorized."""
    be = self.redshift_backend
    sid = str(_param(self, "SnapshotIdentifier", ""))
    snap = _lookup(be, sid, _param(self, "SnapshotClusterIdentifier"))
    if snap.snapshot_type == "automated":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Cannot delete the snapshot {sid} because only manual snapshots may be deleted",
        )
    if snap.status not in DELETABLE_STATES:
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Cannot delete the snapshot {sid} because it is in state {snap.status}.",
        )
    if getattr(snap, _ACCOUNTS, []):
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Cannot delete the snapshot {sid} because other accounts are authorized to "
            "access it; revoke every authorization first.",
        )
    del be.snapshots[sid]
    return ActionResult({"Snapshot": _snapshot_view(snap, status="deleted")})


def _modify_cluster_snapshot(self: Any) -> ActionResult:
    """ModifyClusterSnapshot: a manual snapshot's ManualSnapshotRetentionPeriod."""
    be = self.redshift_backend
    sid = str(_param(self, "SnapshotIdentifier", ""))
    snap = _lookup(be, sid, None)
    if snap.snapshot_type != "manual":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Snapshot {sid} is an automated snapshot; only a manual snapshot has a manual "
            "snapshot retention period.",
        )
    if snap.status != "available":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Snapshot {sid} is in state {snap.status}; it must be available.",
        )
    if _param(self, "ManualSnapshotRetentionPeriod") is None:
        return ActionResult({"Snapshot": _snapshot_view(snap)})
    retention = _check_retention(_int_param(self, "ManualSnapshotRetentionPeriod"))
    force = str(_param(self, "Force", "false")).lower() == "true"
    age = datetime.now(UTC) - _aware_utc(snap.create_time)
    if retention != -1 and age > timedelta(days=retention):
        if not force:
            raise RedshiftFault(
                "InvalidRetentionPeriodFault",
                f"The retention period of {retention} days has already passed for snapshot "
                f"{sid}; specify Force to delete it now.",
            )
        del be.snapshots[sid]
        return ActionResult({"Snapshot": _snapshot_view(snap, status="deleted")})
    setattr(snap, _RETENTION, retention)
    return ActionResult({"Snapshot": _snapshot_view(snap)})


def _describe_cluster_snapshots(self: Any) -> ActionResult:
    """DescribeClusterSnapshots with filters, grants, tags and MaxRecords/Marker paging."""
    be = self.redshift_backend
    max_records = _int_param(self, "MaxRecords")
    if max_records is None:
        max_records = MAX_RECORDS_DEFAULT
    if not MAX_RECORDS_MIN <= max_records <= MAX_RECORDS_MAX:
        raise _invalid(
            f"MaxRecords must be between {MAX_RECORDS_MIN} and {MAX_RECORDS_MAX}: {max_records}"
        )
    marker = _param(self, "Marker")
    after = _decode_marker(str(marker)) if marker else None

    snapshot_id = _param(self, "SnapshotIdentifier")
    if not snapshot_id and _param(self, "SnapshotArn"):
        snapshot_id = _snapshot_id_from(self)
    if snapshot_id and snapshot_id not in be.snapshots:
        raise _not_found(str(snapshot_id))
    cluster_id = _param(self, "ClusterIdentifier")
    snapshot_type = _param(self, "SnapshotType")
    if snapshot_type and snapshot_type not in ("automated", "manual"):
        raise _invalid(f"Invalid snapshot type {snapshot_type}: use automated or manual.")
    owner = _param(self, "OwnerAccount")
    start, end = _time_param(self, "StartTime"), _time_param(self, "EndTime")
    keys = _str_list(_param(self, "TagKeys"))
    values = _str_list(_param(self, "TagValues"))

    def wanted(s: Snapshot) -> bool:
        created = _aware_utc(s.create_time)
        return (
            (not snapshot_id or s.snapshot_identifier == snapshot_id)
            and (not cluster_id or s.cluster_identifier == cluster_id)
            and (not snapshot_type or s.snapshot_type == snapshot_type)
            and (not owner or s.account_id == owner)
            and (start is None or created >= start)
            and (end is None or created <= end)
            and _tag_match(s, keys, values)
        )

    matched = sorted((s for s in be.snapshots.values() if wanted(s)), key=_sort_key)
    if after is not None:
        after_key = (_aware_utc(after[0]), after[1])
        matched = [s for s in matched if _sort_key(s) > after_key]
    page, rest = matched[:max_records], matched[max_records:]

    views = []
    for snap in page:
        views.append(_snapshot_view(snap))
        left = int(getattr(snap, _POLLS_LEFT, 0))
        if snap.status == "creating" and left > 0:
            left -= 1
            setattr(snap, _POLLS_LEFT, left)
            if left == 0:
                snap.status = "available"  # from the next describe on
    result: dict[str, Any] = {"Snapshots": views}
    if rest:
        result["Marker"] = _encode_marker(page[-1])
    return ActionResult(result)


def _describe_clusters_paged(self: Any) -> ActionResult:
    """DescribeClusters with MaxRecords/Marker paging (moto returns one page, always), by
    ClusterIdentifier ascending; the marker is opaque, as on AWS. A listing's first page
    (no marker) also advances restored clusters (:func:`_describe_clusters`), once per listing
    whatever its number of pages."""
    max_records = _int_param(self, "MaxRecords")
    if max_records is None:
        max_records = MAX_RECORDS_DEFAULT
    if not MAX_RECORDS_MIN <= max_records <= MAX_RECORDS_MAX:
        raise _invalid(
            f"MaxRecords must be between {MAX_RECORDS_MIN} and {MAX_RECORDS_MAX}: {max_records}"
        )
    marker = _param(self, "Marker")
    after: str | None = None
    if marker:
        try:
            padded = str(marker) + "=" * (-len(str(marker)) % 4)
            after = base64.urlsafe_b64decode(padded.encode()).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise _invalid(f"Invalid marker: {marker}") from exc
    if after is None:
        result = _describe_clusters(self)
    else:
        result = _originals[(_response_cls(), "describe_clusters")](self)
    clusters = sorted(result.result["Clusters"], key=lambda c: c.cluster_identifier)  # type: ignore[index]
    if after is not None:
        clusters = [c for c in clusters if c.cluster_identifier > after]
    page, rest = clusters[:max_records], clusters[max_records:]
    out: dict[str, Any] = {"Clusters": page}
    if rest:
        last = page[-1].cluster_identifier
        out["Marker"] = base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")
    return ActionResult(out)


def _restore_from_cluster_snapshot(self: Any) -> ActionResult:
    """RestoreFromClusterSnapshot: refused unless the snapshot is available."""
    be = self.redshift_backend
    sid = str(_param(self, "SnapshotIdentifier", "")) or _snapshot_id_from(self)
    snap = _lookup(be, sid, _param(self, "SnapshotClusterIdentifier"))
    if snap.status != "available":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Snapshot {sid} is in state {snap.status}; only an available snapshot can be "
            "restored.",
        )
    cluster_id = str(_param(self, "ClusterIdentifier", ""))
    if not _CLUSTER_IDENTIFIER.match(cluster_id):
        raise RedshiftFault(
            "InvalidParameterValue",
            "ClusterIdentifier must contain from 1 to 63 lowercase alphanumeric characters or "
            "hyphens, begin with a letter, and cannot end with a hyphen or contain two "
            f"consecutive hyphens: {cluster_id!r}",
        )
    original = _originals[(_response_cls(), "restore_from_cluster_snapshot")]
    result: ActionResult = original(self)
    cluster = be.clusters.get(cluster_id)
    if cluster is not None:
        # RestoreFromClusterSnapshot takes no Tags: the new cluster starts untagged (moto
        # copied the snapshot's tags), then is `creating` until the restore completes.
        cluster.tags = []
        setattr(cluster, _RESTORE_POLLS_LEFT, _restore_polls)
        cluster.status = "creating" if _restore_polls > 0 else "available"
    return result


def _describe_clusters(self: Any) -> ActionResult:
    """DescribeClusters: as moto's, plus a restored cluster's ``creating`` -> ``available``
    (see :func:`set_restore_polls`)."""
    be = self.redshift_backend
    for cluster in be.clusters.values():
        if cluster.status != "creating" or not hasattr(cluster, _RESTORE_POLLS_LEFT):
            continue
        left = int(getattr(cluster, _RESTORE_POLLS_LEFT))
        if left <= 0:
            cluster.status = "available"
        else:
            setattr(cluster, _RESTORE_POLLS_LEFT, left - 1)
    original = _originals[(_response_cls(), "describe_clusters")]
    result: ActionResult = original(self)
    return result


def _get_cluster_credentials(self: Any) -> ActionResult:
    """GetClusterCredentials: as moto's (IAM:/IAMA: prefix, DurationSeconds 900..3600), plus
    AWS's refusal on a cluster that is not ``available``; remembers each password issued
    (:func:`issued_passwords`) so tests can prove it never leaks."""
    be = self.redshift_backend
    cluster_id = str(_param(self, "ClusterIdentifier", ""))
    cluster = be.clusters.get(cluster_id)
    if cluster is not None and cluster.status != "available":
        raise RedshiftFault(
            "InvalidClusterState",
            f"The cluster {cluster_id} is in state {cluster.status}; credentials can only be "
            "issued for an available cluster.",
        )
    original = _originals[(_response_cls(), "get_cluster_credentials")]
    result: ActionResult = original(self)
    data = result.result if isinstance(result, ActionResult) else None
    password = data.get("DbPassword") if isinstance(data, dict) else None
    if isinstance(password, str):
        with _COUNT_LOCK:
            _ISSUED_PASSWORDS.append(password)
    return result


def set_restore_polls(n: int) -> None:
    """A restored cluster stays ``creating`` for the next *n* DescribeClusters calls."""
    global _restore_polls
    if n < 0:
        raise ValueError("restore polls must be >= 0")
    _restore_polls = int(n)


def issued_passwords() -> list[str]:
    """Every DbPassword GetClusterCredentials returned since the last reset (for tests)."""
    with _COUNT_LOCK:
        return list(_ISSUED_PASSWORDS)


def reset_issued_passwords() -> None:
    with _COUNT_LOCK:
        _ISSUED_PASSWORDS.clear()


def _fixed_backend_describe(
    self: Any,
    cluster_identifier: str | None = None,
    snapshot_identifier: str | None = None,
    snapshot_type: str | None = None,
) -> list[Snapshot]:
    """Exact filtering (moto returned every snapshot for a cluster with none of its own)."""
    if snapshot_identifier and snapshot_identifier not in self.snapshots:
        raise _not_found(snapshot_identifier)
    return [
        s
        for s in self.snapshots.values()
        if (not cluster_identifier or s.cluster_identifier == cluster_identifier)
        and (not snapshot_identifier or s.snapshot_identifier == snapshot_identifier)
        and (not snapshot_type or s.snapshot_type == snapshot_type)
    ]


def _counting_call_action(self: Any) -> Any:
    _count(str(self._get_action() or "?"))
    return BaseResponse.call_action(self)


# ---------------------------------------------------------------------------------------------
# install / uninstall


def _response_cls() -> type:
    from moto.redshift.responses import RedshiftResponse

    return RedshiftResponse


_RESPONSE_METHODS: dict[str, Callable[[Any], ActionResult]] = {
    "create_cluster_snapshot": _create_cluster_snapshot,
    "copy_cluster_snapshot": _copy_cluster_snapshot,
    "authorize_snapshot_access": _authorize_snapshot_access,
    "revoke_snapshot_access": _revoke_snapshot_access,
    "delete_cluster_snapshot": _delete_cluster_snapshot,
    "modify_cluster_snapshot": _modify_cluster_snapshot,
    "describe_cluster_snapshots": _describe_cluster_snapshots,
    "restore_from_cluster_snapshot": _restore_from_cluster_snapshot,
    "describe_clusters": _describe_clusters_paged,
    "get_cluster_credentials": _get_cluster_credentials,
}

_MISSING = object()


def _patch(cls: type, name: str, value: Any) -> None:
    _originals[(cls, name)] = cls.__dict__.get(name, _MISSING)
    setattr(cls, name, value)


def install() -> None:
    """Apply the extension to moto (idempotent). Reads ``SNAPWORKER_MOTO_CREATING_POLLS``."""
    global _installed
    env = os.environ.get(ENV_CREATING_POLLS)
    if env is not None and env.strip():
        try:
            set_creating_polls(int(env))
        except ValueError as exc:
            raise ValueError(f"{ENV_CREATING_POLLS} must be an integer >= 0: {env!r}") from exc
    with _LOCK:
        if _installed:
            return
        from moto.redshift.models import RedshiftBackend

        response_cls = _response_cls()
        for name, fn in _RESPONSE_METHODS.items():
            _patch(response_cls, name, _locked(fn))
        _patch(response_cls, "call_action", _counting_call_action)
        _patch(RedshiftBackend, "describe_cluster_snapshots", _fixed_backend_describe)
        _installed = True


def uninstall() -> None:
    """Undo :func:`install` (state already in the backends stays)."""
    global _installed
    with _LOCK:
        for (cls, name), original in _originals.items():
            if original is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        _originals.clear()
        _installed = False


def is_installed() -> bool:
    return _installed


# ---------------------------------------------------------------------------------------------
# fault injection (server mode; see the module docstring)

FAULT_KINDS = (
    "throttling",
    "internal",
    "unavailable",
    "reset",
    "timeout",
    "busy",
    "access-denied",
    "invalid-parameter",
    "quota-exceeded",
    "unauthorized",
)
TRANSIENT_FAULT_KINDS = ("throttling", "internal", "unavailable", "reset", "timeout", "busy")

# kind -> (HTTP status, wire code, message); busy and permanent ones may depend on the operation
_ERROR_FAULTS: dict[str, tuple[int, str, str]] = {
    "throttling": (400, "Throttling", "Rate exceeded"),
    "internal": (500, "InternalFailure", "We encountered an internal error. Please try again."),
    "unavailable": (503, "ServiceUnavailable", "Service is unavailable. Please try again later."),
    "access-denied": (
        403,
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/snapworker is not authorized to perform: "
        "redshift:{op} on resource: {target} because no identity-based policy allows the "
        "redshift:{op} action",
    ),
    "invalid-parameter": (400, "InvalidParameterValue", "Invalid parameter value for {op}."),
    "quota-exceeded": (
        400,
        "ClusterSnapshotQuotaExceeded",
        "The request would result in the user exceeding the allowed number of cluster snapshots.",
    ),
    "unauthorized": (
        400,
        "UnauthorizedOperation",
        "Your account is not authorized to perform the requested operation.",
    ),
}
_BUSY_FAULTS: dict[str, tuple[int, str, str]] = {
    "CreateClusterSnapshot": (
        400,
        "InvalidClusterState",
        "The cluster is in state modifying; a snapshot can only be taken of an available cluster.",
    ),
    "CopyClusterSnapshot": (
        400,
        "InvalidClusterSnapshotState",
        "The source snapshot is not in the available state.",
    ),
}


@dataclass(frozen=True)
class FaultPlan:
    """Which Redshift requests fail, and how (see the module docstring)."""

    seed: int = 0
    rate: float = 0.0
    kinds: tuple[str, ...] = ("throttling", "internal", "unavailable", "reset")
    operations: frozenset[str] = frozenset()
    snapshots: frozenset[str] = frozenset()
    max_consecutive: int = 0
    max_timeouts: int = 2
    stall_seconds: float = 1.5

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}: use {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if self.max_consecutive < 0 or self.max_timeouts < 0 or self.stall_seconds < 0:
            raise ValueError("max_consecutive, max_timeouts and stall_seconds must be >= 0")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        allowed = set(cls.__dataclass_fields__)
        extra = set(data) - allowed
        if extra:
            raise ValueError(f"unknown fault plan keys {sorted(extra)}: use {sorted(allowed)}")
        return cls(
            seed=int(data.get("seed", 0)),
            rate=float(data.get("rate", 0.0)),
            kinds=tuple(data.get("kinds", cls.kinds)),
            operations=frozenset(data.get("operations", ())),
            snapshots=frozenset(data.get("snapshots", ())),
            max_consecutive=int(data.get("max_consecutive", 0)),
            max_timeouts=int(data.get("max_timeouts", 2)),
            stall_seconds=float(data.get("stall_seconds", 1.5)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rate": self.rate,
            "kinds": list(self.kinds),
            "operations": sorted(self.operations),
            "snapshots": sorted(self.snapshots),
            "max_consecutive": self.max_consecutive,
            "max_timeouts": self.max_timeouts,
            "stall_seconds": self.stall_seconds,
        }


class _Faults:
    """The active plan, its random stream and what it did (guarded by ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.plan: FaultPlan | None = None
        self.rng = random.Random(0)
        self.injected: Counter[str] = Counter()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.streak: Counter[tuple[str, str]] = Counter()
        self.timeouts = 0


_FAULTS = _Faults()


def set_fault_plan(plan: FaultPlan | None) -> None:
    """Arm *plan* (None: no faults), restarting its random stream; counts are kept."""
    with _FAULTS.lock:
        _FAULTS.plan = plan
        _FAULTS.rng = random.Random(plan.seed if plan else 0)
        _FAULTS.streak.clear()
        _FAULTS.timeouts = 0


def clear_faults() -> None:
    """No plan, and every fault and request count zeroed."""
    with _FAULTS.lock:
        _FAULTS.plan = None
        _FAULTS.injected.clear()
        _FAULTS.requests.clear()
        _FAULTS.streak.clear()
        _FAULTS.timeouts = 0


def fault_report(reset: bool = False) -> dict[str, Any]:
    """The plan, faults injected by kind, and Redshift requests by (operation, target).

    ``requests`` is a list of ``[operation, target, count]``, the target naming the snapshot
    (and account, or listing page) so that one entry is one action's call. With *reset* the
    fault and request counts restart from zero (per-run figures); the plan stays armed.
    """
    with _FAULTS.lock:
        report = {
            "plan": _FAULTS.plan.to_json() if _FAULTS.plan else None,
            "injected": dict(sorted(_FAULTS.injected.items())),
            "requests": [[op, target, n] for (op, target), n in sorted(_FAULTS.requests.items())],
        }
        if reset:
            _FAULTS.requests.clear()
            _FAULTS.injected.clear()
        return report


def _redshift_request(environ: dict[str, Any]) -> dict[str, str] | None:
    """The form parameters of a Redshift query-API request (None for anything else); the body
    is put back for moto to read."""
    if str(environ.get("REQUEST_METHOD", "")).upper() != "POST":
        return None
    if "/redshift/" not in str(environ.get("HTTP_AUTHORIZATION", "")):
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    params = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    return params if params.get("Action") else None


def _target(params: dict[str, str]) -> tuple[str, str]:
    """(snapshot id, request key) of a request: one key per action's call."""
    snapshot = (
        params.get("SnapshotIdentifier")
        or params.get("TargetSnapshotIdentifier")
        or params.get("ResourceName", "").rsplit("/", 1)[-1]
    )
    key = snapshot
    if params.get("AccountWithRestoreAccess"):
        key += " " + params["AccountWithRestoreAccess"]
    if not snapshot:
        key = "page " + params.get("Marker", "1")
    return snapshot, key


def _choose_fault(op: str, params: dict[str, str]) -> tuple[str, str] | None:
    """(kind, request key) of the fault to inject for this request, if any; logs the request."""
    snapshot, key = _target(params)
    with _FAULTS.lock:
        _FAULTS.requests[(op, key)] += 1
        plan = _FAULTS.plan
        if plan is None or plan.rate <= 0:
            return None
        if plan.operations and op not in plan.operations:
            return None
        if plan.snapshots and snapshot not in plan.snapshots:
            return None
        draw = _FAULTS.rng.random()
        kinds = [k for k in plan.kinds if k != "busy" or op in _BUSY_FAULTS]
        if _FAULTS.timeouts >= plan.max_timeouts:
            kinds = [k for k in kinds if k != "timeout"]
        capped = plan.max_consecutive and _FAULTS.streak[(op, key)] >= plan.max_consecutive
        if not kinds or capped or draw >= plan.rate:
            _FAULTS.streak[(op, key)] = 0
            return None
        kind = kinds[_FAULTS.rng.randrange(len(kinds))]
        _FAULTS.streak[(op, key)] += 1
        _FAULTS.injected[kind] += 1
        if kind == "timeout":
            _FAULTS.timeouts += 1
        return kind, key


def _error_body(code: str, message: str, sender: bool) -> bytes:
    from xml.sax.saxutils import escape

    return (
        '<ErrorResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/">'
        f"<Error><Type>{'Sender' if sender else 'Receiver'}</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
        "<RequestId>00000000-0000-0000-0000-snapworker00</RequestId></ErrorResponse>"
    ).encode()


_HTTP_REASONS = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error"}


def _inject(
    kind: str,
    op: str,
    key: str,
    app: WSGIApp,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
) -> Iterable[bytes]:
    if kind == "reset":
        sock = environ.get("werkzeug.socket")
        if sock is not None:  # linger 0, so the final close sends a TCP RST
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # werkzeug treats a ConnectionError from the app as a dropped connection: it writes
        # nothing more and closes the socket.
        raise ConnectionResetError(f"snapworker fault injection: reset {op}")
    if kind == "timeout":
        # Processed now; the answer comes too late for a client with a shorter read timeout.
        started: list[Any] = []
        body = b"".join(app(environ, lambda *args: started.append(args)))
        plan = _FAULTS.plan
        threading.Event().wait(plan.stall_seconds if plan else 1.5)
        start_response(*started[0])
        return [body]
    status, code, message = _BUSY_FAULTS[op] if kind == "busy" else _ERROR_FAULTS[kind]
    data = _error_body(code, message.format(op=op, target=key), status < 500)
    reason = _HTTP_REASONS.get(status, "Service Unavailable")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))],
    )
    return [data]


# ---------------------------------------------------------------------------------------------
# HTTP admin endpoints for server mode

ADMIN_PREFIX = "/_snapworker/"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def admin_middleware(app: WSGIApp) -> WSGIApp:
    """Wrap moto's WSGI app with ``/_snapworker/`` endpoints (see the module docstring)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith(ADMIN_PREFIX):
            params = _redshift_request(environ)
            fault = _choose_fault(params["Action"], params) if params else None
            if params and fault:
                return _inject(fault[0], params["Action"], fault[1], app, environ, start_response)
            return app(environ, start_response)
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        what = path[len(ADMIN_PREFIX) :].strip("/")
        body: Any
        status = "200 OK"
        if what == "calls" and method == "GET":
            body = call_counts()
        elif what == "calls" and method in ("DELETE", "POST"):
            reset_call_counts()
            body = {}
        elif what == "settle" and method == "POST":
            settle_all()
            body = {}
        elif what == "creating-polls" and method == "POST":
            query = parse_qs(str(environ.get("QUERY_STRING", "")))
            try:
                set_creating_polls(int(query.get("n", [""])[0]))
                body = {"creating_polls": get_creating_polls()}
            except ValueError:
                status, body = "400 Bad Request", {"error": "n must be an integer >= 0"}
        elif what == "faults" and method == "GET":
            body = fault_report()
        elif what == "faults" and method == "DELETE":
            clear_faults()
            body = {}
        elif what == "faults" and method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                raw = environ["wsgi.input"].read(length) if length > 0 else b"{}"
                plan = FaultPlan.from_json(json.loads(raw or b"{}"))
                set_fault_plan(plan)
                body = {"plan": plan.to_json()}
            except (ValueError, TypeError, AttributeError) as exc:
                status, body = "400 Bad Request", {"error": f"bad fault plan: {exc}"}
        else:
            status, body = "404 Not Found", {"error": f"no such endpoint: {method} {path}"}
        data = json.dumps(body, sort_keys=True).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return wrapped
