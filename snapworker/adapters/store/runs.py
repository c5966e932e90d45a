"""Runs (one per tick) and the journal of their AWS mutations, and pruning both.

A journal entry is written ``pending`` before its AWS call and committed at once, so that the
next run finds it after a crash; the entry of an action a crash cut short is reused by the
next attempt of that action (same key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Literal, cast

from sqlmodel import Session, col, delete, select, update

from snapworker.adapters.store.engine import Database, aware, changed
from snapworker.adapters.store.errors import StateStoreError
from snapworker.adapters.store.tables import JournalRow, RunRow
from snapworker.adapters.store.views import JournalView, RunView
from snapworker.core.model import Action, ActionKind, PendingEntry

__all__ = ["JournalStatus", "RunRepository", "RunStatus", "pending_entries"]

JournalStatus = Literal["pending", "completed", "failed", "superseded"]
RunStatus = Literal["running", "ok", "failed", "interrupted"]
_FINISHED_STATUSES = frozenset({"completed", "failed", "superseded"})
_RUN_END_STATUSES = frozenset({"ok", "failed", "interrupted"})


def pending_entries(session: Session) -> list[PendingEntry]:
    """The journal entries still pending (a crash cut them short), oldest first."""
    rows = session.exec(
        select(JournalRow).where(JournalRow.status == "pending").order_by(col(JournalRow.id))
    )
    return [
        PendingEntry(
            entry_id=_id(row),
            key=row.key,
            policy=row.policy,
            kind=cast(ActionKind, row.kind),
            snapshot_id=row.snapshot_id,
            cluster=row.cluster,
            account=row.account,
            source_id=row.source_id,
        )
        for row in rows
    ]


class RunRepository:
    """Runs, the journal, and pruning them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- runs

    def begin_run(self, mode: str, pid: int, at: datetime) -> int:
        at = aware(at)
        with self._db.session("begin run", write=True) as s:
            row = RunRow(mode=mode, started_at=at, status="running", pid=pid)
            s.add(row)
            s.flush()
            return _id(row)

    def finish_run(
        self,
        run_id: int,
        status: str,
        actions_ok: int,
        actions_failed: int,
        api_calls: Mapping[str, int],
        error: str | None,
        at: datetime,
    ) -> None:
        at = aware(at)
        if status not in _RUN_END_STATUSES:
            raise ValueError(f"run status must be one of {sorted(_RUN_END_STATUSES)}: {status!r}")
        with self._db.session("finish run", write=True) as s:
            done = changed(
                s,
                update(RunRow)
                .where(col(RunRow.id) == run_id)
                .values(
                    status=status,
                    actions_ok=actions_ok,
                    actions_failed=actions_failed,
                    api_calls=json.dumps(dict(api_calls), sort_keys=True),
                    error=error,
                    finished_at=at,
                ),
            )
            if done == 0:
                raise StateStoreError(f"state DB {self._db.url}: run {run_id} does not exist")

    # -- journal

    def journal_start(self, run_id: int, action: Action, at: datetime) -> int:
        """Write the action as ``pending`` before its AWS call; committed on return.

        A pending entry with the same key (a crash cut it short) is reused: its attempts go
        up, it moves to this run, and it keeps its first ``started_at``.
        """
        at = aware(at)
        with self._db.session("start journal entry", write=True) as s:
            found = s.exec(
                select(JournalRow.id, JournalRow.source_id)
                .where(JournalRow.key == action.key, JournalRow.status == "pending")
                .order_by(col(JournalRow.id))
                .limit(1)
            ).first()
            if found is not None:
                entry_id, source_id = found
                assert entry_id is not None  # a stored row
                changed(
                    s,
                    update(JournalRow)
                    .where(col(JournalRow.id) == entry_id)
                    .values(
                        attempts=col(JournalRow.attempts) + 1,
                        run_id=run_id,
                        reason=action.reason,
                        source_id=action.source if action.source is not None else source_id,
                    ),
                )
                return entry_id
            row = JournalRow(
                run_id=run_id,
                key=action.key,
                policy=action.policy,
                cluster=action.cluster,
                kind=action.kind,
                snapshot_id=action.snapshot,
                account=action.account,
                source_id=action.source,
                reason=action.reason,
                status="pending",
                started_at=at,
            )
            s.add(row)
            s.flush()
            return _id(row)

    def journal_finish(
        self,
        entry_id: int,
        status: str,
        outcome: str | None,
        error: str | None,
        at: datetime,
    ) -> None:
        """Record the outcome: ``completed``, ``failed`` or ``superseded``."""
        at = aware(at)
        if status not in _FINISHED_STATUSES:
            raise ValueError(
                f"journal status must be one of {sorted(_FINISHED_STATUSES)}: {status!r}"
            )
        with self._db.session("finish journal entry", write=True) as s:
            done = changed(
                s,
                update(JournalRow)
                .where(col(JournalRow.id) == entry_id)
                .values(status=status, outcome=outcome, error=error, finished_at=at),
            )
            if done == 0:
                raise StateStoreError(
                    f"state DB {self._db.url}: journal entry {entry_id} does not exist"
                )

    def supersede(self, entry_id: int, at: datetime) -> None:
        """A pending entry the plan no longer wants (e.g. its snapshot is gone)."""
        self.journal_finish(entry_id, "superseded", None, None, at)

    def pending_entries(self) -> list[PendingEntry]:
        with self._db.session("read pending entries", write=False) as s:
            return pending_entries(s)

    # -- housekeeping

    def prune(self, before: datetime) -> int:
        """Delete finished journal entries and finished runs older than ``before``; pending
        entries always stay. Returns how many rows went."""
        before = aware(before, "before")
        with self._db.session("prune", write=True) as s:
            journal = changed(
                s,
                delete(JournalRow).where(
                    col(JournalRow.status) != "pending",
                    col(JournalRow.finished_at).is_not(None),
                    col(JournalRow.finished_at) < before,
                ),
            )
            runs = changed(
                s,
                delete(RunRow).where(
                    col(RunRow.finished_at).is_not(None), col(RunRow.finished_at) < before
                ),
            )
            return journal + runs

    # -- for `status`

    def journal(self, limit: int = 50, run_id: int | None = None) -> list[JournalView]:
        """The newest entries first, of one run or of all."""
        query = select(JournalRow)
        if run_id is not None:
            query = query.where(JournalRow.run_id == run_id)
        with self._db.session("read journal", write=False) as s:
            rows = s.exec(query.order_by(col(JournalRow.id).desc()).limit(limit))
            return [_journal_view(row) for row in rows]

    def recent_runs(self, limit: int = 10) -> list[RunView]:
        """The newest runs first, each with its failed journal entries and API call counts."""
        with self._db.session("read runs", write=False) as s:
            runs = s.exec(select(RunRow).order_by(col(RunRow.id).desc()).limit(limit)).all()
            ids = {_id(run) for run in runs}
            failures: dict[int, list[JournalView]] = {}
            if ids:
                # The runs read above, by id range (one statement may see newer rows).
                failed = s.exec(
                    select(JournalRow)
                    .where(
                        JournalRow.status == "failed",
                        col(JournalRow.run_id).between(min(ids), max(ids)),
                    )
                    .order_by(col(JournalRow.id))
                )
                for row in failed:
                    if row.run_id in ids:
                        failures.setdefault(row.run_id, []).append(_journal_view(row))
            return [
                RunView(
                    id=_id(run),
                    mode=run.mode,
                    status=run.status,
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    actions_ok=run.actions_ok,
                    actions_failed=run.actions_failed,
                    api_calls=_api_calls(run.api_calls),
                    error=run.error,
                    pid=run.pid,
                    failures=tuple(failures.get(_id(run), ())),
                )
                for run in runs
            ]


def _id(row: RunRow | JournalRow) -> int:
    """The id of a stored row (the database gave it one)."""
    assert row.id is not None
    return row.id


def _journal_view(row: JournalRow) -> JournalView:
    return JournalView(
        id=_id(row),
        run_id=row.run_id,
        key=row.key,
        policy=row.policy,
        cluster=row.cluster,
        kind=row.kind,
        snapshot_id=row.snapshot_id,
        account=row.account,
        source_id=row.source_id,
        reason=row.reason,
        status=row.status,
        outcome=row.outcome,
        error=row.error,
        attempts=row.attempts,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _api_calls(raw: str) -> dict[str, int]:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}
