"""Owned snapshots, the automated snapshots each policy copied, and the grants the worker made.

Grants: ``State.grants`` lists the grants the worker made (``granted_at`` known), open or
revoked. A revoke of a grant it has no record of making (someone else's, or one made before
the state DB was lost) is recorded too, as a grant row with ``granted_at`` NULL and
``revoked_at`` set; such rows show in :meth:`SnapshotRepository.owned_summary` but not in
``State.grants``.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlmodel import Session, col, select, update

from snapworker.adapters.store.engine import Database, aware, aware_opt, changed
from snapworker.adapters.store.tables import CopiedSourceRow, GrantRow, OwnedSnapshotRow
from snapworker.adapters.store.views import GrantView, OwnedSummary, OwnedView
from snapworker.core.model import GrantRecord, MadeFor, OwnedRecord

__all__ = ["SnapshotRepository", "grants_made", "owned_records"]


def owned_records(session: Session) -> dict[str, OwnedRecord]:
    """Every owned snapshot the worker recorded, deleted ones too, by id."""
    return {
        row.snapshot_id: OwnedRecord(
            snapshot_id=row.snapshot_id,
            policy=row.policy,
            cluster=row.cluster,
            made_for=cast(MadeFor, row.made_for),
            data_time=row.data_time,
            source_id=row.source_id,
            fire_time=row.fire_time,
            deleted_at=row.deleted_at,
        )
        for row in session.exec(select(OwnedSnapshotRow))
    }


def grants_made(session: Session) -> tuple[GrantRecord, ...]:
    """The grants the worker made (``granted_at`` known), open or revoked, oldest first."""
    rows = session.exec(
        select(GrantRow).where(col(GrantRow.granted_at).is_not(None)).order_by(col(GrantRow.id))
    )
    made = []
    for row in rows:
        assert row.granted_at is not None  # the query's condition
        made.append(GrantRecord(row.snapshot_id, row.account, row.granted_at, row.revoked_at))
    return tuple(made)


class SnapshotRepository:
    """Owned snapshots, copied sources and grants."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- copied sources

    def copied_sources(self, policy: str) -> set[str]:
        with self._db.session("read copied sources", write=False) as s:
            query = select(CopiedSourceRow.source_id).where(CopiedSourceRow.policy == policy)
            return set(s.exec(query))

    def record_copied_source(
        self, policy: str, source_id: str, target_id: str, at: datetime
    ) -> bool:
        """Remember that ``policy`` copied ``source_id``; False if it was already recorded
        (the first record stays)."""
        at = aware(at)
        with self._db.session("record copied source", write=True) as s:
            if s.get(CopiedSourceRow, {"policy": policy, "source_id": source_id}) is not None:
                return False
            s.add(
                CopiedSourceRow(
                    policy=policy, source_id=source_id, target_id=target_id, copied_at=at
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
            row = s.get(OwnedSnapshotRow, rec.snapshot_id)
            if row is None:
                s.add(
                    OwnedSnapshotRow(
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
            row = s.get(OwnedSnapshotRow, snapshot_id)
            if row is None:
                return False
            if row.deleted_at is None:
                row.deleted_at = at
            return True

    def owned_summary(self) -> OwnedSummary:
        with self._db.session("read owned snapshots", write=False) as s:
            owned: dict[str, dict[str, list[OwnedView]]] = {}
            rows = s.exec(
                select(OwnedSnapshotRow).order_by(
                    col(OwnedSnapshotRow.policy),
                    col(OwnedSnapshotRow.cluster),
                    col(OwnedSnapshotRow.data_time).is_not(None),  # no data time first, anywhere
                    col(OwnedSnapshotRow.data_time),
                    col(OwnedSnapshotRow.snapshot_id),
                )
            )
            for row in rows:
                owned.setdefault(row.policy, {}).setdefault(row.cluster, []).append(
                    OwnedView(
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
                    )
                )
            grants = s.exec(
                select(GrantRow)
                .where(col(GrantRow.revoked_at).is_(None))
                .order_by(col(GrantRow.snapshot_id), col(GrantRow.account))
            )
            open_grants = tuple(
                GrantView(
                    snapshot_id=row.snapshot_id,
                    account=row.account,
                    granted_at=row.granted_at,
                    revoked_at=row.revoked_at,
                )
                for row in grants
            )
        return OwnedSummary(
            owned={
                policy: {cluster: tuple(views) for cluster, views in clusters.items()}
                for policy, clusters in owned.items()
            },
            open_grants=open_grants,
        )

    # -- grants

    def record_grant(self, snapshot_id: str, account: str, at: datetime) -> bool:
        """Record a grant the worker made; False (nothing written) if one is already open."""
        at = aware(at)
        with self._db.session("record grant", write=True) as s:
            open_grant = s.exec(
                select(GrantRow.id).where(
                    GrantRow.snapshot_id == snapshot_id,
                    GrantRow.account == account,
                    col(GrantRow.revoked_at).is_(None),
                )
            ).first()
            if open_grant is not None:
                return False
            s.add(GrantRow(snapshot_id=snapshot_id, account=account, granted_at=at))
            return True

    def record_revoke(self, snapshot_id: str, account: str, at: datetime) -> bool:
        """Close the open grant of ``account`` on the snapshot. With none open, record a revoke
        of a grant the worker did not make (``granted_at`` NULL), unless the newest row for
        the pair is already closed (a repeated revoke). True if something was written."""
        at = aware(at)
        pair = (col(GrantRow.snapshot_id) == snapshot_id, col(GrantRow.account) == account)
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
            s.add(GrantRow(snapshot_id=snapshot_id, account=account, revoked_at=at))
            return True
