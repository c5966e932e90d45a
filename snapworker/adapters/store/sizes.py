"""Sizes: what each policy's kept snapshots occupy, as each run saw them, for ``status``
(which reads only the state DB). One row per policy per run; the newest run's are shown."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, delete, select

from snapworker.adapters.store.engine import Database, aware, changed
from snapworker.adapters.store.runs import PairRun, latest_report, latest_reports
from snapworker.adapters.store.scope import LEGACY, Scope
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
    target: str | None = None  # read back: the pair's (written: the store's scope)
    owner_account: str = ""
    region: str = ""


@dataclass(frozen=True)
class SizesReport:
    """One run's sizes; with every pair's (a global read), ``run_id`` and ``seen_at`` are the
    newest of the runs shown."""

    run_id: int
    seen_at: datetime | None
    items: tuple[PolicySizes, ...]
    target: str | None = None
    owner_account: str = ""
    region: str = ""


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
    """The sizes of one (account, region) ``scope``; ``global_reads``: :meth:`latest_sizes`
    shows the newest finished run of every pair."""

    def __init__(self, db: Database, scope: Scope = LEGACY, *, global_reads: bool = False) -> None:
        self._db = db
        self._scope = scope
        self._global = global_reads

    def record_sizes(self, run_id: int, items: Iterable[PolicySizes], at: datetime) -> int:
        """Record what run ``run_id`` saw (once per run, after applying). Returns the rows."""
        at = aware(at)
        rows = [
            SizesRow(
                owner_account=self._scope.account,
                region=self._scope.region,
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
        """Delete the scope's rows seen before ``before`` (with the daemon's runs). Returns
        how many."""
        before = aware(before, "before")
        with self._db.session("prune sizes", write=True) as s:
            return changed(
                s,
                delete(SizesRow).where(
                    *self._scope.where(SizesRow), col(SizesRow.seen_at) < before
                ),
            )

    def latest_sizes(self) -> SizesReport | None:
        """The sizes the newest ``run``/``daemon`` tick of the scope that finished without an
        exception recorded (None: no such tick yet). With ``global_reads``: every pair's
        newest such tick's, in one report."""
        return latest_report(
            self._db,
            self._scope,
            self._global,
            "read sizes",
            self._report,
            lambda run_id, seen_at, items: SizesReport(run_id, seen_at, items),
        )

    def latest_sizes_by_pair(self) -> list[SizesReport]:
        """The sizes of the newest finished tick of each pair (of the scope's one without
        ``global_reads``), by account then region."""
        return latest_reports(self._db, self._scope, self._global, "read sizes", self._report)

    def _report(self, s: Session, run: PairRun) -> SizesReport:
        rows = s.exec(
            select(SizesRow).where(SizesRow.run_id == run.run_id).order_by(col(SizesRow.policy))
        ).all()
        return SizesReport(
            run_id=run.run_id,
            seen_at=rows[0].seen_at if rows else run.finished_at,
            items=tuple(
                PolicySizes(
                    r.policy,
                    r.snapshots,
                    r.sized,
                    r.size_mb,
                    r.incremental_mb,
                    target=run.target,
                    owner_account=r.owner_account,
                    region=r.region,
                )
                for r in rows
            ),
            target=run.target,
            owner_account=run.owner_account,
            region=run.region,
        )
