"""Sharing a manual snapshot with other accounts (moto has no sharing at all).

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

DescribeClusterSnapshots then returns the grants as ``AccountsWithRestoreAccess``
(``{"AccountId": ...}`` for 12-digit ids, ``{"AccountAlias": "amazon-redshift-support"}``
for the support alias), and DeleteClusterSnapshot refuses a snapshot that still has one.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult

from snapworker.core.accounts import SUPPORT_ALIAS
from snapworker.sandbox.moto_ext.common import (
    ACCOUNTS,
    MAX_ACCOUNTS_PER_SNAPSHOT,
    RedshiftFault,
    invalid,
)
from snapworker.sandbox.moto_ext.wire import (
    ACCOUNT_ID,
    lookup,
    param,
    snapshot_id_from,
    snapshot_view,
)


def authorize_snapshot_access(self: Any) -> ActionResult:
    """AuthorizeSnapshotAccess: grant an account (or the support alias) restore access."""
    be = self.redshift_backend
    sid = snapshot_id_from(self)
    account = str(param(self, "AccountWithRestoreAccess", ""))
    snap = lookup(be, sid, param(self, "SnapshotClusterIdentifier"))
    if snap.status != "available":
        raise RedshiftFault(
            "InvalidClusterSnapshotState",
            f"Snapshot {sid} is in state {snap.status}; only an available snapshot can be shared.",
        )
    if snap.snapshot_type != "manual":
        raise RedshiftFault(
            "UnsupportedOperation", f"Only manual snapshots can be shared; {sid} is automated."
        )
    if not (ACCOUNT_ID.match(account) or account == SUPPORT_ALIAS):
        raise invalid(
            f"Invalid account {account!r}: give a 12-digit AWS account id or {SUPPORT_ALIAS}."
        )
    if account == snap.account_id:
        raise invalid(f"Account {account} owns snapshot {sid} and always has access to it.")
    accounts: list[str] = getattr(snap, ACCOUNTS, [])
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
    setattr(snap, ACCOUNTS, [*accounts, account])
    return ActionResult({"Snapshot": snapshot_view(snap)})


def revoke_snapshot_access(self: Any) -> ActionResult:
    """RevokeSnapshotAccess: remove a grant made by AuthorizeSnapshotAccess."""
    be = self.redshift_backend
    sid = snapshot_id_from(self)
    account = str(param(self, "AccountWithRestoreAccess", ""))
    snap = lookup(be, sid, param(self, "SnapshotClusterIdentifier"))
    accounts: list[str] = getattr(snap, ACCOUNTS, [])
    if account not in accounts:
        raise RedshiftFault(
            "AuthorizationNotFound",
            f"Account {account} is not authorized to restore snapshot {sid}.",
        )
    setattr(snap, ACCOUNTS, [a for a in accounts if a != account])
    return ActionResult({"Snapshot": snapshot_view(snap)})
