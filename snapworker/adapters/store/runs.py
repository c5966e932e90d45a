"""Runs (one per tick) and the journal of their AWS mutations, and pruning both.

A journal entry is written ``pending`` before its AWS call and committed at once, so that the
next run finds it after a crash; the entry of an action a crash cut short is reused by the
next attempt of that action (same key).

A run is ``running`` until its process finishes it (``ok``, ``failed``, or ``interrupted``: a
stop came before every planned action had started). A process killed before that (SIGKILL,
the OOM killer, a second Ctrl-C) never finishes its row; so that such a row is not shown
``running`` for ever, a run takes, with its row, the lease ``run:<id>`` (its holder names the
process, ``adapters.store.holders``), which its tick renews and which finishing the run gives
back. A ``running`` row whose lease is gone, has expired, or names a process of this host that
no longer exists is *gone*: :meth:`RunRepository.recent_runs` shows it ``interrupted``, with
the counts of its journal, and :meth:`RunRepository.interrupt_gone_runs` (the next tick)
records it so. (Rows of a version without run leases count as gone: none of them is live.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar, cast

from sqlmodel import Session, col, delete, func, select, update

from snapworker.adapters.store.engine import Database, aware, changed
from snapworker.adapters.store.errors import StateStoreError
from snapworker.adapters.store.holders import dead_local_holder, run_lease
from snapworker.adapters.store.scope import LEGACY, Scope
from snapworker.adapters.store.tables import JournalRow, LeaseRow, RunRow
from snapworker.adapters.store.views import JournalView, RunView
from snapworker.core.model import Action, ActionKind, PendingEntry

__all__ = [
    "JournalStatus",
    "PairRun",
    "RunRepository",
    "RunStatus",
    "last_finished_run",
    "last_finished_runs",
    "pending_entries",
]

JournalStatus = Literal["pending", "completed", "failed", "superseded"]
RunStatus = Literal["running", "ok", "failed", "interrupted"]
_FINISHED_STATUSES = frozenset({"completed", "failed", "superseded"})
_RUN_END_STATUSES = frozenset({"ok", "failed", "interrupted"})
GONE = (
    "its process ended before the run did (killed, or stopped twice; pid {pid}); "
    "the next run completes what it left"
)
"""The error shown for a run whose process is gone (see the module docstring)."""


_VIEWED = (
    col(RunRow.mode) != "plan",
    col(RunRow.finished_at).is_not(None),
    col(RunRow.error).is_(None),
)
"""A ``run``/``daemon`` tick that finished without an exception (one that raised may not have
recorded its views; one still running is not looked at)."""


@dataclass(frozen=True)
class PairRun:
    """The newest finished run of a pair: the run whose drift and sizes ``status`` shows."""

    run_id: int
    finished_at: datetime
    target: str | None
    owner_account: str
    region: str


def last_finished_run(session: Session, scope: Scope = LEGACY) -> tuple[int, datetime] | None:
    """The id and end of the newest :data:`_VIEWED` tick of ``scope``: the run whose drift and
    sizes ``status`` shows."""
    row = session.exec(
        select(RunRow.id, RunRow.finished_at)
        .where(*scope.where_run(RunRow), *_VIEWED)
        .order_by(col(RunRow.id).desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    run_id, finished_at = row
    assert run_id is not None and finished_at is not None
    return run_id, finished_at


def last_finished_runs(session: Session) -> list[PairRun]:
    """:func:`last_finished_run` of every (account, region) pair, by account, then region."""
    newest = (
        select(func.max(RunRow.id))
        .where(*_VIEWED)
        .group_by(
            func.coalesce(col(RunRow.owner_account), ""), func.coalesce(col(RunRow.region), "")
        )
    )
    rows = session.exec(select(RunRow).where(col(RunRow.id).in_(newest))).all()
    runs = [
        PairRun(_id(r), aware(r.finished_at), r.target, r.owner_account or "", r.region or "")
        for r in rows
        if r.finished_at is not None
    ]
    return sorted(runs, key=lambda r: (r.owner_account, r.region))


class _Report(Protocol):
    """What a per-run report (drift, sizes) shows: its run, when, its items."""

    @property
    def run_id(self) -> int: ...
    @property
    def seen_at(self) -> datetime | None: ...
    @property
    def items(self) -> tuple[Any, ...]: ...


R = TypeVar("R", bound=_Report)


def latest_reports(
    db: Database,
    scope: Scope,
    global_reads: bool,
    what: str,
    report: Callable[[Session, PairRun], R],
) -> list[R]:
    """``report`` of the newest finished run of each pair (only the scope's pair without
    ``global_reads``), by account then region: what ``status`` shows of drift and sizes."""
    with db.session(what, write=False) as s:
        runs = last_finished_runs(s)
        if not global_reads:
            mine = (scope.account, scope.region)
            runs = [r for r in runs if (r.owner_account, r.region) == mine]
        return [report(s, run) for run in runs]


def latest_report(
    db: Database,
    scope: Scope,
    global_reads: bool,
    what: str,
    report: Callable[[Session, PairRun], R],
    merged: Callable[[int, datetime | None, tuple[Any, ...]], R],
) -> R | None:
    """The scope's newest finished run's ``report`` (None: none yet); with ``global_reads``,
    every pair's in one (``merged``: the newest run id and time, every item)."""
    if not global_reads:
        with db.session(what, write=False) as s:
            run = last_finished_run(s, scope)
            if run is None:
                return None
            return report(s, PairRun(run[0], run[1], scope.target, scope.account, scope.region))
    reports = latest_reports(db, scope, True, what, report)
    if not reports:
        return None
    return merged(
        max(r.run_id for r in reports),
        max((r.seen_at for r in reports if r.seen_at is not None), default=None),
        tuple(i for r in reports for i in r.items),
    )


def pending_entries(session: Session, scope: Scope = LEGACY) -> list[PendingEntry]:
    """The journal entries of ``scope`` still pending (a crash cut them short), oldest
    first."""
    rows = session.exec(
        select(JournalRow)
        .where(*scope.where(JournalRow), JournalRow.status == "pending")
        .order_by(col(JournalRow.id))
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
    """Runs, the journal, and pruning them, of one (account, region) ``scope``;
    ``global_reads``: :meth:`journal`, :meth:`recent_runs` and :meth:`pair_runs` show every
    pair's (``status``)."""

    def __init__(self, db: Database, scope: Scope = LEGACY, *, global_reads: bool = False) -> None:
        self._db = db
        self._scope = scope
        self._global = global_reads

    def _runs(self) -> tuple[Any, ...]:
        return self._scope.where_run(RunRow)

    # -- runs

    def begin_run(
        self,
        mode: str,
        pid: int,
        at: datetime,
        holder: str | None = None,
        lease_expires: datetime | None = None,
    ) -> int:
        """A ``running`` row; with ``holder``, also the run's lease (``run:<id>``, expiring at
        ``lease_expires``, wall clock), in the same transaction."""
        at = aware(at)
        with self._db.session("begin run", write=True) as s:
            row = RunRow(
                mode=mode,
                started_at=at,
                status="running",
                pid=pid,
                owner_account=self._scope.account,
                region=self._scope.region,
                target=self._scope.target,
                batch=self._scope.batch,
            )
            s.add(row)
            s.flush()
            if holder is not None:
                if lease_expires is None:
                    raise ValueError("a run lease needs its expiry")
                now = datetime.now(UTC)
                s.add(
                    LeaseRow(
                        name=run_lease(_id(row)),
                        holder=holder,
                        acquired_at=now,
                        expires_at=aware(lease_expires, "lease_expires"),
                    )
                )
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
                .where(col(RunRow.id) == run_id, *self._runs())
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
            s.exec(delete(LeaseRow).where(col(LeaseRow.name) == run_lease(run_id)))

    def interrupt_gone_runs(self, at: datetime, now: datetime | None = None) -> int:
        """Record every gone run (see the module docstring) as ``interrupted``, with the
        counts of its journal, finished ``at``. ``now``: the wall clock (lease expiry)."""
        at = aware(at)
        now = aware(now) if now is not None else datetime.now(UTC)
        with self._db.session("interrupt gone runs", write=True) as s:
            running = s.exec(select(RunRow).where(*self._runs(), RunRow.status == "running")).all()
            gone = _gone(s, running, now)
            for run in running:
                if _id(run) not in gone:
                    continue
                ok, failed = gone[_id(run)]
                changed(
                    s,
                    update(RunRow)
                    .where(col(RunRow.id) == _id(run), col(RunRow.status) == "running")
                    .values(
                        status="interrupted",
                        actions_ok=ok,
                        actions_failed=failed,
                        error=GONE.format(pid=run.pid),
                        finished_at=at,
                    ),
                )
                s.exec(delete(LeaseRow).where(col(LeaseRow.name) == run_lease(_id(run))))
            return len(gone)

    # -- journal

    def journal_start(
        self, run_id: int, action: Action, at: datetime, fence: int | None = None
    ) -> int:
        """Write the action as ``pending`` before its AWS call; committed on return.
        ``fence``: the fencing counter of the lease under which it is done (``lease_fence``).

        A pending entry of the scope with the same key (a crash cut it short) is reused: its
        attempts go up, it moves to this run and fence, and it keeps its first ``started_at``.
        """
        at = aware(at)
        with self._db.session("start journal entry", write=True) as s:
            found = s.exec(
                select(JournalRow.id, JournalRow.source_id)
                .where(
                    *self._scope.where(JournalRow),
                    JournalRow.key == action.key,
                    JournalRow.status == "pending",
                )
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
                        fence=fence,
                        reason=action.reason,
                        source_id=action.source if action.source is not None else source_id,
                    ),
                )
                return entry_id
            row = JournalRow(
                owner_account=self._scope.account,
                region=self._scope.region,
                run_id=run_id,
                fence=fence,
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
                .where(col(JournalRow.id) == entry_id, *self._scope.where(JournalRow))
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
            return pending_entries(s, self._scope)

    # -- housekeeping

    def prune(self, before: datetime) -> int:
        """Delete the scope's finished journal entries and finished runs older than
        ``before``; pending entries always stay. Returns how many rows went."""
        before = aware(before, "before")
        with self._db.session("prune", write=True) as s:
            journal = changed(
                s,
                delete(JournalRow).where(
                    *self._scope.where(JournalRow),
                    col(JournalRow.status) != "pending",
                    col(JournalRow.finished_at).is_not(None),
                    col(JournalRow.finished_at) < before,
                ),
            )
            runs = changed(
                s,
                delete(RunRow).where(
                    *self._runs(),
                    col(RunRow.finished_at).is_not(None),
                    col(RunRow.finished_at) < before,
                ),
            )
            return journal + runs

    # -- for `status`

    def journal(self, limit: int = 50, run_id: int | None = None) -> list[JournalView]:
        """The newest entries first, of one run or of all (of the scope, or of every pair)."""
        query = select(JournalRow)
        if not self._global:
            query = query.where(*self._scope.where(JournalRow))
        if run_id is not None:
            query = query.where(JournalRow.run_id == run_id)
        with self._db.session("read journal", write=False) as s:
            rows = s.exec(query.order_by(col(JournalRow.id).desc()).limit(limit)).all()
            targets = _targets_of(s, rows)
            return [_journal_view(row, targets) for row in rows]

    def recent_runs(self, limit: int = 10, now: datetime | None = None) -> list[RunView]:
        """The newest runs first, each with its failed journal entries and API call counts.
        A gone run (see the module docstring) is shown ``interrupted``, with the counts of its
        journal. ``now``: the wall clock (lease expiry)."""
        now = aware(now) if now is not None else datetime.now(UTC)
        with self._db.session("read runs", write=False) as s:
            query = select(RunRow) if self._global else select(RunRow).where(*self._runs())
            runs = s.exec(query.order_by(col(RunRow.id).desc()).limit(limit)).all()
            gone = _gone(s, [r for r in runs if r.status == "running"], now)
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
                        failures.setdefault(row.run_id, []).append(_journal_view(row, {}))
            return [_run_view(run, failures.get(_id(run), ()), gone.get(_id(run))) for run in runs]

    def pair_runs(self, now: datetime | None = None) -> list[RunView]:
        """The newest finished run (any mode but ``plan``) of each (target, region) pair, with
        its status and error, by target then region (a pair of runs from before 0006: target
        None, first): what ``status`` and the metrics show per pair. With a scope: its own."""
        now = aware(now) if now is not None else datetime.now(UTC)
        finished = (col(RunRow.mode) != "plan", col(RunRow.finished_at).is_not(None))
        newest = select(func.max(RunRow.id)).where(*finished)
        if not self._global:
            newest = newest.where(*self._runs())
        newest = newest.group_by(col(RunRow.target), col(RunRow.region))
        with self._db.session("read the runs of each pair", write=False) as s:
            runs = s.exec(select(RunRow).where(col(RunRow.id).in_(newest))).all()
            views = [_run_view(run, (), None) for run in runs]
        return sorted(views, key=lambda v: (v.target is not None, v.target or "", v.region))


def _id(row: RunRow | JournalRow) -> int:
    """The id of a stored row (the database gave it one)."""
    assert row.id is not None
    return row.id


def _gone(s: Session, running: Sequence[RunRow], now: datetime) -> dict[int, tuple[int, int]]:
    """The gone runs among ``running`` rows, each with (ok, failed) from its journal."""
    if not running:
        return {}
    names = {run_lease(_id(r)): _id(r) for r in running}
    leases = {
        names[row.name]: row
        for row in s.exec(select(LeaseRow).where(col(LeaseRow.name).in_(names)))
    }
    gone = []
    for run_id in names.values():
        lease = leases.get(run_id)
        if lease is None or aware(lease.expires_at) <= now or dead_local_holder(lease.holder):
            gone.append(run_id)
    if not gone:
        return {}
    counts: dict[int, tuple[int, int]] = {run_id: (0, 0) for run_id in gone}
    rows = s.exec(
        select(JournalRow.run_id, JournalRow.status, func.count())
        .where(
            col(JournalRow.run_id).in_(gone), col(JournalRow.status).in_(("completed", "failed"))
        )
        .group_by(col(JournalRow.run_id), col(JournalRow.status))
    )
    for run_id, status, n in rows:
        ok, failed = counts[run_id]
        counts[run_id] = (ok + n, failed) if status == "completed" else (ok, failed + n)
    return counts


def _targets_of(s: Session, rows: Sequence[JournalRow]) -> dict[int, str | None]:
    """The target of each run the journal ``rows`` belong to."""
    ids = {row.run_id for row in rows}
    if not ids:
        return {}
    found = s.exec(select(RunRow.id, RunRow.target).where(col(RunRow.id).in_(ids)))
    return {run_id: target for run_id, target in found if run_id is not None}


def _run_view(
    run: RunRow, failures: Sequence[JournalView], gone: tuple[int, int] | None
) -> RunView:
    status, ok, failed, error = run.status, run.actions_ok, run.actions_failed, run.error
    if gone is not None:
        status, (ok, failed), error = "interrupted", gone, GONE.format(pid=run.pid)
    return RunView(
        id=_id(run),
        mode=run.mode,
        status=status,
        started_at=run.started_at,
        finished_at=run.finished_at,
        actions_ok=ok,
        actions_failed=failed,
        api_calls=_api_calls(run.api_calls),
        error=error,
        pid=run.pid,
        failures=tuple(failures),
        target=run.target,
        owner_account=run.owner_account or "",
        region=run.region or "",
        batch=run.batch,
    )


def _journal_view(row: JournalRow, targets: Mapping[int, str | None]) -> JournalView:
    return JournalView(
        target=targets.get(row.run_id),
        owner_account=row.owner_account,
        region=row.region,
        fence=row.fence,
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
