"""Drift: grants to accounts a policy does not list, as each run saw them (and whether it
revoked them), for ``status``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from snapworker.adapters.store.engine import Database, aware
from snapworker.adapters.store.runs import last_finished_run
from snapworker.adapters.store.tables import DriftRow
from snapworker.core.model import Plan

__all__ = ["DriftItem", "DriftReport", "DriftRepository", "drift_items"]


@dataclass(frozen=True)
class DriftItem:
    """A grant to an account the policy does not list; ``revoked``: the run revoked it
    (``revoke_unlisted: true`` and the revoke succeeded), else it was only reported."""

    policy: str
    cluster: str
    snapshot_id: str
    account: str
    revoked: bool = False


@dataclass(frozen=True)
class DriftReport:
    """The drift one run saw (``items`` empty: it saw none), and when."""

    run_id: int
    seen_at: datetime | None
    items: tuple[DriftItem, ...]


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
    def __init__(self, db: Database) -> None:
        self._db = db

    def record_drift(self, run_id: int, items: Iterable[DriftItem], at: datetime) -> int:
        """Record the drift run ``run_id`` saw (once per run, after applying; with no items
        nothing is written, and the finished run row says the check happened). Returns the
        rows written."""
        at = aware(at)
        rows = [
            DriftRow(
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
        """The drift seen by the newest ``run``/``daemon`` tick that finished without an
        exception (one that raised may not have recorded it, so an older one's view is shown
        instead; one still running is not looked at). None when no such tick exists yet."""
        with self._db.session("read drift", write=False) as s:
            run = last_finished_run(s)
            if run is None:
                return None
            run_id, finished_at = run
            rows = s.exec(
                select(DriftRow)
                .where(DriftRow.run_id == run_id)
                .order_by(
                    col(DriftRow.policy),
                    col(DriftRow.cluster),
                    col(DriftRow.snapshot_id),
                    col(DriftRow.account),
                )
            ).all()
            return DriftReport(
                run_id=run_id,
                seen_at=rows[0].seen_at if rows else finished_at,
                items=tuple(
                    DriftItem(
                        policy=r.policy,
                        cluster=r.cluster,
                        snapshot_id=r.snapshot_id,
                        account=r.account,
                        revoked=r.revoked,
                    )
                    for r in rows
                ),
            )
