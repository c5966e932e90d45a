"""Drift: grants to accounts a policy does not list, as each run saw them (and whether it
revoked them), for ``status``. Each run is one (target, region) pair's; ``status`` shows the
newest finished run of each pair."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from snapworker.adapters.store.engine import Database, aware
from snapworker.adapters.store.runs import PairRun, latest_report, latest_reports
from snapworker.adapters.store.scope import LEGACY, Scope
from snapworker.adapters.store.tables import DriftRow
from snapworker.core.model import Plan

__all__ = ["DriftItem", "DriftReport", "DriftRepository", "drift_items"]


@dataclass(frozen=True)
class DriftItem:
    """A grant to an account the policy does not list; ``revoked``: the run revoked it
    (``revoke_unlisted: true`` and the revoke succeeded), else it was only reported.
    ``account`` is the grantee; the pair is the store's (read back: ``target``,
    ``owner_account``, ``region``; written: ignored, the scope's)."""

    policy: str
    cluster: str
    snapshot_id: str
    account: str
    revoked: bool = False
    target: str | None = None
    owner_account: str = ""
    region: str = ""


@dataclass(frozen=True)
class DriftReport:
    """The drift one run saw (``items`` empty: it saw none), and when; with every pair's
    (a global read), ``run_id`` and ``seen_at`` are the newest of the runs shown."""

    run_id: int
    seen_at: datetime | None
    items: tuple[DriftItem, ...]
    target: str | None = None
    owner_account: str = ""
    region: str = ""


def drift_items(plan: Plan, revoked: Iterable[str] | None = None) -> list[DriftItem]:
    """The plan's drift as rows to record. ``revoked``: the keys of the revokes that were
    done (after apply); None: the revokes the plan asks for (before apply)."""
    revoking = (
        {a.key for a in plan.actions if a.kind == "revoke"} if revoked is None else set(revoked)
    )
    return [
        DriftItem(
            policy=d.policy,
            cluster=d.cluster,
            snapshot_id=d.snapshot,
            account=d.account or "",
            revoked=d.key in revoking,
        )
        for d in plan.drift
    ]


class DriftRepository:
    """The drift of one (account, region) ``scope``; ``global_reads``: :meth:`latest_drift`
    shows the newest finished run of every pair."""

    def __init__(self, db: Database, scope: Scope = LEGACY, *, global_reads: bool = False) -> None:
        self._db = db
        self._scope = scope
        self._global = global_reads

    def record_drift(self, run_id: int, items: Iterable[DriftItem], at: datetime) -> int:
        """Record the drift run ``run_id`` saw (once per run, after applying; with no items
        nothing is written, and the finished run row says the check happened). Returns the
        rows written."""
        at = aware(at)
        rows = [
            DriftRow(
                owner_account=self._scope.account,
                region=self._scope.region,
                run_id=run_id,
                policy=i.policy,
                cluster=i.cluster,
                snapshot_id=i.snapshot_id,
                account=i.account,
                seen_at=at,
                revoked=i.revoked,
            )
            for i in items
        ]
        if not rows:
            return 0
        with self._db.session("record drift", write=True) as s:
            s.add_all(rows)
        return len(rows)

    def latest_drift(self) -> DriftReport | None:
        """The drift seen by the newest ``run``/``daemon`` tick of the scope that finished
        without an exception (one that raised may not have recorded it, so an older one's
        view is shown instead; one still running is not looked at). None when no such tick
        exists yet. With ``global_reads``: every pair's newest such tick's, in one report."""
        return latest_report(
            self._db,
            self._scope,
            self._global,
            "read drift",
            self._report,
            lambda run_id, seen_at, items: DriftReport(run_id, seen_at, items),
        )

    def latest_drift_by_pair(self) -> list[DriftReport]:
        """The drift of the newest finished tick of each pair (of the scope's one without
        ``global_reads``), by account then region."""
        return latest_reports(self._db, self._scope, self._global, "read drift", self._report)

    def _report(self, s: Session, run: PairRun) -> DriftReport:
        rows = s.exec(
            select(DriftRow)
            .where(DriftRow.run_id == run.run_id)
            .order_by(
                col(DriftRow.policy),
                col(DriftRow.cluster),
                col(DriftRow.snapshot_id),
                col(DriftRow.account),
            )
        ).all()
        return DriftReport(
            run_id=run.run_id,
            seen_at=rows[0].seen_at if rows else run.finished_at,
            items=tuple(
                DriftItem(
                    policy=r.policy,
                    cluster=r.cluster,
                    snapshot_id=r.snapshot_id,
                    account=r.account,
                    revoked=r.revoked,
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
