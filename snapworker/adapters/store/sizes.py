"""Sizes: what each policy's kept snapshots occupy, as each run saw them, for ``status``
(which reads only the state DB). One row per policy per run; the newest run's are shown."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, delete, select

from snapworker.adapters.store.engine import Database, aware, changed
from snapworker.adapters.store.runs import last_finished_run
from snapworker.adapters.store.tables import SizesRow
from snapworker.core.model import Plan
from snapworker.core.sizes import kept_by_policy

__all__ = ["PolicySizes", "SizesReport", "SizesRepository", "sizes_items"]


@dataclass(frozen=True)
class PolicySizes:
    """One policy's kept snapshots: how many, how many had a reported size, and the sums."""

    policy: str
    snapshots: int
    sized: int
    size_mb: float | None = None
    incremental_mb: float | None = None


@dataclass(frozen=True)
class SizesReport:
    run_id: int
    seen_at: datetime | None
    items: tuple[PolicySizes, ...]


def sizes_items(plan: Plan) -> list[PolicySizes]:
    """The plan's kept snapshots' sizes per policy, as rows to record."""
    return [
        PolicySizes(
            p,
            t.snapshots,
            t.sized,
            round(t.size_mb, 1) if t.sized else None,
            round(t.incremental_mb, 1) if t.sized else None,
        )
        for p, t in sorted(kept_by_policy(plan).items())
    ]


class SizesRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record_sizes(self, run_id: int, items: Iterable[PolicySizes], at: datetime) -> int:
        """Record what run ``run_id`` saw (once per run, after applying). Returns the rows."""
        at = aware(at)
        rows = [
            SizesRow(
                run_id=run_id,
                policy=i.policy,
                snapshots=i.snapshots,
                sized=i.sized,
                size_mb=i.size_mb,
                incremental_mb=i.incremental_mb,
                seen_at=at,
            )
            for i in items
        ]
        if not rows:
            return 0
        with self._db.session("record sizes", write=True) as s:
            s.add_all(rows)
        return len(rows)

    def prune(self, before: datetime) -> int:
        """Delete the rows seen before ``before`` (with the daemon's runs). Returns how many."""
        before = aware(before, "before")
        with self._db.session("prune sizes", write=True) as s:
            return changed(s, delete(SizesRow).where(col(SizesRow.seen_at) < before))

    def latest_sizes(self) -> SizesReport | None:
        """The sizes the newest ``run``/``daemon`` tick that finished without an exception
        recorded (None: no such tick yet)."""
        with self._db.session("read sizes", write=False) as s:
            run = last_finished_run(s)
            if run is None:
                return None
            run_id, finished_at = run
            rows = s.exec(
                select(SizesRow).where(SizesRow.run_id == run_id).order_by(col(SizesRow.policy))
            ).all()
            return SizesReport(
                run_id=run_id,
                seen_at=rows[0].seen_at if rows else finished_at,
                items=tuple(
                    PolicySizes(r.policy, r.snapshots, r.sized, r.size_mb, r.incremental_mb)
                    for r in rows
                ),
            )
