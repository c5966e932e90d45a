"""What every part of the extension shares: AWS's limits, the lock, the error type, the extra
attributes kept on moto's objects, UTC helpers, and moto's methods as they were before
``install()`` replaced them (some handlers wrap moto's own)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core.exceptions import ServiceException

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
MAX_ACCOUNTS_PER_SNAPSHOT = 20  # "You can authorize up to 20 for each snapshot"
MAX_RECORDS_MIN, MAX_RECORDS_MAX, MAX_RECORDS_DEFAULT = 20, 100, 100
DELETABLE_STATES = ("available", "failed", "cancelled")

LOCK = threading.RLock()
"""Serialises the extension's handlers and helpers (moto's server is threaded)."""

# Extra state kept on moto's Snapshot and Cluster objects (plain attributes, read with
# defaults so that snapshots made before install() work too).
ACCOUNTS = "sw_accounts_with_restore_access"
POLLS_LEFT = "sw_creating_polls_left"
RETENTION = "manual_snapshot_retention_period"
RESTORE_POLLS_LEFT = "sw_restore_polls_left"
SIZES = "sw_sizes_mb"  # (TotalBackupSizeInMegaBytes, ActualIncrementalBackupSizeInMegaBytes)

_CLOCK_SHIFT: list[timedelta] = [timedelta(0)]


def set_clock_shift(shift: timedelta) -> None:
    """Move the sandbox's notion of now by *shift* from the wall clock: the create time of
    every snapshot made from then on (``snapworker demo`` moves it to show retention
    expiring copies). Only the sandbox's: no global clock is touched."""
    with LOCK:
        _CLOCK_SHIFT[0] = shift


def clock_shift() -> timedelta:
    return _CLOCK_SHIFT[0]


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RedshiftFault(ServiceException):
    """A Redshift error with its wire code (no ``Fault`` suffix, as AWS sends it).

    moto takes the HTTP status from botocore's model for the code (404 for the NotFound ones).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def not_found(snapshot_id: str) -> RedshiftFault:
    return RedshiftFault("ClusterSnapshotNotFound", f"Snapshot {snapshot_id} not found.")


def invalid(message: str) -> RedshiftFault:
    return RedshiftFault("InvalidParameterValue", message)


def to_naive_utc(when: datetime) -> datetime:
    """moto keeps naive UTC datetimes; an aware one is converted, a naive one taken as UTC."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def aware_utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def response_cls() -> type:
    """moto's ``RedshiftResponse``: it dispatches an action to its method of that name."""
    from moto.redshift.responses import RedshiftResponse

    return RedshiftResponse


ORIGINALS: dict[tuple[type, str], Any] = {}
"""(class, attribute) -> what ``install()`` replaced, so that ``uninstall()`` puts it back."""


def original(name: str) -> Callable[[Any], Any]:
    """moto's own ``RedshiftResponse`` method *name*, as it was before ``install()``."""
    fn: Callable[[Any], Any] = ORIGINALS[(response_cls(), name)]
    return fn
