"""The state DB: what the worker made, the grants it gave, the journal of its actions, its runs.

The store records; the planner decides. Every write is its own short transaction, committed
before the method returns, so that a journal entry survives a SIGKILL right after it (the
apply step writes it before the AWS call). On SQLite a write transaction starts with ``BEGIN
IMMEDIATE`` (the write lock up front, waiting up to the busy timeout) so that a
read-then-write never fails half way with a stale snapshot; reads use a deferred ``BEGIN``.

Grants: ``State.grants`` lists the grants the worker made (``granted_at`` known), open or
revoked. A revoke of a grant it has no record of making (someone else's, or one made before
the state DB was lost) is recorded too, as a grant row with ``granted_at`` NULL and
``revoked_at`` set; such rows show in :meth:`StateStore.owned_summary` but not in
``State.grants``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from sqlalchemy import case, delete, event, or_, type_coerce, update
from sqlalchemy.engine import URL, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlmodel import Session, UTCDateTime, col, select

from snapworker.core.model import (
    Action,
    ActionKind,
    GrantRecord,
    MadeFor,
    OwnedRecord,
    PendingEntry,
    Plan,
    State,
    VerificationRecord,
    VerificationStatus,
)
from snapworker.store.schema import (
    SQLITE_BEGIN_IMMEDIATE,
    StateStoreError,
    describe_error,
    ensure_schema,
    masked_url,
)
from snapworker.store.tables import (
    CopiedSourceRow,
    DriftRow,
    GrantRow,
    JournalRow,
    LeaseRow,
    OwnedSnapshotRow,
    RunRow,
    SnapshotFiguresRow,
    VerificationRow,
)

__all__ = [
    "DriftItem",
    "DriftReport",
    "GrantView",
    "JournalStatus",
    "JournalView",
    "OwnedSummary",
    "OwnedView",
    "RunStatus",
    "RunView",
    "StateStore",
    "StateStoreError",
    "VerificationView",
    "drift_items",
    "open_store",
]

JournalStatus = Literal["pending", "completed", "failed", "superseded"]
RunStatus = Literal["running", "ok", "failed"]
_FINISHED_STATUSES = frozenset({"completed", "failed", "superseded"})
_RUN_END_STATUSES = frozenset({"ok", "failed"})

DEFAULT_BUSY_TIMEOUT_MS = 5000


# --------------------------------------------------------------------------- views for status


@dataclass(frozen=True)
class OwnedView:
    snapshot_id: str
    policy: str
    cluster: str
    made_for: str
    source_id: str | None
    data_time: datetime | None
    fire_time: datetime | None
    recorded_at: datetime
    adopted: bool
    deleted_at: datetime | None


@dataclass(frozen=True)
class GrantView:
    snapshot_id: str
    account: str
    granted_at: datetime | None  # None: a revoke of a grant the worker did not make
    revoked_at: datetime | None


@dataclass(frozen=True)
class OwnedSummary:
    """Owned snapshots (live and deleted) by policy, then cluster, oldest data first; and the
    grants still open."""

    owned: Mapping[str, Mapping[str, tuple[OwnedView, ...]]]
    open_grants: tuple[GrantView, ...]


@dataclass(frozen=True)
class JournalView:
    id: int
    run_id: int
    key: str
    policy: str
    cluster: str
    kind: str
    snapshot_id: str
    account: str | None
    source_id: str | None
    reason: str
    status: str
    outcome: str | None
    error: str | None
    attempts: int
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class RunView:
    id: int
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    actions_ok: int
    actions_failed: int
    api_calls: Mapping[str, int]
    error: str | None
    pid: int
    failures: tuple[JournalView, ...]  # this run's journal entries that failed


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


# --------------------------------------------------------------------------------- opening


def open_store(url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> StateStore:
    """Open the state DB at a SQLAlchemy URL, creating or upgrading its schema.

    SQLite: the parent directory is created, a new file is created empty with mode 0600
    before anything is written to it, and every connection runs in WAL mode with a busy
    timeout and foreign keys on. Raises :class:`StateStoreError` (URL shown, password masked).
    """
    shown = masked_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StateStoreError(f"state DB {shown}: not a valid SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite_file(parsed, shown)
    try:
        engine = _create_engine(parsed, busy_timeout_ms)
    except (SQLAlchemyError, ImportError) as exc:
        raise StateStoreError(
            f"state DB {shown}: unknown or uninstalled database driver "
            f"{parsed.drivername!r}: {describe_error(exc)}"
        ) from exc
    try:
        ensure_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return StateStore(engine)


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database)


def _prepare_sqlite_file(url: URL, shown: str) -> None:
    path = _sqlite_file(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.is_dir():
            raise StateStoreError(f"state DB {shown}: {path} is a directory") from None
        return  # an existing database keeps its mode
    except OSError as exc:
        raise StateStoreError(
            f"state DB {shown}: cannot create {path}: {exc.strerror or exc}"
        ) from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
    finally:
        os.close(fd)


def _create_engine(url: URL, busy_timeout_ms: int) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), not the sqlite3 module's legacy mode.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(SQLITE_BEGIN_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _aware(value: datetime, name: str = "at") -> datetime:
    """The same instant in UTC; a naive datetime is a programming error."""
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _aware_opt(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else _aware(value, name)


# ----------------------------------------------------------------------------------- store


class StateStore:
    """Typed access to the state DB; see the module docstring for the transaction rules."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.url = masked_url(engine.url)

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- plumbing

    @contextmanager
    def _tx(self, what: str, *, write: bool) -> Iterator[Session]:
        try:
            with Session(self._engine, expire_on_commit=False) as session:
                if write:
                    session.connection(execution_options={SQLITE_BEGIN_IMMEDIATE: True})
                yield session
                if write:
                    session.commit()
        except SQLAlchemyError as exc:
            raise StateStoreError(
                f"state DB {self.url}: {what} failed: {describe_error(exc)}"
            ) from exc

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- what the planner needs

    def load_state(self) -> State:
        """Owned records (deleted ones too), the grants the worker made, pending entries."""
        with self._tx("load state", write=False) as s:
            owned = {
                row.snapshot_id: _owned_record(row) for row in s.exec(select(OwnedSnapshotRow))
            }
            grants = tuple(
                GrantRecord(
                    snapshot_id=row.snapshot_id,
                    account=row.account,
                    granted_at=row.granted_at,
                    revoked_at=row.revoked_at,
                )
                for row in s.exec(
                    select(GrantRow)
                    .where(col(GrantRow.granted_at).is_not(None))
                    .order_by(col(GrantRow.id))
                )
                if row.granted_at is not None
            )
            pending = tuple(_pending(row) for row in s.exec(_pending_query()))
            verifications = tuple(
                _verification_record(row)
                for row in s.exec(select(VerificationRow).order_by(col(VerificationRow.id)))
            )
        return State(owned=owned, grants=grants, pending=pending, verifications=verifications)

    def copied_sources(self, policy: str) -> set[str]:
        with self._tx("read copied sources", write=False) as s:
            stmt = select(CopiedSourceRow.source_id).where(CopiedSourceRow.policy == policy)
            return set(s.exec(stmt))

    def record_copied_source(
        self, policy: str, source_id: str, target_id: str, at: datetime
    ) -> bool:
        """Remember that ``policy`` copied ``source_id``; False if it was already recorded
        (the first record stays)."""
        at = _aware(at)
        with self._tx("record copied source", write=True) as s:
            if s.get(CopiedSourceRow, (policy, source_id)) is not None:
                return False
            s.add(
                CopiedSourceRow(
                    policy=policy, source_id=source_id, target_id=target_id, copied_at=at
                )
            )
            return True

    def record_owned(self, rec: OwnedRecord, adopted: bool = False, *, at: datetime) -> None:
        """Upsert the record of an owned snapshot.

        On an existing row, fields ``rec`` leaves None keep their stored value (nothing known
        is forgotten), ``recorded_at`` stays the first one, and ``adopted`` stays False once
        the worker recorded the snapshot as its own.
        """
        at = _aware(at)
        data_time = _aware_opt(rec.data_time, "data_time")
        fire_time = _aware_opt(rec.fire_time, "fire_time")
        deleted_at = _aware_opt(rec.deleted_at, "deleted_at")
        with self._tx("record owned snapshot", write=True) as s:
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
            row.source_id = rec.source_id if rec.source_id is not None else row.source_id
            row.data_time = data_time if data_time is not None else row.data_time
            row.fire_time = fire_time if fire_time is not None else row.fire_time
            row.deleted_at = deleted_at if deleted_at is not None else row.deleted_at
            row.adopted = row.adopted and adopted
            s.add(row)

    def mark_deleted(self, snapshot_id: str, at: datetime) -> bool:
        """Set ``deleted_at`` (the first one stays); False if there is no such record."""
        at = _aware(at)
        with self._tx("mark snapshot deleted", write=True) as s:
            row = s.get(OwnedSnapshotRow, snapshot_id)
            if row is None:
                return False
            if row.deleted_at is None:
                row.deleted_at = at
                s.add(row)
            return True

    # -- grants

    def record_grant(self, snapshot_id: str, account: str, at: datetime) -> bool:
        """Record a grant the worker made; False (nothing written) if one is already open."""
        at = _aware(at)
        with self._tx("record grant", write=True) as s:
            if s.exec(_open_grants(snapshot_id, account)).first() is not None:
                return False
            s.add(GrantRow(snapshot_id=snapshot_id, account=account, granted_at=at))
            return True

    def record_revoke(self, snapshot_id: str, account: str, at: datetime) -> bool:
        """Close the open grant of ``account`` on the snapshot. With none open, record a revoke
        of a grant the worker did not make (``granted_at`` NULL), unless the newest row for
        the pair is already closed (a repeated revoke). True if something was written."""
        at = _aware(at)
        with self._tx("record revoke", write=True) as s:
            open_rows = list(s.exec(_open_grants(snapshot_id, account)))
            for row in open_rows:
                row.revoked_at = at
                s.add(row)
            if open_rows:
                return True
            newest = s.exec(
                select(GrantRow)
                .where(GrantRow.snapshot_id == snapshot_id, GrantRow.account == account)
                .order_by(col(GrantRow.id).desc())
            ).first()
            if newest is not None:
                return False  # its revoked_at is set: no open grant exists
            s.add(GrantRow(snapshot_id=snapshot_id, account=account, revoked_at=at))
            return True

    # -- drift

    def record_drift(self, run_id: int, items: Iterable[DriftItem], at: datetime) -> int:
        """Record the drift run ``run_id`` saw (once per run, after applying; with no items
        nothing is written, and the finished run row says the check happened). Returns the
        rows written."""
        at = _aware(at)
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
        with self._tx("record drift", write=True) as s:
            s.add_all(rows)
        return len(rows)

    def latest_drift(self) -> DriftReport | None:
        """The drift seen by the newest ``run``/``daemon`` tick that finished without an
        exception (one that raised may not have recorded it, so an older one's view is shown
        instead; one still running is not looked at). None when no such tick exists yet."""
        with self._tx("read drift", write=False) as s:
            run = s.exec(
                select(RunRow)
                .where(
                    col(RunRow.mode) != "plan",
                    col(RunRow.finished_at).is_not(None),
                    col(RunRow.error).is_(None),
                )
                .order_by(col(RunRow.id).desc())
            ).first()
            if run is None or run.id is None:
                return None
            rows = list(
                s.exec(
                    select(DriftRow)
                    .where(DriftRow.run_id == run.id)
                    .order_by(
                        col(DriftRow.policy),
                        col(DriftRow.cluster),
                        col(DriftRow.snapshot_id),
                        col(DriftRow.account),
                    )
                )
            )
            return DriftReport(
                run_id=run.id,
                seen_at=rows[0].seen_at if rows else run.finished_at,
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

    # -- runs

    def begin_run(self, mode: str, pid: int, at: datetime) -> int:
        at = _aware(at)
        with self._tx("begin run", write=True) as s:
            row = RunRow(mode=mode, pid=pid, started_at=at, status="running")
            s.add(row)
            s.flush()
            assert row.id is not None
            return row.id

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
        at = _aware(at)
        if status not in _RUN_END_STATUSES:
            raise ValueError(f"run status must be one of {sorted(_RUN_END_STATUSES)}: {status!r}")
        with self._tx("finish run", write=True) as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise StateStoreError(f"state DB {self.url}: run {run_id} does not exist")
            row.status = status
            row.actions_ok = actions_ok
            row.actions_failed = actions_failed
            row.api_calls = json.dumps(dict(api_calls), sort_keys=True)
            row.error = error
            row.finished_at = at
            s.add(row)

    # -- journal

    def journal_start(self, run_id: int, action: Action, at: datetime) -> int:
        """Write the action as ``pending`` before its AWS call; committed on return.

        A pending entry with the same key (a crash cut it short) is reused: its attempts go
        up, it moves to this run, and it keeps its first ``started_at``.
        """
        at = _aware(at)
        with self._tx("start journal entry", write=True) as s:
            row = s.exec(
                select(JournalRow)
                .where(JournalRow.key == action.key, JournalRow.status == "pending")
                .order_by(col(JournalRow.id))
            ).first()
            if row is not None:
                row.attempts += 1
                row.run_id = run_id
                row.reason = action.reason
                row.source_id = action.source if action.source is not None else row.source_id
            else:
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
                    attempts=1,
                )
            s.add(row)
            s.flush()
            assert row.id is not None
            return row.id

    def journal_finish(
        self,
        entry_id: int,
        status: str,
        outcome: str | None,
        error: str | None,
        at: datetime,
    ) -> None:
        """Record the outcome: ``completed``, ``failed`` or ``superseded``."""
        at = _aware(at)
        if status not in _FINISHED_STATUSES:
            raise ValueError(
                f"journal status must be one of {sorted(_FINISHED_STATUSES)}: {status!r}"
            )
        with self._tx("finish journal entry", write=True) as s:
            row = s.get(JournalRow, entry_id)
            if row is None:
                raise StateStoreError(
                    f"state DB {self.url}: journal entry {entry_id} does not exist"
                )
            row.status = status
            row.outcome = outcome
            row.error = error
            row.finished_at = at
            s.add(row)

    def supersede(self, entry_id: int, at: datetime) -> None:
        """A pending entry the plan no longer wants (e.g. its snapshot is gone)."""
        self.journal_finish(entry_id, "superseded", None, None, at)

    def pending_entries(self) -> list[PendingEntry]:
        with self._tx("read pending entries", write=False) as s:
            return [_pending(row) for row in s.exec(_pending_query())]

    # -- leases

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        """Take the lease if it is free, expired, or already ours (then it is extended)."""
        at = _aware(at)
        expires = at + ttl
        with self._tx("acquire lease", write=True) as s:
            result = s.exec(
                update(LeaseRow)
                .where(
                    col(LeaseRow.name) == name,
                    or_(col(LeaseRow.expires_at) <= at, col(LeaseRow.holder) == holder),
                )
                .values(
                    holder=holder,
                    acquired_at=case(
                        (col(LeaseRow.holder) == holder, col(LeaseRow.acquired_at)),
                        else_=type_coerce(at, UTCDateTime()),
                    ),
                    expires_at=expires,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                return True
            try:
                with s.begin_nested():
                    s.add(LeaseRow(name=name, holder=holder, acquired_at=at, expires_at=expires))
            except IntegrityError:
                return False  # held by someone else, not expired
            return True

    def renew_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        """Extend a lease we hold; False if it is not (any more) ours."""
        at = _aware(at)
        with self._tx("renew lease", write=True) as s:
            result = s.exec(
                update(LeaseRow)
                .where(col(LeaseRow.name) == name, col(LeaseRow.holder) == holder)
                .values(expires_at=at + ttl)
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if we hold it; False if it was not ours."""
        with self._tx("release lease", write=True) as s:
            result = s.exec(
                delete(LeaseRow)
                .where(col(LeaseRow.name) == name, col(LeaseRow.holder) == holder)
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    # -- housekeeping

    def prune(self, before: datetime) -> int:
        """Delete finished journal entries and finished runs older than ``before``; pending
        entries always stay. Returns how many rows went."""
        before = _aware(before, "before")
        with self._tx("prune", write=True) as s:
            journal = s.exec(
                delete(JournalRow)
                .where(
                    col(JournalRow.status) != "pending",
                    col(JournalRow.finished_at).is_not(None),
                    col(JournalRow.finished_at) < before,
                )
                .execution_options(synchronize_session=False)
            )
            runs = s.exec(
                delete(RunRow)
                .where(col(RunRow.finished_at).is_not(None), col(RunRow.finished_at) < before)
                .execution_options(synchronize_session=False)
            )
            return int(journal.rowcount) + int(runs.rowcount)

    # -- for `status`

    def journal(self, limit: int = 50, run_id: int | None = None) -> list[JournalView]:
        """The newest entries first, of one run or of all."""
        with self._tx("read journal", write=False) as s:
            stmt = select(JournalRow)
            if run_id is not None:
                stmt = stmt.where(JournalRow.run_id == run_id)
            stmt = stmt.order_by(col(JournalRow.id).desc()).limit(limit)
            return [_journal_view(row) for row in s.exec(stmt)]

    def recent_runs(self, limit: int = 10) -> list[RunView]:
        """The newest runs first, each with its failed journal entries and API call counts."""
        with self._tx("read runs", write=False) as s:
            runs = list(s.exec(select(RunRow).order_by(col(RunRow.id).desc()).limit(limit)))
            ids = [run.id for run in runs if run.id is not None]
            failures: dict[int, list[JournalView]] = {}
            if ids:
                failed = s.exec(
                    select(JournalRow)
                    .where(col(JournalRow.run_id).in_(ids), JournalRow.status == "failed")
                    .order_by(col(JournalRow.id))
                )
                for row in failed:
                    failures.setdefault(row.run_id, []).append(_journal_view(row))
            return [
                RunView(
                    id=cast(int, run.id),
                    mode=run.mode,
                    status=run.status,
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    actions_ok=run.actions_ok,
                    actions_failed=run.actions_failed,
                    api_calls=_api_calls(run.api_calls),
                    error=run.error,
                    pid=run.pid,
                    failures=tuple(failures.get(cast(int, run.id), ())),
                )
                for run in runs
            ]

    def owned_summary(self) -> OwnedSummary:
        with self._tx("read owned snapshots", write=False) as s:
            owned: dict[str, dict[str, list[OwnedView]]] = {}
            rows = s.exec(
                select(OwnedSnapshotRow).order_by(
                    col(OwnedSnapshotRow.policy),
                    col(OwnedSnapshotRow.cluster),
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
            open_grants = tuple(
                GrantView(
                    snapshot_id=row.snapshot_id,
                    account=row.account,
                    granted_at=row.granted_at,
                    revoked_at=row.revoked_at,
                )
                for row in s.exec(
                    select(GrantRow)
                    .where(col(GrantRow.revoked_at).is_(None))
                    .order_by(col(GrantRow.snapshot_id), col(GrantRow.account))
                )
            )
        return OwnedSummary(
            owned={
                policy: {cluster: tuple(views) for cluster, views in clusters.items()}
                for policy, clusters in owned.items()
            },
            open_grants=open_grants,
        )

    # -- restore drills (snapworker.verify_run)

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
        at = _aware(at)
        fire_time = _aware(fire_time, "fire_time")
        with self._tx("start verification", write=True) as s:
            unfinished = s.exec(
                select(VerificationRow).where(
                    VerificationRow.policy == policy,
                    VerificationRow.cluster == cluster,
                    col(VerificationRow.status).in_(("pending", "interrupted")),
                )
            )
            row: VerificationRow | None = None
            for old in unfinished:
                if old.scratch_cluster == scratch_cluster and row is None:
                    row = old
                elif old.status == "pending":
                    old.status = "interrupted"
                    old.finished_at = at
                    s.add(old)
            if row is None:
                row = VerificationRow(
                    policy=policy,
                    cluster=cluster,
                    snapshot_id=snapshot_id,
                    fire_time=fire_time,
                    scratch_cluster=scratch_cluster,
                    status="pending",
                    started_at=at,
                )
            else:
                row.snapshot_id = snapshot_id
                row.status = "pending"
                row.started_at = at
                row.finished_at = None
                row.detail = "{}"
            s.add(row)
            s.flush()
            assert row.id is not None
            return row.id

    def finish_verification(
        self, verification_id: int, status: str, detail: Mapping[str, Any], at: datetime
    ) -> None:
        """The drill's outcome: ``passed``, ``failed`` or ``error``, with each check's result.
        ``detail`` must hold no credential (the caller builds it from check results)."""
        at = _aware(at)
        if status not in ("passed", "failed", "error"):
            raise ValueError(f"verification status must be passed, failed or error: {status!r}")
        with self._tx("finish verification", write=True) as s:
            row = s.get(VerificationRow, verification_id)
            if row is None:
                raise StateStoreError(
                    f"state DB {self.url}: verification {verification_id} does not exist"
                )
            row.status = status
            row.finished_at = at
            row.detail = json.dumps(dict(detail), sort_keys=True, default=str)
            s.add(row)

    def mark_scratch_deleted(self, scratch_cluster: str, at: datetime) -> int:
        """The scratch cluster is gone (deleted by us, or never made); returns rows updated."""
        at = _aware(at)
        with self._tx("mark scratch cluster deleted", write=True) as s:
            result = s.exec(
                update(VerificationRow)
                .where(
                    col(VerificationRow.scratch_cluster) == scratch_cluster,
                    col(VerificationRow.scratch_deleted_at).is_(None),
                )
                .values(scratch_deleted_at=at)
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)

    def verifications(self, limit: int | None = None) -> list[VerificationView]:
        """Drills, newest first."""
        with self._tx("read verifications", write=False) as s:
            stmt = select(VerificationRow).order_by(col(VerificationRow.id).desc())
            if limit is not None:
                stmt = stmt.limit(limit)
            return [_verification_view(row) for row in s.exec(stmt)]

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
        at = _aware(at)
        text = json.dumps(dict(figures), sort_keys=True, default=str)
        with self._tx("record snapshot figures", write=True) as s:
            row = s.get(SnapshotFiguresRow, snapshot_id)
            if row is None:
                row = SnapshotFiguresRow(
                    snapshot_id=snapshot_id,
                    policy=policy,
                    cluster=cluster,
                    figures=text,
                    recorded_at=at,
                )
            else:
                row.figures = text
                row.recorded_at = at
            s.add(row)

    def figures_for(self, snapshot_id: str) -> dict[str, Any] | None:
        """The figures recorded with a snapshot, or None."""
        with self._tx("read snapshot figures", write=False) as s:
            row = s.get(SnapshotFiguresRow, snapshot_id)
            if row is None:
                return None
            data = json.loads(row.figures or "{}")
            return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------------- row helpers


def _owned_record(row: OwnedSnapshotRow) -> OwnedRecord:
    return OwnedRecord(
        snapshot_id=row.snapshot_id,
        policy=row.policy,
        cluster=row.cluster,
        made_for=cast(MadeFor, row.made_for),
        data_time=row.data_time,
        source_id=row.source_id,
        fire_time=row.fire_time,
        deleted_at=row.deleted_at,
    )


def _open_grants(snapshot_id: str, account: str) -> Any:
    return (
        select(GrantRow)
        .where(
            GrantRow.snapshot_id == snapshot_id,
            GrantRow.account == account,
            col(GrantRow.revoked_at).is_(None),
        )
        .order_by(col(GrantRow.id))
    )


def _pending_query() -> Any:
    return select(JournalRow).where(JournalRow.status == "pending").order_by(col(JournalRow.id))


def _pending(row: JournalRow) -> PendingEntry:
    return PendingEntry(
        entry_id=cast(int, row.id),
        key=row.key,
        policy=row.policy,
        kind=cast(ActionKind, row.kind),
        snapshot_id=row.snapshot_id,
        cluster=row.cluster,
        account=row.account,
        source_id=row.source_id,
    )


def _journal_view(row: JournalRow) -> JournalView:
    return JournalView(
        id=cast(int, row.id),
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


@dataclass(frozen=True)
class VerificationView:
    """A restore drill, for ``status`` (``detail``: each check's result, or the error)."""

    id: int
    policy: str
    cluster: str
    snapshot_id: str
    fire_time: datetime
    scratch_cluster: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    detail: Mapping[str, Any]
    scratch_deleted_at: datetime | None


def _verification_view(row: VerificationRow) -> VerificationView:
    try:
        detail = json.loads(row.detail or "{}")
    except ValueError:
        detail = {}
    return VerificationView(
        id=cast(int, row.id),
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
    )


def _verification_record(row: VerificationRow) -> VerificationRecord:
    return VerificationRecord(
        policy=row.policy,
        cluster=row.cluster,
        snapshot_id=row.snapshot_id,
        fire_time=row.fire_time,
        scratch_cluster=row.scratch_cluster,
        status=cast(VerificationStatus, row.status),
        scratch_deleted=row.scratch_deleted_at is not None,
    )
