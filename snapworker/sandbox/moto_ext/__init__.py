"""A small extension that makes moto behave like AWS for Redshift snapshots.

moto 5.x lacks, or gets wrong, the parts of the Redshift API that snapshot lifecycle needs:
CopyClusterSnapshot, AuthorizeSnapshotAccess and RevokeSnapshotAccess are missing, paging
and most listing filters are ignored, snapshots are ``available`` at once. This package fills
them in, faithful to the Redshift API reference and botocore's service model, so that the
tests and the sandbox believe what AWS does. Nothing happens on import: call :func:`install`
(idempotent) to apply it. It patches moto's classes, so it works both in-process
(``moto.mock_aws``) and in a ``moto.server.ThreadedMotoServer`` running in the same process.
Every handler acts in the request's own account and region (moto's
``RedshiftResponse.redshift_backend`` is ``redshift_backends[self.current_account][self.region]``;
an assumed role's credentials map to the role's account), so the same cluster and snapshot ids
in two accounts or regions are two independent snapshots.
moto dispatches an action to the ``RedshiftResponse`` method of the same name in snake case;
:func:`install` sets those methods, and :func:`uninstall` puts moto's back.

Where each part lives (each module's docstring says exactly what AWS behaviour it holds):

- :mod:`.snapshots`: CreateClusterSnapshot, CopyClusterSnapshot, DeleteClusterSnapshot,
  ModifyClusterSnapshot;
- :mod:`.sharing`: AuthorizeSnapshotAccess, RevokeSnapshotAccess (``AccountsWithRestoreAccess``);
- :mod:`.paging`: DescribeClusterSnapshots and DescribeClusters, with ``MaxRecords``/``Marker``
  and the filters;
- :mod:`.restore`: RestoreFromClusterSnapshot and GetClusterCredentials (restore drills);
- :mod:`.lifecycle`: ``creating`` -> ``available``, for new snapshots and restored clusters;
- :mod:`.seeding`: helpers that act on moto's backend directly (seed back-dated snapshots,
  set states), and the fix to moto's backend filter;
- :mod:`.counters`: calls by operation (in all, or by account, region, operation and
  snapshot) and passwords issued, for tests to read;
- :mod:`.faults`: server-side fault injection (:class:`FaultPlan`, which can aim at accounts
  and regions, and make STS refuse AssumeRole of listed roles);
- :mod:`.admin`: the ``/_snapworker/`` HTTP endpoints of the sandbox server;
- :mod:`.wire`: request parameters and the Snapshot response shape;
- :mod:`.common`: AWS's limits, the lock, :class:`RedshiftFault`.

The sandbox is test-side: only ``snapworker demo``, ``snapworker sandbox`` and the tests import
it (moto is the ``sandbox`` extra), never ``run``, ``plan`` or the daemon.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult

from snapworker.core.accounts import SUPPORT_ALIAS
from snapworker.sandbox.moto_ext.admin import ADMIN_PREFIX, admin_middleware
from snapworker.sandbox.moto_ext.common import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    LOCK,
    MAX_ACCOUNTS_PER_SNAPSHOT,
    ORIGINALS,
    RedshiftFault,
    clock_shift,
    response_cls,
    set_clock_shift,
)
from snapworker.sandbox.moto_ext.counters import (
    call_counts,
    call_counts_by_pair,
    counting_call_action,
    issued_passwords,
    reset_call_counts,
    reset_issued_passwords,
)
from snapworker.sandbox.moto_ext.faults import (
    FAULT_KINDS,
    TRANSIENT_FAULT_KINDS,
    FaultPlan,
    clear_faults,
    fault_report,
    requests_by_pair,
    set_fault_plan,
)
from snapworker.sandbox.moto_ext.lifecycle import (
    ENV_CREATING_POLLS,
    get_creating_polls,
    set_creating_polls,
    set_restore_polls,
    settle_all,
)
from snapworker.sandbox.moto_ext.paging import (
    describe_cluster_snapshots,
    describe_clusters_paged,
)
from snapworker.sandbox.moto_ext.restore import (
    get_cluster_credentials,
    restore_from_cluster_snapshot,
)
from snapworker.sandbox.moto_ext.seeding import (
    add_automated_snapshot,
    add_manual_snapshot,
    authorized_accounts,
    automated_snapshot_id,
    backend,
    drop_snapshot,
    fixed_backend_describe,
    set_cluster_status,
    set_snapshot_sizes,
    set_snapshot_status,
)
from snapworker.sandbox.moto_ext.sharing import (
    authorize_snapshot_access,
    revoke_snapshot_access,
)
from snapworker.sandbox.moto_ext.snapshots import (
    copy_cluster_snapshot,
    create_cluster_snapshot,
    delete_cluster_snapshot,
    modify_cluster_snapshot,
)

__all__ = [
    "ADMIN_PREFIX",
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
    "call_counts_by_pair",
    "clear_faults",
    "clock_shift",
    "drop_snapshot",
    "fault_report",
    "get_creating_polls",
    "install",
    "is_installed",
    "issued_passwords",
    "requests_by_pair",
    "reset_call_counts",
    "reset_issued_passwords",
    "set_clock_shift",
    "set_cluster_status",
    "set_creating_polls",
    "set_fault_plan",
    "set_restore_polls",
    "set_snapshot_sizes",
    "set_snapshot_status",
    "settle_all",
    "uninstall",
]

_RESPONSE_METHODS: dict[str, Callable[[Any], ActionResult]] = {
    "create_cluster_snapshot": create_cluster_snapshot,
    "copy_cluster_snapshot": copy_cluster_snapshot,
    "authorize_snapshot_access": authorize_snapshot_access,
    "revoke_snapshot_access": revoke_snapshot_access,
    "delete_cluster_snapshot": delete_cluster_snapshot,
    "modify_cluster_snapshot": modify_cluster_snapshot,
    "describe_cluster_snapshots": describe_cluster_snapshots,
    "restore_from_cluster_snapshot": restore_from_cluster_snapshot,
    "describe_clusters": describe_clusters_paged,
    "get_cluster_credentials": get_cluster_credentials,
}

_MISSING = object()
_installed = False


def _locked(fn: Callable[[Any], ActionResult]) -> Callable[[Any], ActionResult]:
    """*fn* run under the extension's lock (moto's server answers on several threads)."""

    def handler(self: Any) -> ActionResult:
        with LOCK:
            return fn(self)

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


def _patch(cls: type, name: str, value: Any) -> None:
    ORIGINALS[(cls, name)] = cls.__dict__.get(name, _MISSING)
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
    with LOCK:
        if _installed:
            return
        from moto.redshift.models import RedshiftBackend

        cls = response_cls()
        for name, fn in _RESPONSE_METHODS.items():
            _patch(cls, name, _locked(fn))
        _patch(cls, "call_action", counting_call_action)
        _patch(RedshiftBackend, "describe_cluster_snapshots", fixed_backend_describe)
        _installed = True


def uninstall() -> None:
    """Undo :func:`install` (state already in the backends stays)."""
    global _installed
    with LOCK:
        for (cls, name), original in ORIGINALS.items():
            if original is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        ORIGINALS.clear()
        _installed = False


def is_installed() -> bool:
    return _installed
