"""What changed outside snapworker: owned snapshots deleted and grants revoked by hand.

At each tick that applies (``run``, the daemon; never ``plan``: a dry run writes nothing),
once the journal entries a crash left pending are reconciled, the state DB's live records are
compared with the tick's listing. That listing is complete: ``observe`` pages through the
account-wide DescribeClusterSnapshots to its last page, and any failure stops the tick before
this step, so a partial or failed listing never closes a record.

- An owned snapshot the state DB holds as live that the listing does not show is recorded as
  gone (``deleted outside snapworker``, ``deleted_at`` = when it was first missed); its open
  grants close with it. A snapshot the worker deleted is already recorded as deleted, and one
  with a journal entry still pending is left to the journal.
- An open grant record of a snapshot still listed, whose account AWS no longer lists, is
  closed as ``revoked outside snapworker``.

Only the records of the policies this tick works on (their leases are ours) and of policies
no longer in the config are compared: another process may be between its DeleteClusterSnapshot
and its record of it. What is newly recorded is logged and returned, so that ``run`` warns
once, in the run that records it. A snapshot recorded as gone that a listing shows again (the
earlier one was of the wrong region or account) is made live again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from snapworker.core.model import DELETED_OUTSIDE, Inventory, OwnedRecord, State
from snapworker.service.ports import SnapshotRepository

if TYPE_CHECKING:
    from snapworker.adapters.store.repository import Gone

__all__ = ["Missed", "find_missed", "record_missed"]


@dataclass(frozen=True)
class Missed:
    """What a listing no longer shows, of what the state DB holds as live."""

    snapshots: tuple[str, ...] = ()
    grants: tuple[tuple[str, str], ...] = ()
    listed_again: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.snapshots or self.grants or self.listed_again)


def find_missed(
    state: State,
    inv: Inventory,
    in_scope: Callable[[str], bool],
    owned: Mapping[str, OwnedRecord],
) -> Missed:
    """Compare the live records of the policies ``in_scope`` with a complete listing.
    ``owned``: what the planner owns in that listing (a snapshot recorded as gone that is
    listed and owned again is ``listed_again``)."""
    pending = {e.snapshot_id for e in state.pending}
    gone = []
    listed_again = []
    for sid, rec in state.owned.items():
        if not in_scope(rec.policy) or sid in pending:
            continue
        if rec.deleted_at is None and sid not in inv.snapshots:
            gone.append(sid)
        elif rec.deleted_reason == DELETED_OUTSIDE and sid in owned:
            listed_again.append(sid)
    grants = []
    for g in state.grants:
        made = state.owned.get(g.snapshot_id)
        snap = inv.snapshots.get(g.snapshot_id)
        if g.revoked_at is not None or made is None or snap is None:
            continue  # closed already, not a snapshot we own, or gone (closed with it)
        if made.deleted_at is not None or not in_scope(made.policy) or g.snapshot_id in pending:
            continue
        if g.account not in snap.accounts:
            grants.append((g.snapshot_id, g.account))
    return Missed(tuple(sorted(gone)), tuple(sorted(set(grants))), tuple(sorted(listed_again)))


def record_missed(
    store: SnapshotRepository,
    state: State,
    inv: Inventory,
    policies: Collection[str],
    configured: Collection[str],
    owned: Mapping[str, OwnedRecord],
    at: datetime,
    log: Any,
) -> Gone | None:
    """Record what :func:`find_missed` finds for the tick's ``policies`` (and those no longer
    ``configured``); None when nothing was missed. Logs a warning for each newly recorded
    change, with the snapshot's policy and cluster."""

    def in_scope(policy: str) -> bool:
        return policy in policies or policy not in configured

    missed = find_missed(state, inv, in_scope, owned)
    if not missed:
        return None
    for sid in store.record_listed_again(missed.listed_again):
        rec = state.owned[sid]
        log.warning(
            "snapshot listed again: it was recorded as deleted outside snapworker",
            snapshot=sid,
            policy=rec.policy,
            cluster=rec.cluster,
        )
    gone = store.record_gone(missed.snapshots, missed.grants, at)
    for r in gone.snapshots:
        log.warning(
            "snapshot deleted outside snapworker",
            snapshot=r.snapshot_id,
            policy=r.policy,
            cluster=r.cluster,
            first_missed=at.isoformat(),
        )
    for sid, account in gone.grants:
        rec = state.owned[sid]
        log.warning(
            "grant revoked outside snapworker",
            snapshot=sid,
            account=account,
            policy=rec.policy,
            cluster=rec.cluster,
            first_missed=at.isoformat(),
        )
    return gone
