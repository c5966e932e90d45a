"""Restore drills (``snapworker.service.drills``) and the figures read on a cluster right
before the worker snapshots it, which a drill of that snapshot compares with.

A drill is written ``pending`` before its restore call, so a crash leaves a record of the
scratch cluster that the next run finds and deletes. ``detail`` and the figures are JSON
objects built from check results: never a credential.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlmodel import Session, col, select, update

from snapworker.adapters.store.engine import Database, aware, changed
from snapworker.adapters.store.errors import StateStoreError
from snapworker.adapters.store.scope import LEGACY, Scope
from snapworker.adapters.store.snapshots import pair_targets
from snapworker.adapters.store.tables import SnapshotFiguresRow, VerificationRow
from snapworker.adapters.store.views import VerificationView
from snapworker.core.model import VerificationRecord, VerificationStatus

__all__ = ["VerificationRepository", "verification_records"]

_OUTCOMES = ("passed", "failed", "error")


def verification_records(session: Session, scope: Scope = LEGACY) -> tuple[VerificationRecord, ...]:
    """Every drill of ``scope``, oldest first, as the planner reads them."""
    rows = session.exec(
        select(VerificationRow)
        .where(*scope.where(VerificationRow))
        .order_by(col(VerificationRow.id))
    )
    return tuple(
        VerificationRecord(
            policy=row.policy,
            cluster=row.cluster,
            snapshot_id=row.snapshot_id,
            fire_time=row.fire_time,
            scratch_cluster=row.scratch_cluster,
            status=cast(VerificationStatus, row.status),
            scratch_deleted=row.scratch_deleted_at is not None,
        )
        for row in rows
    )


class VerificationRepository:
    """Drills and snapshot figures of one (account, region) ``scope``; ``global_reads``:
    :meth:`verifications` shows every pair's."""

    def __init__(self, db: Database, scope: Scope = LEGACY, *, global_reads: bool = False) -> None:
        self._db = db
        self._scope = scope
        self._global = global_reads

    def start_verification(
        self,
        policy: str,
        cluster: str,
        snapshot_id: str,
        fire_time: datetime,
        scratch_cluster: str,
        at: datetime,
    ) -> int:
        """Record a drill as ``pending`` before its restore call; committed on return.

        A drill of the same scratch cluster (same policy, cluster and fire time) that a crash
        cut short is reused; other unfinished drills of the cluster become ``interrupted``.
        """
        at = aware(at)
        fire_time = aware(fire_time, "fire_time")
        with self._db.session("start verification", write=True) as s:
            unfinished = s.exec(
                select(VerificationRow.id, VerificationRow.scratch_cluster, VerificationRow.status)
                .where(
                    *self._scope.where(VerificationRow),
                    VerificationRow.policy == policy,
                    VerificationRow.cluster == cluster,
                    col(VerificationRow.status).in_(("pending", "interrupted")),
                )
                .order_by(col(VerificationRow.id))
            ).all()
            reused: int | None = None
            for old_id, old_scratch, old_status in unfinished:
                if old_scratch == scratch_cluster and reused is None:
                    reused = old_id
                elif old_status == "pending":
                    changed(
                        s,
                        update(VerificationRow)
                        .where(col(VerificationRow.id) == old_id)
                        .values(status="interrupted", finished_at=at),
                    )
            if reused is not None:
                changed(
                    s,
                    update(VerificationRow)
                    .where(col(VerificationRow.id) == reused)
                    .values(
                        snapshot_id=snapshot_id,
                        status="pending",
                        started_at=at,
                        finished_at=None,
                        detail="{}",
                    ),
                )
                return reused
            row = VerificationRow(
                owner_account=self._scope.account,
                region=self._scope.region,
                policy=policy,
                cluster=cluster,
                snapshot_id=snapshot_id,
                fire_time=fire_time,
                scratch_cluster=scratch_cluster,
                status="pending",
                started_at=at,
            )
            s.add(row)
            s.flush()
            assert row.id is not None
            return row.id

    def finish_verification(
        self, verification_id: int, status: str, detail: Mapping[str, Any], at: datetime
    ) -> None:
        """The drill's outcome: ``passed``, ``failed`` or ``error``, with each check's result.
        ``detail`` must hold no credential (the caller builds it from check results)."""
        at = aware(at)
        if status not in _OUTCOMES:
            raise ValueError(f"verification status must be passed, failed or error: {status!r}")
        with self._db.session("finish verification", write=True) as s:
            done = changed(
                s,
                update(VerificationRow)
                .where(
                    col(VerificationRow.id) == verification_id, *self._scope.where(VerificationRow)
                )
                .values(
                    status=status,
                    finished_at=at,
                    detail=json.dumps(dict(detail), sort_keys=True, default=str),
                ),
            )
            if done == 0:
                raise StateStoreError(
                    f"state DB {self._db.url}: verification {verification_id} does not exist"
                )

    def mark_scratch_deleted(self, scratch_cluster: str, at: datetime) -> int:
        """The scratch cluster is gone (deleted by us, or never made); returns rows updated."""
        at = aware(at)
        with self._db.session("mark scratch cluster deleted", write=True) as s:
            return changed(
                s,
                update(VerificationRow)
                .where(
                    *self._scope.where(VerificationRow),
                    col(VerificationRow.scratch_cluster) == scratch_cluster,
                    col(VerificationRow.scratch_deleted_at).is_(None),
                )
                .values(scratch_deleted_at=at),
            )

    def verifications(self, limit: int | None = None) -> list[VerificationView]:
        """Drills (of the scope, or of every pair), newest first."""
        query = select(VerificationRow).order_by(col(VerificationRow.id).desc())
        if not self._global:
            query = query.where(*self._scope.where(VerificationRow))
        if limit is not None:
            query = query.limit(limit)
        with self._db.session("read verifications", write=False) as s:
            targets = pair_targets(s)
            return [_verification_view(row, targets) for row in s.exec(query)]

    # -- figures

    def record_figures(
        self,
        snapshot_id: str,
        policy: str,
        cluster: str,
        figures: Mapping[str, Any],
        at: datetime,
    ) -> None:
        """Store the figures read right before the snapshot's CreateClusterSnapshot call. A
        retried create reads them again just before its own call, so the newest read wins."""
        at = aware(at)
        text = json.dumps(dict(figures), sort_keys=True, default=str)
        with self._db.session("record snapshot figures", write=True) as s:
            row = s.get(SnapshotFiguresRow, self._scope.key(snapshot_id=snapshot_id))
            if row is None:
                s.add(
                    SnapshotFiguresRow(
                        owner_account=self._scope.account,
                        region=self._scope.region,
                        snapshot_id=snapshot_id,
                        policy=policy,
                        cluster=cluster,
                        figures=text,
                        recorded_at=at,
                    )
                )
            else:
                row.figures = text
                row.recorded_at = at

    def figures_for(self, snapshot_id: str) -> dict[str, Any] | None:
        """The figures recorded with a snapshot, or None."""
        with self._db.session("read snapshot figures", write=False) as s:
            text = s.exec(
                select(SnapshotFiguresRow.figures).where(
                    *self._scope.where(SnapshotFiguresRow),
                    SnapshotFiguresRow.snapshot_id == snapshot_id,
                )
            ).first()
            if text is None:
                return None
            data = json.loads(text or "{}")
            return data if isinstance(data, dict) else None


def _verification_view(
    row: VerificationRow, targets: Mapping[tuple[str, str], str]
) -> VerificationView:
    try:
        detail = json.loads(row.detail or "{}")
    except ValueError:
        detail = {}
    assert row.id is not None
    return VerificationView(
        id=row.id,
        policy=row.policy,
        cluster=row.cluster,
        snapshot_id=row.snapshot_id,
        fire_time=row.fire_time,
        scratch_cluster=row.scratch_cluster,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        detail=detail if isinstance(detail, dict) else {},
        scratch_deleted_at=row.scratch_deleted_at,
        target=targets.get((row.owner_account, row.region)),
        owner_account=row.owner_account,
        region=row.region,
    )
