"""Owned snapshots, the automated snapshots each policy copied, and the grants the worker made.

Grants: ``State.grants`` lists the grants the worker made (``granted_at`` known), open or
revoked. A revoke of a grant it has no record of making (someone else's, or one made before
the state DB was lost) is recorded too, as a grant row with ``granted_at`` NULL and
``revoked_at`` set; such rows show in :meth:`SnapshotRepository.owned_summary` but not in
``State.grants``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlmodel import Session, col, func, select, update

from snapworker.adapters.store.engine import Database, aware, aware_opt, changed
from snapworker.adapters.store.scope import LEGACY, Scope
from snapworker.adapters.store.tables import CopiedSourceRow, GrantRow, OwnedSnapshotRow, RunRow
from snapworker.adapters.store.views import GrantView, OwnedSummary, OwnedView
from snapworker.core.model import (
    DELETED_OUTSIDE,
    REVOKED_OUTSIDE,
    SNAPSHOT_DELETED_OUTSIDE,
    GrantRecord,
    MadeFor,
    OwnedRecord,
)

__all__ = [
    "DELETED_OUTSIDE",
    "REVOKED_OUTSIDE",
    "SNAPSHOT_DELETED_OUTSIDE",
    "Gone",
    "SnapshotRepository",
    "grants_made",
    "owned_records",
    "pair_targets",
]


@dataclass(frozen=True)
class Gone:
    """What :meth:`SnapshotRepository.record_gone` newly recorded: the snapshots (as their
    records) and the grants (snapshot, account) closed as changed outside snapworker, and how
    many open grants closed with those snapshots."""

    snapshots: tuple[OwnedRecord, ...] = ()
    grants: tuple[tuple[str, str], ...] = ()
    grants_of_snapshots: int = 0


def owned_records(session: Session, scope: Scope = LEGACY) -> dict[str, OwnedRecord]:
    """Every owned snapshot the worker recorded in ``scope``, deleted ones too, by id."""
    rows = session.exec(select(OwnedSnapshotRow).where(*scope.where(OwnedSnapshotRow)))
    return {row.snapshot_id: _record_of(row) for row in rows}


def grants_made(session: Session, scope: Scope = LEGACY) -> tuple[GrantRecord, ...]:
    """The grants the worker made in ``scope`` (``granted_at`` known), open or revoked,
    oldest first."""
    rows = session.exec(
        select(GrantRow)
        .where(*scope.where(GrantRow), col(GrantRow.granted_at).is_not(None))
        .order_by(col(GrantRow.id))
    )
    made = []
    for row in rows:
        assert row.granted_at is not None  # the query's condition
        made.append(
            GrantRecord(
                row.snapshot_id, row.account, row.granted_at, row.revoked_at, row.revoked_reason
            )
        )
    return tuple(made)


def _grant_view(row: GrantRow, targets: dict[tuple[str, str], str]) -> GrantView:
    return GrantView(
        target=targets.get((row.owner_account, row.region)),
        owner_account=row.owner_account,
        region=row.region,
        snapshot_id=row.snapshot_id,
        account=row.account,
        granted_at=row.granted_at,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
    )


def pair_targets(session: Session) -> dict[tuple[str, str], str]:
    """The target name of each (account, region) pair, from the newest run that named it (the
    rows themselves carry only the account and region)."""
    newest = (
        select(func.max(RunRow.id))
        .where(col(RunRow.target).is_not(None))
        .group_by(col(RunRow.owner_account), col(RunRow.region))
    )
    rows = session.exec(
        select(RunRow.owner_account, RunRow.region, RunRow.target).where(col(RunRow.id).in_(newest))
    )
    return {(a or "", r or ""): t for a, r, t in rows if t is not None}


def _record_of(row: OwnedSnapshotRow) -> OwnedRecord:
    return OwnedRecord(
        snapshot_id=row.snapshot_id,
        policy=row.policy,
        cluster=row.cluster,
        made_for=cast(MadeFor, row.made_for),
        data_time=row.data_time,
        source_id=row.source_id,
        fire_time=row.fire_time,
        deleted_at=row.deleted_at,
        deleted_reason=row.deleted_reason,
    )


def _close(session: Session, where: tuple[Any, ...], at: datetime, reason: str) -> int:
    """Close the open grants matching ``where`` for ``reason``; how many."""
    return changed(
        session,
        update(GrantRow)
        .where(*where, col(GrantRow.revoked_at).is_(None))
        .values(revoked_at=at, revoked_reason=reason),
    )


class SnapshotRepository:
    """Owned snapshots, copied sources and grants of one (account, region) ``scope``;
    ``global_reads``: :meth:`owned_summary` shows every pair's (``status``)."""

    def __init__(self, db: Database, scope: Scope = LEGACY, *, global_reads: bool = False) -> None:
        self._db = db
        self._scope = scope
        self._global = global_reads

    # -- copied sources

    def copied_sources(self, policy: str) -> set[str]:
        with self._db.session("read copied sources", write=False) as s:
            query = select(CopiedSourceRow.source_id).where(
                *self._scope.where(CopiedSourceRow), CopiedSourceRow.policy == policy
            )
            return set(s.exec(query))

    def record_copied_source(
        self, policy: str, source_id: str, target_id: str, at: datetime
    ) -> bool:
        """Remember that ``policy`` copied ``source_id``; False if it was already recorded
        (the first record stays)."""
        at = aware(at)
        with self._db.session("record copied source", write=True) as s:
            key = self._scope.key(policy=policy, source_id=source_id)
            if s.get(CopiedSourceRow, key) is not None:
                return False
            s.add(
                CopiedSourceRow(
                    owner_account=self._scope.account,
                    region=self._scope.region,
                    policy=policy,
                    source_id=source_id,
                    target_id=target_id,
                    copied_at=at,
                )
            )
            return True

    # -- owned snapshots

    def record_owned(self, rec: OwnedRecord, adopted: bool = False, *, at: datetime) -> None:
        """Upsert the record of an owned snapshot.

        On an existing row, fields ``rec`` leaves None keep their stored value (nothing known
        is forgotten), ``recorded_at`` stays the first one, and ``adopted`` stays False once
        the worker recorded the snapshot as its own.
        """
        at = aware(at)
        data_time = aware_opt(rec.data_time, "data_time")
        fire_time = aware_opt(rec.fire_time, "fire_time")
        deleted_at = aware_opt(rec.deleted_at, "deleted_at")
        with self._db.session("record owned snapshot", write=True) as s:
            row = s.get(OwnedSnapshotRow, self._scope.key(snapshot_id=rec.snapshot_id))
            if row is None:
                s.add(
                    OwnedSnapshotRow(
                        owner_account=self._scope.account,
                        region=self._scope.region,
                        snapshot_id=rec.snapshot_id,
                        policy=rec.policy,
                        cluster=rec.cluster,
                        made_for=rec.made_for,
                        source_id=rec.source_id,
                        data_time=data_time,
                        fire_time=fire_time,
                        recorded_at=at,
                        adopted=adopted,
                        deleted_at=deleted_at,
                    )
                )
                return
            row.policy = rec.policy
            row.cluster = rec.cluster
            row.made_for = rec.made_for
            if rec.source_id is not None:
                row.source_id = rec.source_id
            if data_time is not None:
                row.data_time = data_time
            if fire_time is not None:
                row.fire_time = fire_time
            if deleted_at is not None:
                row.deleted_at = deleted_at
            row.adopted = bool(row.adopted) and adopted

    def mark_deleted(self, snapshot_id: str, at: datetime) -> bool:
        """Set ``deleted_at`` (the first one stays); False if there is no such record."""
        at = aware(at)
        with self._db.session("mark snapshot deleted", write=True) as s:
            row = s.get(OwnedSnapshotRow, self._scope.key(snapshot_id=snapshot_id))
            if row is None:
                return False
            if row.deleted_at is None:
                row.deleted_at = at
            return True

    def owned_summary(self) -> OwnedSummary:
        """The owned snapshots and grants of the scope (of every pair with ``global_reads``:
        each view names its pair; ``owned`` then mixes the pairs of a policy and cluster)."""
        own = () if self._global else self._scope.where(OwnedSnapshotRow)
        grant = () if self._global else self._scope.where(GrantRow)
        with self._db.session("read owned snapshots", write=False) as s:
            targets = pair_targets(s)
            owned: dict[str, dict[str, list[OwnedView]]] = {}
            rows = s.exec(
                select(OwnedSnapshotRow)
                .where(*own)
                .order_by(
                    col(OwnedSnapshotRow.policy),
                    col(OwnedSnapshotRow.cluster),
                    col(OwnedSnapshotRow.data_time).is_not(None),  # no data time first, anywhere
                    col(OwnedSnapshotRow.data_time),
                    col(OwnedSnapshotRow.snapshot_id),
                    col(OwnedSnapshotRow.owner_account),
                    col(OwnedSnapshotRow.region),
                )
            )
            for row in rows:
                owned.setdefault(row.policy, {}).setdefault(row.cluster, []).append(
                    OwnedView(
                        target=targets.get((row.owner_account, row.region)),
                        owner_account=row.owner_account,
                        region=row.region,
                        snapshot_id=row.snapshot_id,
                        policy=row.policy,
                        cluster=row.cluster,
                        made_for=row.made_for,
                        source_id=row.source_id,
                        data_time=row.data_time,
                        fire_time=row.fire_time,
                        recorded_at=row.recorded_at,
                        adopted=row.adopted,
                        deleted_at=row.deleted_at,
                        deleted_reason=row.deleted_reason,
                    )
                )
            grants = s.exec(
                select(GrantRow)
                .where(*grant, col(GrantRow.revoked_at).is_(None))
                .order_by(col(GrantRow.snapshot_id), col(GrantRow.account), col(GrantRow.id))
            )
            open_grants = tuple(_grant_view(g, targets) for g in grants)
            outside = s.exec(
                select(GrantRow)
                .where(*grant, col(GrantRow.revoked_reason) == REVOKED_OUTSIDE)
                .order_by(
                    col(GrantRow.revoked_at),
                    col(GrantRow.snapshot_id),
                    col(GrantRow.account),
                    col(GrantRow.id),
                )
            )
            revoked_outside = tuple(_grant_view(g, targets) for g in outside)
        return OwnedSummary(
            owned={
                policy: {cluster: tuple(views) for cluster, views in clusters.items()}
                for policy, clusters in owned.items()
            },
            open_grants=open_grants,
            revoked_outside=revoked_outside,
        )

    def record_gone(
        self, snapshot_ids: Iterable[str], grants: Iterable[tuple[str, str]], at: datetime
    ) -> Gone:
        """Close, in one transaction, what a complete listing at ``at`` no longer showed:
        each owned snapshot of ``snapshot_ids`` still live in the state DB (``deleted_at`` =
        ``at``, :data:`DELETED_OUTSIDE`) with its open grants, and each open grant of
        ``grants`` (:data:`REVOKED_OUTSIDE`). Records already closed are left as they are;
        returns what was newly closed."""
        at = aware(at)
        gone: list[OwnedRecord] = []
        closed: list[tuple[str, str]] = []
        with_snapshots = 0
        with self._db.session("record what was changed outside snapworker", write=True) as s:
            mine = self._scope.where(GrantRow)
            for sid in dict.fromkeys(snapshot_ids):
                row = s.get(OwnedSnapshotRow, self._scope.key(snapshot_id=sid))
                if row is None or row.deleted_at is not None:
                    continue
                row.deleted_at = at
                row.deleted_reason = DELETED_OUTSIDE
                gone.append(_record_of(row))
                with_snapshots += _close(
                    s, (*mine, col(GrantRow.snapshot_id) == sid), at, SNAPSHOT_DELETED_OUTSIDE
                )
            for sid, account in dict.fromkeys(grants):
                pair = (*mine, col(GrantRow.snapshot_id) == sid, col(GrantRow.account) == account)
                if _close(s, pair, at, REVOKED_OUTSIDE):
                    closed.append((sid, account))
        return Gone(tuple(gone), tuple(closed), with_snapshots)

    def record_listed_again(self, snapshot_ids: Iterable[str]) -> list[str]:
        """Make live again each snapshot of ``snapshot_ids`` recorded as deleted outside
        snapworker (a listing shows it again: an earlier listing missed it, e.g. the wrong
        region or account); returns those changed. Its closed grants stay closed: the next
        tick sees what AWS lists."""
        changed_ids = []
        with self._db.session("record a snapshot listed again", write=True) as s:
            for sid in dict.fromkeys(snapshot_ids):
                row = s.get(OwnedSnapshotRow, self._scope.key(snapshot_id=sid))
                if row is not None and row.deleted_reason == DELETED_OUTSIDE:
                    row.deleted_at = None
                    row.deleted_reason = None
                    changed_ids.append(sid)
        return changed_ids

    # -- grants

    def record_grant(self, snapshot_id: str, account: str, at: datetime) -> bool:
        """Record a grant the worker made; False (nothing written) if one is already open."""
        at = aware(at)
        with self._db.session("record grant", write=True) as s:
            open_grant = s.exec(
                select(GrantRow.id).where(
                    *self._scope.where(GrantRow),
                    GrantRow.snapshot_id == snapshot_id,
                    GrantRow.account == account,
                    col(GrantRow.revoked_at).is_(None),
                )
            ).first()
            if open_grant is not None:
                return False
            s.add(
                GrantRow(
                    owner_account=self._scope.account,
                    region=self._scope.region,
                    snapshot_id=snapshot_id,
                    account=account,
                    granted_at=at,
                )
            )
            return True

    def record_revoke(self, snapshot_id: str, account: str, at: datetime) -> bool:
        """Close the open grant of ``account`` on the snapshot. With none open, record a revoke
        of a grant the worker did not make (``granted_at`` NULL), unless the newest row for
        the pair is already closed (a repeated revoke). True if something was written."""
        at = aware(at)
        pair = (
            *self._scope.where(GrantRow),
            col(GrantRow.snapshot_id) == snapshot_id,
            col(GrantRow.account) == account,
        )
        with self._db.session("record revoke", write=True) as s:
            closed = changed(
                s,
                update(GrantRow)
                .where(*pair, col(GrantRow.revoked_at).is_(None))
                .values(revoked_at=at),
            )
            if closed:
                return True
            newest = s.exec(
                select(GrantRow.id).where(*pair).order_by(col(GrantRow.id).desc()).limit(1)
            ).first()
            if newest is not None:
                return False  # its revoked_at is set: no open grant exists
            s.add(
                GrantRow(
                    owner_account=self._scope.account,
                    region=self._scope.region,
                    snapshot_id=snapshot_id,
                    account=account,
                    revoked_at=at,
                )
            )
            return True
