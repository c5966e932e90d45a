"""Snapshots that are ``creating`` before they are ``available``, and restored clusters that
are ``creating`` for a while, as on AWS (moto makes both available at once).

Snapshots: :func:`set_creating_polls` (or ``SNAPWORKER_MOTO_CREATING_POLLS``, read by
``install()``; default 0 = ``available`` at once) makes snapshots made by
CreateClusterSnapshot and CopyClusterSnapshot start ``creating``; the first *n*
DescribeClusterSnapshots responses that include such a snapshot show it ``creating``, and it
is ``available`` from the next one on. Their Create/Copy response shows the status they start
in. :func:`settle_all` makes every snapshot ``available`` at once.

Restored clusters: ``creating`` for the next *n* DescribeClusters calls
(:func:`set_restore_polls`, default 1), then ``available``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snapworker.sandbox.moto_ext.common import LOCK, POLLS_LEFT, RESTORE_POLLS_LEFT
from snapworker.sandbox.moto_ext.seeding import all_backends

if TYPE_CHECKING:
    from moto.redshift.models import RedshiftBackend, Snapshot

ENV_CREATING_POLLS = "SNAPWORKER_MOTO_CREATING_POLLS"

_creating_polls = 0
_restore_polls = 1


def set_creating_polls(n: int) -> None:
    """New snapshots (Create/Copy) stay ``creating`` for the next *n* describes that show them."""
    global _creating_polls
    if n < 0:
        raise ValueError("creating polls must be >= 0")
    _creating_polls = int(n)


def get_creating_polls() -> int:
    return _creating_polls


def set_restore_polls(n: int) -> None:
    """A restored cluster stays ``creating`` for the next *n* DescribeClusters calls."""
    global _restore_polls
    if n < 0:
        raise ValueError("restore polls must be >= 0")
    _restore_polls = int(n)


def start_creating(snap: Snapshot) -> None:
    """A snapshot just made by Create or Copy: ``creating`` for the polls set, if any."""
    n = _creating_polls
    setattr(snap, POLLS_LEFT, n)
    snap.status = "creating" if n > 0 else "available"


def shown(snap: Snapshot) -> None:
    """A describe showed *snap*: one poll fewer left ``creating`` (the response already holds
    the status it had; it is ``available`` from the next describe on)."""
    left = int(getattr(snap, POLLS_LEFT, 0))
    if snap.status == "creating" and left > 0:
        left -= 1
        setattr(snap, POLLS_LEFT, left)
        if left == 0:
            snap.status = "available"


def settle_all() -> None:
    """Make every ``creating`` snapshot in every account and region ``available``."""
    with LOCK:
        for be in all_backends():
            for snap in be.snapshots.values():
                if snap.status == "creating":
                    snap.status = "available"
                setattr(snap, POLLS_LEFT, 0)


def start_restoring(cluster: Any) -> None:
    """A cluster just made by RestoreFromClusterSnapshot: ``creating`` for the polls set."""
    setattr(cluster, RESTORE_POLLS_LEFT, _restore_polls)
    cluster.status = "creating" if _restore_polls > 0 else "available"


def advance_restores(be: RedshiftBackend) -> None:
    """A DescribeClusters listing: restored clusters move one poll towards ``available``."""
    for cluster in be.clusters.values():
        if cluster.status != "creating" or not hasattr(cluster, RESTORE_POLLS_LEFT):
            continue
        left = int(getattr(cluster, RESTORE_POLLS_LEFT))
        if left <= 0:
            cluster.status = "available"
        else:
            setattr(cluster, RESTORE_POLLS_LEFT, left - 1)
